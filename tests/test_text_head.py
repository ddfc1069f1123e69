"""The text head (`head="text"`): each word's row is the encoder's embedding of the word's text."""

import json
import re

import pytest
import torch
from conftest import make_model
from safetensors import safe_open
from test_training import train_args

from hf_bertmap import WordMapper
from hf_bertmap.data import load_informal_eval
from hf_bertmap.pair_files import DataValidationError, read_label_descriptions
from hf_bertmap.training import main

PHRASES = ["very large", "tall", "fishy", "kinda stinky"]
DESCRIPTIONS = {"height": "how tall something is", "smell": "what the nose senses"}


def text_mapper(tokenizer, descriptions=None, **kwargs) -> WordMapper:
    mapper = WordMapper(make_model(head="text", **kwargs), tokenizer)
    mapper.set_word_texts(descriptions)
    return mapper


def encoded(mapper: WordMapper, texts: list[str]) -> torch.Tensor:
    """The pooled embeddings of `texts` as the text head tokenises them."""
    with torch.no_grad():
        return mapper.model.eval().pool(*mapper.tokenize_word_texts(texts))


def logits(mapper: WordMapper, phrases=PHRASES) -> torch.Tensor:
    with torch.no_grad():
        return mapper.model.eval()(**mapper.tokenizer(phrases, padding=True, return_tensors="pt")).logits


def test_each_row_is_the_encoders_embedding_of_the_words_text(tokenizer):
    mapper = text_mapper(tokenizer, DESCRIPTIONS)
    texts = ["height: how tall something is", "size", "smell: what the nose senses"]
    assert mapper.word_texts(mapper.words, DESCRIPTIONS) == texts
    assert torch.allclose(mapper.model.classifier.rows, encoded(mapper, texts), atol=1e-5)
    pooled = mapper.embed(PHRASES)
    cosines = torch.nn.functional.normalize(pooled, dim=-1) @ torch.nn.functional.normalize(
        encoded(mapper, texts), dim=-1).T
    # learned rows and biases start at zero: the score is the text's alone
    assert torch.allclose(logits(mapper), cosines * mapper.model.classifier.logit_scale.exp(), atol=1e-4)


def test_a_training_step_sends_gradients_through_the_gold_words_texts(tokenizer):
    mapper = text_mapper(tokenizer)
    model = mapper.model.train()
    inputs = tokenizer(PHRASES, padding=True, return_tensors="pt")
    captured = []
    handle = model.encoder.register_forward_hook(
        lambda module, args, kwargs, out: captured.append(kwargs["input_ids"]), with_kwargs=True)
    out = model(**inputs, labels=torch.tensor([[1, -100], [0, -100], [2, 1], [2, -100]]))
    handle.remove()
    out.loss.backward()
    assert len(captured) == 2  # the phrases, then the gold words' texts: 0, 1 and 2
    assert captured[1].shape[0] == 3
    assert model.classifier.logit_scale.grad is not None and model.classifier.bias.grad.abs().sum() > 0
    assert model.encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_a_training_step_also_encodes_the_wrong_words_that_score_highest(tokenizer):
    mapper = text_mapper(tokenizer, label_hard_negatives=1)
    model = mapper.model.train()
    pooled, texts = [], []
    model.classifier.register_forward_pre_hook(lambda module, args: pooled.append(args[0].detach()))
    model.encoder.register_forward_hook(lambda module, args, kwargs, out: texts.append(kwargs["input_ids"]),
                                        with_kwargs=True)
    model(**tokenizer(PHRASES, padding=True, return_tensors="pt"), labels=torch.tensor([1, 1, 1, 1])).loss.backward()
    cosines = torch.nn.functional.normalize(pooled[0], dim=-1) @ torch.nn.functional.normalize(
        model.classifier.rows, dim=-1).T
    hardest = 0 if cosines[:, 0].max() > cosines[:, 2].max() else 2  # the gold word 1 aside
    expected = mapper.tokenize_word_texts([mapper.words[1], mapper.words[hardest]])[0]
    assert torch.equal(texts[1], expected[:, : texts[1].shape[1]])


def test_the_encoded_training_softmax_scores_only_the_words_encoded_in_the_step(tokenizer):
    mapper = text_mapper(tokenizer, label_training_softmax="encoded")
    model = mapper.model.train()
    inputs = tokenizer(PHRASES, padding=True, return_tensors="pt")
    out = model(**inputs, labels=torch.tensor([1, 1, 2, 2]))
    assert (out.logits[:, 0] < -1e3).all() and (out.logits[:, 1:] > -1e3).all()  # word 0 was not encoded
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert (model.eval()(**inputs).logits > -1e3).all()  # outside training, every word is scored


def test_a_refresh_inside_a_step_keeps_its_mixed_precision_and_the_saved_rows_do_not(tokenizer):
    mapper = text_mapper(tokenizer)
    model, head = mapper.model, mapper.model.classifier
    exact = head.rows.clone()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        head.encode_rows(model, in_step=True)
        in_step = head.rows.clone()
        head.encode_rows(model)
    assert not torch.equal(in_step, exact) and torch.allclose(in_step, exact, atol=0.1)
    assert torch.allclose(head.rows, exact, atol=1e-6)


def test_rows_are_encoded_anew_once_training_moved_the_encoder(tokenizer):
    mapper = text_mapper(tokenizer)
    model = mapper.model
    before = model.classifier.rows.clone()
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model(**tokenizer(PHRASES, padding=True, return_tensors="pt"), labels=torch.tensor([1, 0, 2, 2])).loss.backward()
    optimizer.step()
    assert model.classifier.stale and torch.equal(model.classifier.rows, before)
    logits(mapper)  # evaluation encodes the rows with the trained encoder first
    assert not model.classifier.stale
    assert torch.allclose(model.classifier.rows, encoded(mapper, mapper.words), atol=1e-5)
    assert not torch.allclose(model.classifier.rows, before, atol=1e-3)


def test_every_label_refresh_steps_steps_all_rows_are_encoded_anew(tokenizer):
    mapper = text_mapper(tokenizer, label_refresh_steps=2)
    model = mapper.model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    inputs = tokenizer(PHRASES, padding=True, return_tensors="pt")
    rows = []
    for _ in range(3):
        model(**inputs, labels=torch.tensor([1, 0, 2, 2])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        rows.append(model.classifier.rows.clone())
    assert torch.equal(rows[0], rows[1]) and not torch.allclose(rows[1], rows[2], atol=1e-4)  # step 3 refreshed


def test_a_saved_text_head_reloads_with_its_texts_and_current_rows(tokenizer, tmp_path):
    mapper = text_mapper(tokenizer, DESCRIPTIONS)
    model = mapper.model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model(**tokenizer(PHRASES, padding=True, return_tensors="pt"), labels=torch.tensor([1, 0, 2, 2])).loss.backward()
    optimizer.step()
    mapper.save_pretrained(tmp_path / "saved")  # rows encoded by the saved encoder, not the one before the step
    with safe_open(str(tmp_path / "saved" / "model.safetensors"), framework="pt") as f:
        assert {"classifier.rows", "classifier.text_ids", "classifier.text_mask"} <= set(f.keys())
    reloaded = WordMapper.from_pretrained(tmp_path / "saved")
    assert torch.allclose(reloaded.model.classifier.rows, encoded(reloaded, mapper.word_texts(
        mapper.words, DESCRIPTIONS)), atol=1e-5)
    assert not reloaded.model.classifier.stale
    assert torch.allclose(logits(reloaded), logits(mapper), atol=1e-5)


def test_a_saved_text_head_loads_as_remote_code_with_the_same_logits(tokenizer, tmp_path):
    from transformers import AutoModel

    mapper = text_mapper(tokenizer, DESCRIPTIONS)
    mapper.save_pretrained(tmp_path / "saved")
    remote = AutoModel.from_pretrained(tmp_path / "saved", trust_remote_code=True)
    inputs = tokenizer(PHRASES, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(remote.eval()(**inputs).logits, logits(mapper), atol=1e-5)


def test_onnx_scores_with_the_stored_rows_exactly_as_pytorch(tokenizer, tmp_path):
    pytest.importorskip("onnxruntime")
    mapper = text_mapper(tokenizer, DESCRIPTIONS)
    mapper.export_onnx(tmp_path / "onnx")
    served = WordMapper.from_pretrained(tmp_path / "onnx", backend="onnx")
    expected, got = mapper.predict(PHRASES, top_k=3, min_score=0.0), served.predict(PHRASES, top_k=3, min_score=0.0)
    assert [dict(top) for top in got] == [pytest.approx(dict(top), abs=1e-5) for top in expected]


def test_add_labels_gives_a_new_word_its_real_row_and_keeps_the_old_scores(tokenizer, tmp_path):
    mapper = text_mapper(tokenizer)
    before = logits(mapper)
    assert mapper.add_labels(["temperature", "value"], descriptions={"value": "what something is worth"}) == [
        "temperature", "value"]
    head = mapper.model.classifier
    assert torch.allclose(head.rows[3:], encoded(mapper, ["temperature", "value: what something is worth"]),
                          atol=1e-5)
    assert torch.allclose(head.bias[3:], before.new_zeros(2))  # the mean of the old biases
    assert head.weight.shape == (5, head.rows.shape[1]) and not head.weight[3:].any()
    after = logits(mapper)
    assert after.shape == (4, 5) and torch.allclose(after[:, :3], before, atol=1e-5)
    head.encode_rows(mapper.model)  # the new words' texts are kept: encoding anew gives the same rows
    assert torch.allclose(logits(mapper), after, atol=1e-5)
    mapper.save_pretrained(tmp_path / "extended")
    reloaded = WordMapper.from_pretrained(tmp_path / "extended")
    assert reloaded.words == ["height", "size", "smell", "temperature", "value"]
    assert torch.allclose(logits(reloaded), after, atol=1e-5)


def test_label_head_operations_are_refused_with_what_the_text_heads_rows_are(tokenizer):
    with pytest.raises(ValueError, match="rows of head='text' are the encoder's embeddings of the words' texts"):
        text_mapper(tokenizer).model.classifier.initialize_from(torch.randn(3, 32))


def test_learned_rows_add_to_the_text_score_and_freezing_keeps_the_text_score_alone(tokenizer):
    mapper = text_mapper(tokenizer)
    head = mapper.model.classifier
    text_only = logits(mapper)
    with torch.no_grad():
        head.weight[1] = 1.0
    pooled = mapper.embed(PHRASES)
    assert torch.allclose(logits(mapper)[:, 1], text_only[:, 1] + pooled.sum(dim=-1), atol=1e-4)
    assert torch.allclose(logits(mapper)[:, [0, 2]], text_only[:, [0, 2]], atol=1e-6)
    head.freeze()
    trained = {name for name, p in mapper.model.named_parameters() if p.requires_grad and "classifier" in name}
    assert trained == {"classifier.logit_scale"}


def test_a_descriptions_file_is_read_normalised_and_checked(tmp_path):
    good = tmp_path / "descriptions.tsv"
    good.write_text("word\tdescription\nSmell\twhat  the nose\tsenses\n".replace("nose\t", "nose "))
    assert read_label_descriptions(str(good)) == {"smell": "what the nose senses"}
    twice = tmp_path / "twice.csv"
    twice.write_text("word,description\nsmell,a\nSMELL,b\n")
    with pytest.raises(DataValidationError, match=r"twice.csv, row 2: 'smell' is described twice"):
        read_label_descriptions(str(twice))
    empty = tmp_path / "empty.csv"
    empty.write_text("word,description\nsmell,\n")
    with pytest.raises(DataValidationError, match=r"empty.csv, row 1: empty description"):
        read_label_descriptions(str(empty))


def test_the_builtin_words_wordnet_glosses_describe_every_builtin_word():
    from hf_bertmap.data import BUILTIN_DATA
    from hf_bertmap.pair_files import read_pair_file

    glosses = read_label_descriptions("wordnet")
    targets = {t for t in read_pair_file(str(BUILTIN_DATA), ("target",))["target"]}
    assert set(glosses) == targets
    assert glosses["smell"] == "any property detected by the olfactory system"
    evaluation = set(load_informal_eval()["phrase"]) | {"fishy", "chonky", "very chonky"}
    for word, gloss in glosses.items():
        assert not [p for p in evaluation if re.search(rf"\b{re.escape(p)}\b", gloss)], word


def test_train_py_trains_a_text_head_with_descriptions(tiny_backbone, pair_files, tmp_path):
    descriptions = tmp_path / "descriptions.csv"
    descriptions.write_text("word,description\nsize,how big something is\nsmell,what the nose senses\n")
    output = tmp_path / "out"
    results = main(train_args(tiny_backbone, pair_files, output, "--head", "text", "--label_descriptions",
                              str(descriptions), "--num_train_epochs", "2", "--label_refresh_steps", "3"))
    assert 0.0 <= results["test_accuracy"] <= 1.0
    config = json.loads((output / "config.json").read_text())
    assert config["head"] == "text" and config["label_refresh_steps"] == 3
    mapper = WordMapper.from_pretrained(output)
    assert mapper.words == ["height", "pitch", "size", "smell", "temperature", "value"]  # the training targets
    texts = mapper.word_texts(mapper.words, {"size": "how big something is", "smell": "what the nose senses"})
    assert "size: how big something is" in texts
    assert torch.allclose(mapper.model.classifier.rows, encoded(mapper, texts), atol=1e-4)


def test_a_missing_descriptions_file_is_refused_before_anything_runs(tiny_backbone, pair_files, tmp_path):
    with pytest.raises(FileNotFoundError, match="--label_descriptions: no such file: nowhere.tsv"):
        main(train_args(tiny_backbone, pair_files, tmp_path / "out", "--label_descriptions", "nowhere.tsv"))
    assert not (tmp_path / "out").exists()
