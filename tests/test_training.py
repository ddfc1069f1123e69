"""train.py end to end on a tiny random BERT: the loss falls, the output folder is complete, bad input fails early."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import write_pairs
from safetensors.torch import load_file
from transformers import AutoModel

from hf_bertmap import WordMapper
from hf_bertmap.arguments import BertMapTrainingArguments
from hf_bertmap.calibration import MEMORY_CLOSENESSES, MEMORY_WEIGHTS, fit_temperature
from hf_bertmap.metrics import calibration_error
from hf_bertmap.modeling_bertmap import masked_mean
from hf_bertmap.pair_files import DataValidationError
from hf_bertmap.training import main, parse_args

ROOT = Path(__file__).resolve().parents[1]


def train_args(backbone, files, output_dir, *extra):
    return [
        "--model_name_or_path", str(backbone),
        "--train_file", str(files["train"]), "--validation_file", str(files["validation"]),
        "--test_file", str(files["test"]), "--output_dir", str(output_dir),
        "--num_train_epochs", "8", "--learning_rate", "3e-3", "--per_device_train_batch_size", "8",
        "--logging_steps", "1", "--disable_tqdm", "true", "--use_cpu", "true", *extra,
    ]


def test_trainer_run_lowers_the_loss_and_writes_a_complete_output_folder(tiny_backbone, pair_files, tmp_path):
    output = tmp_path / "out"
    results = main(train_args(tiny_backbone, pair_files, output, "--num_train_epochs", "20", "--augment_copies", "0",
                              "--misspellings", "0", "--comparatives", "false", "--learning_rate", "1e-2"))

    state = json.loads((output / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) >= 20 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 * 0.6

    for name in ("config.json", "model.safetensors", "configuration_bertmap.py", "modeling_bertmap.py",
                 "decoding_bertmap.py", "pipeline_bertmap.py", "decoding_config.json", "memory.safetensors",
                 "tokenizer.json", "tokenizer_config.json", "all_results.json", "README.md"):
        assert (output / name).is_file(), name
    all_results = json.loads((output / "all_results.json").read_text())
    for key in ("train_loss", "eval_accuracy", "test_accuracy", "test_accuracy_at_5", "test_macro_f1"):
        assert key in all_results and key in results
    assert 0.0 <= all_results["test_accuracy"] <= all_results["test_accuracy_at_5"] <= 1.0

    config = json.loads((output / "config.json").read_text())
    assert sorted(config["label2id"]) == sorted(config["id2label"].values()) == ["height", "pitch", "size",
                                                                                 "smell", "temperature", "value"]
    card = (output / "README.md").read_text()
    front_matter = yaml.safe_load(card.split("---")[1])
    values = {m["name"]: m["value"] for m in front_matter["model-index"][0]["results"][0]["metrics"]}
    assert values["Accuracy@1"] == round(all_results["test_accuracy"], 4)
    assert values["Accuracy@5"] == round(all_results["test_accuracy_at_5"], 4)
    assert values["Macro-F1"] == round(all_results["test_macro_f1"], 4)

    mapper = WordMapper.from_pretrained(output)
    assert mapper.predict("huge", top_k=1)[0][0] in config["label2id"]


def test_the_card_has_a_widget_the_epoch_table_versions_pictures_and_passes_hub_validation(tiny_backbone, pair_files,
                                                                                           tmp_path):
    from hub_server import validate_model_card

    output = tmp_path / "out"
    main(train_args(tiny_backbone, pair_files, output, "--num_train_epochs", "2"))
    card = (output / "README.md").read_text()
    assert validate_model_card(card) == []
    front_matter = yaml.safe_load(card.split("---")[1])
    assert "base_model" not in front_matter and "datasets" not in front_matter  # a local backbone, a local file
    test_phrases = [row.split(",")[0] for row in pair_files["test"].read_text().splitlines()[1:]]
    assert [w["text"] for w in front_matter["widget"]] == test_phrases[:3]
    assert "### Training results" in card
    assert [row.split(" | ")[0] for row in re.findall(r"^\| [\d.]+ \| \d+ \| .*$", card, re.M)] == ["| 1.0", "| 2.0"]
    assert "- transformers 5." in card and "transformers ≥ 5.24" in card
    for row in ("| backbone | tiny-bert", "| pooling | mean |", "| head | labels |", "| head scoring | linear |",
                "| learning_rate | 0.003 |", "| seed | 42 |"):
        assert row in card, row
    for picture in ("training_curve.png", "reliability_diagram.png"):
        assert (output / picture).read_bytes()[:4] == b"\x89PNG" and f"]({picture})" in card


def test_temperature_is_fitted_on_validation_and_saved_unless_disabled(tiny_backbone, pair_files, tmp_path):
    results = main(train_args(tiny_backbone, pair_files, tmp_path / "calibrated", "--num_train_epochs", "2",
                              "--min_score", "0.25", "--memory", "false"))
    decoding = json.loads((tmp_path / "calibrated" / "decoding_config.json").read_text())
    assert decoding["temperature"] == pytest.approx(results["temperature"]) and decoding["temperature"] != 1.0
    assert decoding["min_score"] == 0.25 and decoding["max_length"] == 32
    assert 0.0 <= results["eval_ece_before_calibration"] <= 1.0 and 0.0 <= results["test_ece"] <= 1.0

    # The stored temperature is the one that fits the saved model's own validation logits.
    mapper = WordMapper.from_pretrained(tmp_path / "calibrated")
    rows = [line.split(",") for line in pair_files["validation"].read_text().splitlines()[1:]]
    logits = torch.cat([batch for _, batch, _ in mapper.iter_outputs([phrase for phrase, _ in rows])])
    labels = torch.tensor([mapper.model.config.label2id.get(target, -100) for _, target in rows])
    assert fit_temperature(logits, labels) == pytest.approx(decoding["temperature"], rel=1e-3)
    assert results["eval_ece_after_calibration"] == pytest.approx(calibration_error(logits / decoding["temperature"],
                                                                                    labels), abs=1e-6)

    results = main(train_args(tiny_backbone, pair_files, tmp_path / "raw", "--num_train_epochs", "2",
                              "--calibrate", "false", "--memory", "false"))
    assert json.loads((tmp_path / "raw" / "decoding_config.json").read_text())["temperature"] == 1.0
    assert "temperature" not in results


def test_training_phrases_are_memorised_with_a_weight_chosen_on_validation(tiny_backbone, pair_files, tmp_path):
    results = main(train_args(tiny_backbone, pair_files, tmp_path / "out", "--num_train_epochs", "2"))
    decoder = WordMapper.from_pretrained(tmp_path / "out").decoding
    train_phrases = {row.split(",")[0] for row in pair_files["train"].read_text().splitlines()[1:]}
    assert set(decoder.memory.phrases) == train_phrases and results["memory_size"] == len(train_phrases)
    assert decoder.config.memory_weight == results["memory_weight"] in MEMORY_WEIGHTS
    assert decoder.config.memory_closeness == results["memory_closeness"] in MEMORY_CLOSENESSES
    assert results["eval_accuracy_with_memory"] >= results["eval_accuracy_without_memory"]
    assert results["eval_accuracy"] == pytest.approx(results["eval_accuracy_with_memory"])

    # Training on from it starts without the (stale) memory and stores a fresh one.
    again = main(train_args(tmp_path / "out", pair_files, tmp_path / "again", "--num_train_epochs", "1"))
    assert again["memory_size"] == len(train_phrases)
    raw = main(train_args(tiny_backbone, pair_files, tmp_path / "raw", "--num_train_epochs", "1", "--memory", "false"))
    assert "memory_size" not in raw and not (tmp_path / "raw" / "memory.safetensors").exists()


def test_training_continues_from_a_bertmap_checkpoint_with_its_labels(tiny_backbone, pair_files, tmp_path):
    first = tmp_path / "first"
    main(train_args(tiny_backbone, pair_files, first, "--num_train_epochs", "1"))
    second = tmp_path / "second"
    main(train_args(first, pair_files, second, "--num_train_epochs", "1"))
    assert json.loads((second / "config.json").read_text())["id2label"] == json.loads(
        (first / "config.json").read_text())["id2label"]


def test_a_checkpoint_with_other_words_gives_its_encoder_a_new_head_over_the_training_targets(
        tiny_backbone, pair_files, tmp_path):
    first = tmp_path / "first"
    main(train_args(tiny_backbone, pair_files, first, "--num_train_epochs", "1"))
    other = write_pairs(tmp_path / "other.csv", [("big", "bulk"), ("huge", "bulk"), ("hot", "heat"),
                                                 ("warm", "heat"), ("cold", "heat"), ("tiny", "bulk")])
    second = tmp_path / "second"
    main(train_args(first, {"train": other, "validation": other, "test": other}, second, "--num_train_epochs", "1",
                    "--learning_rate", "0", "--head_learning_rate", "0"))
    assert WordMapper.from_pretrained(second).words == ["bulk", "heat"]
    trained, started = (load_file(folder / "model.safetensors") for folder in (first, second))
    key = "encoder.encoder.layer.0.attention.self.query.weight"
    backbone = load_file(tiny_backbone / "model.safetensors")[key.removeprefix("encoder.")]
    assert torch.equal(trained[key], started[key]) and not torch.equal(backbone, started[key])  # the first's encoder


def test_vocab_head_trains_over_the_whole_vocabulary(tiny_backbone, pair_files, tmp_path, tokenizer):
    output = tmp_path / "vocab"
    results = main(train_args(tiny_backbone, pair_files, output, "--head", "vocab", "--num_train_epochs", "1"))
    config = json.loads((output / "config.json").read_text())
    assert len(config["id2label"]) == len(tokenizer.get_vocab())
    assert "test_accuracy" in results


@pytest.mark.parametrize(("flag", "message"), [
    (["--pooling", "max"], "--pooling: unknown value 'max'; choose one of mean, cls, pooler"),
    (["--head", "mlp"], "--head: unknown value 'mlp'; choose one of labels, text, vocab"),
])
def test_unknown_pooling_or_head_is_refused_when_parsing(flag, message):
    with pytest.raises(ValueError, match=message):
        parse_args(flag)


def test_bad_data_fails_before_anything_in_output_dir_is_touched(tiny_backbone, pair_files, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "config.json").write_text('{"model_type": "bertmap"}')
    (output / "model.safetensors").write_bytes(b"previous model")
    bad = write_pairs(tmp_path / "bad.csv", [("big", "size"), ("", "size")])
    files = dict(pair_files, train=bad)
    with pytest.raises(DataValidationError, match=r"bad.csv, row 2: empty phrase"):
        main(train_args(tiny_backbone, files, output))
    assert sorted(p.name for p in output.iterdir()) == ["config.json", "model.safetensors"]
    assert (output / "model.safetensors").read_bytes() == b"previous model"


def test_vocab_head_with_multi_token_targets_fails_before_training(tiny_backbone, pair_files, tmp_path):
    bad = write_pairs(tmp_path / "multi.csv", [("big", "size"), ("hot", "taste property")])
    with pytest.raises(DataValidationError, match=r"1 target\(s\) are not: 'taste property'"):
        main(train_args(tiny_backbone, dict(pair_files, train=bad), tmp_path / "out", "--head", "vocab"))
    assert not (tmp_path / "out").exists()


def test_arguments_can_come_from_a_json_file(tiny_backbone, pair_files, tmp_path):
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"model_name_or_path": str(tiny_backbone), "train_file": str(pair_files["train"]),
                                "output_dir": str(tmp_path / "o"), "pooling": "cls", "num_train_epochs": 2}))
    model_args, data_args, training_args = parse_args([str(path)])
    assert (model_args.pooling, training_args.num_train_epochs, data_args.train_file) == (
        "cls", 2, str(pair_files["train"]))


def test_defaults_train_the_builtin_data_into_bertmap_attributes():
    model_args, data_args, training_args = parse_args([])
    assert model_args.model_name_or_path == "all-mpnet-base-v2" and data_args.train_file is None
    assert training_args.output_dir == "bertmap-attributes"
    assert training_args.do_train and training_args.do_eval and training_args.do_predict
    assert training_args.load_best_model_at_end and training_args.metric_for_best_model == "accuracy"
    assert training_args.train_sampling_strategy == "group_by_length"
    assert (training_args.head_learning_rate, training_args.learning_rate) == (3e-3, 1e-4)
    assert model_args.init_head_from_label_names and model_args.calibrate and model_args.memory
    assert model_args.min_score == 0.1 and data_args.misspellings == 0.3 and data_args.comparatives
    assert not parse_args(["--head", "vocab"])[0].init_head_from_label_names


def test_train_py_help_lists_our_and_trainer_flags():
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for flag in ("--pooling", "--head", "--train_file", "--max_train_samples", "--push_to_hub", "--use_cpu"):
        assert flag in result.stdout


def test_head_learning_rate_gives_the_head_its_own_param_groups(tmp_path):
    from conftest import make_model

    from hf_bertmap.arguments import BertMapTrainingArguments
    from hf_bertmap.trainer import BertMapTrainer

    model = make_model()
    args = BertMapTrainingArguments(output_dir=str(tmp_path), learning_rate=1e-4, weight_decay=0.01, use_cpu=True,
                                    head_learning_rate=3e-3, eval_strategy="no", load_best_model_at_end=False)
    optimizer = BertMapTrainer(model=model, args=args).create_optimizer()
    head_params = {id(p) for p in model.classifier.parameters()}
    for group in optimizer.param_groups:
        in_head = {id(p) in head_params for p in group["params"]}
        assert len(in_head) == 1
        assert group["lr"] == (3e-3 if in_head == {True} else 1e-4)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    args.head_learning_rate = None
    plain = BertMapTrainer(model=make_model(), args=args).create_optimizer()
    assert {g["lr"] for g in plain.param_groups} == {1e-4}


def test_zero_training_samples_is_refused_before_training(tiny_backbone, pair_files, tmp_path):
    with pytest.raises(ValueError, match=r"No training phrases \(is --max_train_samples 0, or --train_file missing"):
        main(train_args(tiny_backbone, pair_files, tmp_path / "out", "--max_train_samples", "0"))
    assert not (tmp_path / "out").exists()


def test_preprocessing_is_cached_and_reused_by_the_next_run(tiny_backbone, pair_files, tmp_path, monkeypatch):
    from hf_bertmap import data

    calls = []
    tokenize = data.tokenize_splits
    monkeypatch.setattr(data, "tokenize_splits", lambda *a, **k: calls.append(1) or tokenize(*a, **k))
    flags = ["--num_train_epochs", "1", "--do_eval", "false", "--do_predict", "false"]
    main(train_args(tiny_backbone, pair_files, tmp_path / "a", *flags))
    assert len(calls) == 1
    main(train_args(tiny_backbone, pair_files, tmp_path / "b", *flags))
    assert len(calls) == 1, "the second run must load the cached preprocessing"
    main(train_args(tiny_backbone, pair_files, tmp_path / "c", *flags, "--augment_copies", "2"))
    assert len(calls) == 2, "other arguments make another cache entry"
    main(train_args(tiny_backbone, pair_files, tmp_path / "d", *flags, "--overwrite_cache", "true"))
    assert len(calls) == 3


def test_a_trained_model_is_evaluated_on_a_file_without_training(tiny_backbone, pair_files, tmp_path):
    main(train_args(tiny_backbone, pair_files, tmp_path / "model", "--num_train_epochs", "1"))
    results = main(["--model_name_or_path", str(tmp_path / "model"), "--do_train", "false", "--do_eval", "false",
                    "--test_file", str(pair_files["test"]), "--output_dir", str(tmp_path / "eval"),
                    "--use_cpu", "true"])
    mapper = WordMapper.from_pretrained(tmp_path / "model")
    rows = [line.split(",") for line in pair_files["test"].read_text().splitlines()[1:]]
    expected = mapper.evaluate([p for p, _ in rows], [[t] for _, t in rows])
    assert results["test_accuracy"] == pytest.approx(expected["accuracy"]) and "train_loss" not in results
    saved = json.loads((tmp_path / "eval" / "test_results.json").read_text())
    assert saved["test_accuracy"] == results["test_accuracy"]
    with pytest.raises(ValueError, match="--do_train false evaluates a trained model"):
        main(["--model_name_or_path", str(tiny_backbone), "--do_train", "false", "--test_file",
              str(pair_files["test"]), "--output_dir", str(tmp_path / "x"), "--use_cpu", "true"])


def test_early_stopping_and_extra_callbacks(tiny_backbone, pair_files, tmp_path):
    from transformers import TrainerCallback

    class CountEvaluations(TrainerCallback):
        evaluations = 0

        def on_evaluate(self, args, state, control, **kwargs):
            CountEvaluations.evaluations += 1

    main(train_args(tiny_backbone, pair_files, tmp_path / "out", "--num_train_epochs", "30", "--learning_rate",
                    "0", "--head_learning_rate", "0", "--early_stopping_patience", "2"),
         callbacks=[CountEvaluations()])
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert CountEvaluations.evaluations == 3 and state["epoch"] == 3.0  # nothing improves after the first


def test_report_to_tensorboard_writes_event_files_offline(tiny_backbone, pair_files, tmp_path):
    pytest.importorskip("tensorboard")
    main(train_args(tiny_backbone, pair_files, tmp_path / "out", "--num_train_epochs", "1", "--report_to",
                    "tensorboard"))
    assert list((tmp_path / "out" / "runs").rglob("events.out.tfevents.*"))  # runs/ moved into the final folder


def resolved(head="labels", num_layers=12, num_labels=285, *flags):
    model_args = parse_args(list(flags))[0]
    plan = model_args.head_plan(num_layers, head, num_labels)
    assert model_args == parse_args(list(flags))[0]  # the parsed arguments stay as they were typed
    return plan.freeze_layers, plan.head_scoring, plan.freeze_head


def test_a_deep_encoder_trains_its_top_third_by_default_and_a_shallow_one_whole():
    assert [resolved("labels", n)[0] for n in (12, 24, 6)] == [8, 16, 0]
    assert resolved("vocab", 12, 30_522)[0] == 0  # tied to the word embeddings
    assert [resolved("labels", 6, n)[0] for n in (285, 77_503)] == [0, 2]  # shallow: large sets only
    assert resolved("labels", 12, 285, "--freeze_layers", "0")[0] == 0


def test_frozen_layers_keep_their_pretrained_weights_through_training(tiny_backbone, pair_files, tmp_path):
    main(train_args(tiny_backbone, pair_files, tmp_path / "model", "--freeze_layers", "1", "--num_train_epochs", "2"))
    trained = WordMapper.from_pretrained(tmp_path / "model").model.encoder.state_dict()
    pretrained = AutoModel.from_pretrained(tiny_backbone).state_dict()
    assert torch.equal(trained["embeddings.word_embeddings.weight"], pretrained["embeddings.word_embeddings.weight"])
    layer_0 = "encoder.layer.0.output.dense.weight"
    assert torch.equal(trained[layer_0], pretrained[layer_0])
    assert not torch.equal(trained["encoder.layer.1.output.dense.weight"],
                           pretrained["encoder.layer.1.output.dense.weight"])


@pytest.mark.parametrize("native, flags, bf16", [
    (True, [], True), (False, [], False), (True, ["--bf16", "false"], False), (True, ["--fp16", "true"], False),
    (False, ["--bf16", "true"], True),
])
def test_bfloat16_is_the_default_on_a_cpu_that_has_it_natively(native, flags, bf16, monkeypatch):
    monkeypatch.setattr("hf_bertmap.arguments.cpu_has_native_bfloat16", lambda: native)
    monkeypatch.setattr(BertMapTrainingArguments, "trains_on_cpu", lambda self: not self.fp16)
    training_args = parse_args(flags)[2]
    assert training_args.bf16 is bf16
    assert training_args.use_cpu is bf16  # what TrainingArguments asks of bfloat16 on a CPU, set for the user


@pytest.mark.parametrize("flags, env", [(["--fsdp", "full_shard"], "false"), ([], "true")])
def test_fsdp_on_the_cpu_is_refused_instead_of_running_ddp_silently(flags, env, monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", env)  # what `accelerate launch` with an FSDP config sets
    monkeypatch.setattr(BertMapTrainingArguments, "trains_on_cpu", lambda self: True)
    with pytest.raises(ValueError, match="FSDP needs GPUs .* configs/accelerate_cpu_ddp.yaml"):
        parse_args(flags)


def test_bfloat16_training_saves_a_float32_model(tiny_backbone, pair_files, tmp_path):
    main(train_args(tiny_backbone, pair_files, tmp_path / "model", "--bf16", "true", "--num_train_epochs", "2"))
    saved = load_file(tmp_path / "model" / "model.safetensors")
    assert {tensor.dtype for tensor in saved.values()} == {torch.float32}
    assert WordMapper.from_pretrained(tmp_path / "model").model.dtype == torch.float32


def test_a_negative_freeze_layers_is_refused_when_parsing():
    with pytest.raises(ValueError, match="--freeze_layers must be >= 0, got -1"):
        parse_args(["--freeze_layers", "-1"])


def test_large_label_sets_get_fixed_cosine_rows_by_default():
    from hf_bertmap.arguments import LARGE_LABEL_SET, ModelArguments

    assert resolved("labels", 6, 285)[1:] == ("linear", False)
    assert resolved("labels", 6, LARGE_LABEL_SET + 1)[1:] == ("cosine", True)
    assert resolved("labels", 6, 285, "--head_scoring", "cosine")[1:] == ("cosine", False)
    assert resolved("labels", 6, LARGE_LABEL_SET + 1, "--freeze_head", "false")[1:] == ("cosine", False)
    # A vocab-head checkpoint trained on with the default --head: its 30,522 tied rows are not a large label set.
    assert resolved("vocab", 12, 30_522)[1:] == ("linear", False)
    with pytest.raises(ValueError, match="--freeze_head applies to --head labels or text only"):
        ModelArguments(head="vocab", freeze_head=True)
    with pytest.raises(ValueError, match="head_scoring='cosine' applies to head='labels' or 'text' only"):
        ModelArguments(head="vocab", head_scoring="cosine")
    assert resolved("text", 12, 285)[1:] == ("cosine", False)


def test_a_text_head_is_refreshed_every_50_steps_or_only_before_use_with_a_large_label_set():
    from hf_bertmap.arguments import LARGE_LABEL_SET, ModelArguments

    small, large = (ModelArguments(head="text").head_plan(12, "text", n) for n in (285, LARGE_LABEL_SET + 1))
    assert (small.label_refresh_steps, large.label_refresh_steps) == (50, 0)
    with pytest.raises(ValueError, match="head='text' scores by cosine"):
        ModelArguments(head="text", head_scoring="linear")


def test_label_file_words_become_outputs_and_a_fixed_head_keeps_their_rows(tiny_backbone, pair_files, tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("girth\nsize\n")
    output = tmp_path / "out"
    main(train_args(tiny_backbone, pair_files, output, "--label_file", str(words), "--head_scoring", "cosine",
                    "--freeze_head", "true", "--num_train_epochs", "2"))
    mapper = WordMapper.from_pretrained(output)
    assert "girth" in mapper.words and mapper.model.config.head_scoring == "cosine"
    encoder = AutoModel.from_pretrained(tiny_backbone).eval()
    names = mapper.tokenizer(mapper.words, padding=True, return_tensors="pt")
    with torch.no_grad():
        embeddings = masked_mean(encoder(**names).last_hidden_state, names["attention_mask"])
    assert torch.allclose(mapper.model.classifier.weight, torch.nn.functional.normalize(embeddings, dim=-1), atol=1e-5)
    assert torch.equal(mapper.model.classifier.bias, torch.zeros(len(mapper.words)))
    assert mapper.model.classifier.logit_scale.item() != pytest.approx(3.0)


def test_a_label_file_is_refused_for_a_bertmap_checkpoint_which_has_its_words(saved_model, pair_files, tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("girth\n")
    with pytest.raises(ValueError, match=r"--label_file gives a new head its output words; .* is a bertmap model"):
        main(train_args(saved_model, pair_files, tmp_path / "out", "--label_file", str(words)))
    assert not (tmp_path / "out").exists()
