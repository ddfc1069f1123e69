"""BertMapConfig: defaults, validation, nested encoder config and the label mapping round trip."""

import json

import pytest
from conftest import tiny_encoder_config
from transformers import AutoConfig, BertConfig, DistilBertConfig

from hf_bertmap import BertMapConfig


def test_defaults_are_mean_pooling_labels_head_and_a_bert_encoder():
    config = BertMapConfig()
    assert (config.pooling, config.head, config.head_scoring) == ("mean", "labels", "linear")
    assert isinstance(config.encoder_config, BertConfig)


def test_round_trip_keeps_encoder_labels_and_both_label_maps(tmp_path):
    config = BertMapConfig(encoder_config=tiny_encoder_config().to_dict(), pooling="cls", head_scoring="cosine",
                           id2label={0: "height", 1: "size", 2: "smell"})
    assert config.label2id == {"height": 0, "size": 1, "smell": 2}
    config.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["model_type"] == "bertmap"
    assert written["label2id"] == {"height": 0, "size": 1, "smell": 2}
    assert written["encoder_config"]["model_type"] == "bert" and written["encoder_config"]["hidden_size"] == 32

    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(reloaded, BertMapConfig)
    assert reloaded.id2label == {0: "height", 1: "size", 2: "smell"}
    assert reloaded.label2id == {"height": 0, "size": 1, "smell": 2}
    assert (reloaded.pooling, reloaded.head_scoring, reloaded.num_labels) == ("cls", "cosine", 3)
    assert isinstance(reloaded.encoder_config, BertConfig) and reloaded.encoder_config.hidden_size == 32


def test_non_bert_encoder_configs_survive_the_round_trip(tmp_path):
    encoder = DistilBertConfig(dim=32, n_layers=1, n_heads=4, hidden_dim=37)
    BertMapConfig(encoder_config=encoder.to_dict(), id2label={0: "a", 1: "b"}).save_pretrained(tmp_path)
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(reloaded.encoder_config, DistilBertConfig) and reloaded.encoder_config.dim == 32


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pooling": "max"}, "pooling: unknown value 'max'; choose one of mean, cls, pooler"),
        ({"head": "mlp"}, "head: unknown value 'mlp'; choose one of labels, text, vocab"),
        ({"head_scoring": "dot"}, "head_scoring: unknown value 'dot'; choose one of linear, cosine"),
        ({"label_training_softmax": "x"}, "label_training_softmax: unknown value 'x'; choose one of all, encoded"),
        ({"label_hard_negatives": -1}, "label_hard_negatives >= 0; got 32, 50, None and -1"),
    ],
)
def test_bad_values_are_refused_with_the_field_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BertMapConfig(**kwargs)


def test_unknown_pooling_in_a_saved_config_is_refused_on_load(tmp_path):
    BertMapConfig(id2label={0: "a", 1: "b"}).save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    path.write_text(path.read_text().replace('"pooling": "mean"', '"pooling": "median"'))
    with pytest.raises(ValueError, match="pooling: unknown value 'median'"):
        AutoConfig.from_pretrained(tmp_path)


def test_the_config_holds_the_network_and_nothing_of_decoding():
    config = BertMapConfig()
    for setting in ("temperature", "min_score", "memory_weight", "memory_size", "lowercase", "scoring"):
        assert not hasattr(config, setting), setting


def test_vocab_head_ties_word_embeddings():
    assert BertMapConfig(head="vocab").tie_word_embeddings is True
    assert BertMapConfig(head="labels").tie_word_embeddings is False
