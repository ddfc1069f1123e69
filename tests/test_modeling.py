"""BertForWordMapping: shapes, losses, poolings and heads, save/load, Auto classes and remote code."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import block_hf_bertmap_code, make_model, subprocess_env, tiny_encoder_config, tiny_vocab
from safetensors import safe_open
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    DistilBertConfig,
    ElectraConfig,
    RobertaConfig,
    pipeline,
)

from hf_bertmap import BertForWordMapping, BertMapConfig, WordMapper
from hf_bertmap.modeling_bertmap import masked_mean

POOLINGS = ["mean", "cls", "pooler"]
HEADS = ["labels", "vocab"]


def batch(vocab_size: int, batch_size: int = 3, seq: int = 6):
    torch.manual_seed(1)
    input_ids = torch.randint(5, vocab_size, (batch_size, seq))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, 4:] = 0  # one padded row
    input_ids[0, 4:] = 0
    return input_ids, attention_mask


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("head", HEADS)
def test_every_pooling_and_head_gives_logits_a_finite_loss_and_gradients(pooling, head):
    model = make_model(head=head, pooling=pooling)
    input_ids, attention_mask = batch(len(tiny_vocab()))
    labels = torch.tensor([0, 1, 2])
    out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.shape == (3, model.config.num_labels)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.classifier.weight.grad is not None and model.classifier.weight.grad.abs().sum() > 0
    first_layer = model.encoder.encoder.layer[0].attention.self.query.weight
    assert first_layer.grad.abs().sum() > 0


def test_loss_is_cross_entropy_with_class_index_labels():
    model = make_model().eval()
    input_ids, attention_mask = batch(len(tiny_vocab()))
    labels = torch.tensor([2, 0, 1])
    out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert torch.allclose(out.loss, torch.nn.functional.cross_entropy(out.logits, labels), atol=1e-6)


def test_several_golds_split_the_loss_evenly_and_all_padding_rows_add_nothing():
    model = make_model().eval()
    input_ids, attention_mask = batch(len(tiny_vocab()))
    labels = torch.tensor([[0, 2], [1, -100], [-100, -100]])
    out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    log_p = out.logits.log_softmax(-1)
    expected = (-(log_p[0, 0] + log_p[0, 2]) / 2 - log_p[1, 1]) / 2
    assert torch.allclose(out.loss, expected, atol=1e-6)


def test_padding_does_not_hide_a_gold_with_id_0():
    model = make_model().eval()
    input_ids, attention_mask = batch(len(tiny_vocab()), batch_size=1)
    padded = model(input_ids=input_ids, attention_mask=attention_mask, labels=torch.tensor([[0, -100, -100]])).loss
    plain = model(input_ids=input_ids, attention_mask=attention_mask, labels=torch.tensor([0])).loss
    assert torch.allclose(padded, plain)


def test_logits_are_the_same_in_training_and_eval_mode_without_dropout():
    model = make_model(classifier_dropout=0.0)
    model.encoder.config.hidden_dropout_prob = 0.0
    input_ids, attention_mask = batch(len(tiny_vocab()))
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    trained = model.train()(input_ids=input_ids, attention_mask=attention_mask)
    evaluated = model.eval()(input_ids=input_ids, attention_mask=attention_mask)
    assert torch.allclose(trained.logits, evaluated.logits, atol=1e-6)


def test_forward_returns_the_pooled_embedding_the_head_projects():
    model = make_model().eval()
    input_ids, attention_mask = batch(len(tiny_vocab()))
    out = model(input_ids=input_ids, attention_mask=attention_mask)
    assert torch.allclose(out.pooled_output, model.pool(input_ids, attention_mask))
    assert torch.allclose(out.logits, model.classifier(out.pooled_output), atol=1e-6)


def test_poolings_pick_the_documented_positions():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    assert torch.equal(masked_mean(hidden, mask), torch.stack([hidden[0, :2].mean(0), hidden[1].mean(0)]))


def test_padding_does_not_change_a_phrase_logits():
    model = make_model(pooling="mean").eval()
    ids = torch.tensor([[2, 10, 11, 3]])
    padded = torch.tensor([[2, 10, 11, 3, 0, 0]])
    a = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    b = model(input_ids=padded, attention_mask=torch.tensor([[1, 1, 1, 1, 0, 0]])).logits
    assert torch.allclose(a, b, atol=1e-5)


def test_unused_pooler_is_dropped_and_pooler_pooling_keeps_it():
    assert make_model(pooling="mean").encoder.pooler is None
    assert make_model(pooling="pooler").encoder.pooler is not None


@pytest.mark.parametrize(
    "encoder_config",
    [
        RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                      vocab_size=50, max_position_embeddings=70),
        DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=37, vocab_size=50),
        ElectraConfig(embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=37, vocab_size=50),
    ],
    ids=["roberta", "distilbert", "electra"],
)
@pytest.mark.parametrize("head", HEADS)
def test_other_encoders_work_with_both_heads(encoder_config, head, tmp_path):
    labels = [f"w{i}" for i in range(50)] if head == "vocab" else ["a", "b", "c"]
    config = BertMapConfig(encoder_config=encoder_config.to_dict(), head=head, id2label=dict(enumerate(labels)))
    model = BertForWordMapping(config).eval()
    input_ids, attention_mask = batch(50)
    out = model(input_ids=input_ids, attention_mask=attention_mask, labels=torch.tensor([0, 1, 2]))
    assert out.logits.shape == (3, len(labels)) and torch.isfinite(out.loss)
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert torch.allclose(reloaded(input_ids=input_ids, attention_mask=attention_mask).logits, out.logits, atol=1e-6)


def test_pooler_pooling_on_an_encoder_without_pooler_is_a_clear_error():
    config = BertMapConfig(encoder_config=DistilBertConfig(dim=32, n_layers=1, n_heads=4, hidden_dim=37).to_dict(),
                           pooling="pooler", id2label={0: "a", 1: "b"})
    with pytest.raises(ValueError, match="pooling='pooler' needs an encoder with a pooler layer; 'distilbert'"):
        BertForWordMapping(config)


def test_vocab_head_is_tied_to_the_input_embeddings_and_stays_tied_after_reload(tmp_path):
    model = make_model(head="vocab")
    assert model.classifier.weight is model.encoder.get_input_embeddings().weight
    model.save_pretrained(tmp_path)
    reloaded, info = BertForWordMapping.from_pretrained(tmp_path, output_loading_info=True)
    assert reloaded.classifier.weight is reloaded.encoder.get_input_embeddings().weight
    assert not info["missing_keys"]
    assert not info["unexpected_keys"]


def test_vocab_head_needs_one_label_per_vocabulary_entry():
    config = BertMapConfig(encoder_config=tiny_encoder_config().to_dict(), head="vocab", id2label={0: "a", 1: "b"})
    with pytest.raises(ValueError, match="head='vocab' needs one label per vocabulary entry: id2label has 2"):
        BertForWordMapping(config)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_save_and_auto_model_load_give_identical_logits_with_no_key_warnings(pooling, tmp_path):
    model = make_model(pooling=pooling).eval()
    model.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["auto_map"] == {
        "AutoConfig": "configuration_bertmap.BertMapConfig",
        "AutoModel": "modeling_bertmap.BertForWordMapping",
        "AutoModelForSequenceClassification": "modeling_bertmap.BertForWordMapping",
    }
    assert {"model.safetensors", "configuration_bertmap.py", "modeling_bertmap.py"} <= {
        p.name for p in tmp_path.iterdir()}
    reloaded, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert type(reloaded) is BertForWordMapping
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    input_ids, attention_mask = batch(len(tiny_vocab()))
    assert torch.equal(reloaded.eval()(input_ids=input_ids, attention_mask=attention_mask).logits,
                       model(input_ids=input_ids, attention_mask=attention_mask).logits)
    assert type(AutoModelForSequenceClassification.from_pretrained(tmp_path)) is BertForWordMapping


def test_a_label_head_starts_from_unit_rows_of_the_label_embeddings():
    model = make_model()
    embeddings = torch.randn(3, 32) * 5
    model.classifier.initialize_from(embeddings)
    assert torch.allclose(model.classifier.weight, torch.nn.functional.normalize(embeddings, dim=-1), atol=1e-6)
    assert torch.equal(model.classifier.bias, torch.zeros(3))
    with pytest.raises(ValueError, match="expected 3 label rows, got 2"):
        model.classifier.initialize_from(embeddings[:2])


def test_add_labels_appends_rows_of_the_mean_norm_and_keeps_the_old_ones():
    model = make_model()
    old_weight, old_bias = model.classifier.weight.detach().clone(), model.classifier.bias.detach().clone()
    texts = (torch.tensor([[2, 7, 3, 0], [2, 8, 9, 3]]), torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]))
    model.add_labels(["value", "temperature"], *texts)
    assert model.config.id2label == {0: "height", 1: "size", 2: "smell", 3: "value", 4: "temperature"}
    assert torch.equal(model.classifier.weight[:3], old_weight) and torch.equal(model.classifier.bias[:3], old_bias)
    norms = model.classifier.weight[3:].norm(dim=-1)
    assert torch.allclose(norms, old_weight.norm(dim=-1).mean().expand(2), atol=1e-5)
    directions = torch.nn.functional.normalize(model.encode_word_texts(*texts), dim=-1)
    assert torch.allclose(torch.nn.functional.normalize(model.classifier.weight[3:], dim=-1), directions, atol=1e-5)
    assert torch.allclose(model.classifier.bias[3:], old_bias.mean().expand(2))
    with pytest.raises(ValueError, match=r"already output words or given twice: \['size'\]"):
        model.add_labels(["size"], texts[0][:1], texts[1][:1])


def test_remote_code_loads_where_hf_bertmap_cannot_be_imported(saved_model, tmp_path):
    model = BertForWordMapping.from_pretrained(saved_model).eval()
    input_ids, attention_mask = batch(len(tiny_vocab()))
    expected = model(input_ids=input_ids, attention_mask=attention_mask).logits
    torch.save({"input_ids": input_ids, "attention_mask": attention_mask}, tmp_path / "inputs.pt")
    code = block_hf_bertmap_code() + (
        "import torch\n"
        "from transformers import AutoModel\n"
        "try:\n"
        "    import hf_bertmap\n"
        "    raise SystemExit('hf_bertmap was importable')\n"
        "except ImportError:\n"
        "    pass\n"
        f"model = AutoModel.from_pretrained({str(saved_model)!r}, trust_remote_code=True).eval()\n"
        "assert not type(model).__module__.startswith('hf_bertmap'), type(model).__module__\n"
        f"inputs = torch.load({str(tmp_path / 'inputs.pt')!r})\n"
        f"torch.save(model(**inputs).logits, {str(tmp_path / 'logits.pt')!r})\n"
        "print(type(model).__module__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env=subprocess_env(tmp_path), stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "modeling_bertmap" in result.stdout
    assert torch.equal(torch.load(tmp_path / "logits.pt"), expected)


def test_text_classification_pipeline_returns_top_k_labels(saved_model):
    classifier = pipeline("text-classification", model=str(saved_model), trust_remote_code=True, top_k=2)
    out = classifier(["very large", "fishy"])
    assert len(out) == 2 and all(len(row) == 2 for row in out)
    assert {row[0]["label"] for row in out} <= {"height", "size", "smell"}
    assert all(row[0]["score"] >= row[1]["score"] for row in out)


def test_freezing_the_lower_layers_trains_only_the_layers_above_them_and_the_head():
    model = make_model()
    model.freeze_encoder_layers(1)
    input_ids, attention_mask = batch(len(tiny_vocab()))
    model(input_ids=input_ids, attention_mask=attention_mask, labels=torch.tensor([0, 1, 2])).loss.backward()
    layers = model.encoder.encoder.layer
    assert model.encoder.embeddings.word_embeddings.weight.grad is None
    assert all(p.grad is None for p in layers[0].parameters())
    assert all(p.grad is not None and p.requires_grad for p in layers[1].parameters())
    assert model.classifier.weight.grad.abs().sum() > 0
    model.freeze_encoder_layers(0)
    assert all(p.requires_grad for p in model.parameters())


def test_freezing_more_layers_than_the_encoder_has_is_refused():
    with pytest.raises(ValueError, match=r"num_layers must be in \[0, 2\], got 3"):
        make_model().freeze_encoder_layers(3)


def test_cosine_head_scores_a_learned_scale_times_the_cosine_plus_the_bias():
    model = make_model(head_scoring="cosine", classifier_dropout=0.0).eval()
    inputs = {"input_ids": torch.tensor([[2, 7, 8, 3]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    out = model(**inputs)
    cosines = torch.nn.functional.cosine_similarity(out.pooled_output[:, None], model.classifier.weight[None], dim=-1)
    assert model.classifier.logit_scale.item() == pytest.approx(3.0)
    assert torch.allclose(out.logits, torch.e ** 3.0 * cosines + model.classifier.bias, atol=1e-5)


def test_cosine_head_reloads_with_its_learned_scale(tmp_path):
    model = make_model(head_scoring="cosine")
    with torch.no_grad():
        model.classifier.logit_scale.fill_(2.5)
    model.save_pretrained(tmp_path / "m")
    reloaded = BertForWordMapping.from_pretrained(tmp_path / "m")
    assert reloaded.classifier.logit_scale.item() == pytest.approx(2.5)
    inputs = {"input_ids": torch.tensor([[2, 7, 3]])}
    assert torch.allclose(model.eval()(**inputs).logits, reloaded.eval()(**inputs).logits, atol=1e-6)


def test_freeze_head_leaves_only_the_encoder_and_the_scale_to_learn():
    model = make_model(head_scoring="cosine")
    model.classifier.freeze()
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    assert "classifier.logit_scale" in trained and not trained & {"classifier.weight", "classifier.bias"}
    assert all(name.startswith("encoder.") for name in trained - {"classifier.logit_scale"})
    out = model(input_ids=torch.tensor([[2, 7, 3]]), labels=torch.tensor([1]))
    out.loss.backward()
    assert model.classifier.logit_scale.grad is not None and model.classifier.weight.grad is None


def test_cosine_scoring_is_refused_for_the_vocab_head():
    with pytest.raises(ValueError, match="head_scoring='cosine' applies to head='labels' or 'text' only"):
        BertMapConfig(head="vocab", head_scoring="cosine")
    with pytest.raises(ValueError, match="head_scoring: unknown value 'dot'; choose one of linear, cosine"):
        BertMapConfig(head_scoring="dot")


def test_the_vocab_head_has_no_label_rows_to_initialise_freeze_or_grow():
    model = make_model(head="vocab")
    with pytest.raises(ValueError, match="keeping the rows fixed applies to head='labels' or 'text' only; the rows "
                                         "of head='vocab' are the encoder's word embeddings, tied"):
        model.classifier.freeze()
    with pytest.raises(ValueError, match="starting rows from the words' embeddings applies to head='labels' only"):
        model.classifier.initialize_from(torch.randn(3, 32))
    with pytest.raises(ValueError, match=r"adding words \(add_labels\) applies to head='labels' or 'text'"):
        model.add_labels(["flavor"], torch.tensor([[2, 7, 3]]), torch.ones(1, 3, dtype=torch.long))


@pytest.mark.parametrize("name", ["cosine-labels", "vocab"])
def test_a_model_saved_before_heads_were_modules_loads_and_saves_under_the_new_names(name, tmp_path):
    folder = Path(__file__).parent / "data" / f"legacy-{name}"  # saved by hf_bertmap before LabelHead/VocabHead
    expected = json.loads((folder / "expected.json").read_text())
    mapper = WordMapper.from_pretrained(folder)
    inputs = mapper.tokenizer(["very large", "fishy", "hot"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = mapper.model(**inputs).logits
    assert torch.allclose(logits, torch.tensor(expected["logits"]), atol=1e-5)
    assert [[w for w, _ in top] for top in mapper.predict(["very large", "fishy", "hot"], top_k=2)] == [
        [w for w, _ in top] for top in expected["predict"]]
    mapper.save_pretrained(tmp_path / "resaved")
    with safe_open(str(tmp_path / "resaved" / "model.safetensors"), framework="pt") as f:
        head_keys = sorted(key for key in f.keys() if not key.startswith("encoder."))
    assert head_keys == (["classifier.bias", "classifier.logit_scale", "classifier.weight"] if name == "cosine-labels"
                         else ["classifier.bias"])  # the vocab head's rows are the tied word embeddings
    with torch.no_grad():
        assert torch.allclose(BertForWordMapping.from_pretrained(tmp_path / "resaved")(**inputs).logits, logits)
