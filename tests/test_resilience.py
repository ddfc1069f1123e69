"""Determinism, resume after SIGKILL, atomic final save, and the bad-input matrix."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_model, write_pairs

from hf_bertmap import WordMapper
from hf_bertmap.data import DataValidationError
from hf_bertmap.training import main

ROOT = Path(__file__).resolve().parents[1]


def args(backbone, files, output, *extra):
    return ["--model_name_or_path", str(backbone), "--train_file", str(files["train"]),
            "--validation_file", str(files["validation"]), "--test_file", str(files["test"]),
            "--output_dir", str(output), "--learning_rate", "3e-3", "--per_device_train_batch_size", "4",
            "--disable_tqdm", "true", "--use_cpu", "true", *extra]


def metrics_of(results: dict) -> dict:
    return {k: v for k, v in results.items() if k.split("_")[0] in ("eval", "test") and "runtime" not in k
            and "per_second" not in k}


def test_the_same_seed_gives_the_same_metrics_twice(tiny_backbone, pair_files, tmp_path):
    first = main(args(tiny_backbone, pair_files, tmp_path / "a", "--num_train_epochs", "2"))
    second = main(args(tiny_backbone, pair_files, tmp_path / "b", "--num_train_epochs", "2"))
    assert metrics_of(first) == metrics_of(second) and metrics_of(first)


KILLER = """
import os, signal, sys
from transformers import TrainerCallback
from hf_bertmap import training

class KillAfterCheckpoint(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)

original = training.BertMapTrainer.__init__
def init(self, *a, **k):
    original(self, *a, **k)
    self.add_callback(KillAfterCheckpoint())
training.BertMapTrainer.__init__ = init
training.main(sys.argv[1:])
"""


def test_a_run_killed_after_a_checkpoint_resumes_to_the_same_result(tiny_backbone, pair_files, tmp_path):
    schedule = ["--max_steps", "24", "--save_strategy", "steps", "--save_steps", "8", "--eval_strategy", "no",
                "--load_best_model_at_end", "false", "--save_total_limit", "5", "--augment_copies", "0"]
    reference = main(args(tiny_backbone, pair_files, tmp_path / "reference", *schedule))

    output = tmp_path / "killed"
    killed = subprocess.run([sys.executable, "-c", KILLER.format(kill_at=13),
                             *args(tiny_backbone, pair_files, output, *schedule)],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-8"]
    assert not (output / "model.safetensors").exists()

    resumed = main(args(tiny_backbone, pair_files, output, *schedule, "--resume_from_checkpoint", "last"))
    for key, value in metrics_of(reference).items():
        assert resumed[key] == pytest.approx(value, abs=1e-4), key
    state = json.loads((output / "trainer_state.json").read_text())
    assert state["global_step"] == 24


def test_resume_without_a_checkpoint_or_from_a_corrupt_one_is_refused(tiny_backbone, pair_files, tmp_path):
    output = tmp_path / "out"
    with pytest.raises(ValueError, match="--resume_from_checkpoint last: no checkpoint-\\* folder in"):
        main(args(tiny_backbone, pair_files, output, "--resume_from_checkpoint", "last"))
    checkpoint = output / "checkpoint-5"
    make_model().save_pretrained(checkpoint)
    (checkpoint / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(OSError, match=r"checkpoint-5/model.safetensors: corrupt or unreadable safetensors"):
        main(args(tiny_backbone, pair_files, output, "--resume_from_checkpoint", "last"))


def test_a_corrupt_model_file_is_named_when_loading(saved_model):
    (saved_model / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{bad json")
    with pytest.raises(OSError, match=r"tiny-mapper/model.safetensors: corrupt or unreadable safetensors file"):
        WordMapper.from_pretrained(saved_model)


def test_a_crash_while_saving_keeps_the_previous_model_loadable(tiny_backbone, pair_files, tmp_path, monkeypatch):
    output = tmp_path / "out"
    main(args(tiny_backbone, pair_files, output, "--num_train_epochs", "1"))
    before = WordMapper.from_pretrained(output).predict(["large", "hot"], top_k=3)
    weights = (output / "model.safetensors").read_bytes()

    from hf_bertmap import training

    def crash(*a, **k):
        raise RuntimeError("simulated crash while saving")

    monkeypatch.setattr(training, "write_model_card", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(args(tiny_backbone, pair_files, output, "--num_train_epochs", "2", "--seed", "7"))
    assert (output / "model.safetensors").read_bytes() == weights
    assert WordMapper.from_pretrained(output).predict(["large", "hot"], top_k=3) == before
    assert (tmp_path / "out.saving" / "model.safetensors").is_file()  # the new model, complete, beside it

    monkeypatch.undo()
    main(args(tiny_backbone, pair_files, output, "--num_train_epochs", "2", "--seed", "7"))
    assert not (tmp_path / "out.saving").exists() and not (tmp_path / "out.previous").exists()
    assert (output / "model.safetensors").read_bytes() != weights
    assert any(p.name.startswith("checkpoint-") for p in output.iterdir())


def test_long_non_ascii_emoji_and_duplicated_phrases_train_and_predict(tiny_backbone, tmp_path, caplog):
    rows = [("large", "size"), ("large", "size"), ("LARGE", "Size"), ("huge", "size"), ("hot", "temperature"),
            ("chaud ☀️ très", "temperature"), ("🔥🔥", "temperature"), ("big " * 2500, "size"),
            ("cold", "temperature"), ("tiny", "size")]
    files = {"train": write_pairs(tmp_path / "train.csv", rows),
             "validation": write_pairs(tmp_path / "val.csv", [("small", "size"), ("warm", "temperature")]),
             "test": write_pairs(tmp_path / "test.csv", [("small", "size"), ("cool", "temperature"),
                                                         ("loud", "loudness")])}
    assert len(rows[7][0]) == 10_000
    with caplog.at_level("WARNING"):
        results = main(args(tiny_backbone, files, tmp_path / "out", "--num_train_epochs", "1",
                            "--max_seq_length", "16", "--misspellings", "0", "--comparatives", "false"))
    messages = " ".join(record.getMessage() for record in caplog.records)
    # the 10,000-character phrase and its modifier copy
    assert "2 phrase(s) in train reached max_seq_length=16 tokens and were truncated" in messages
    assert "test: 1 target word(s) never seen in training" in messages and "'loudness'" in messages
    assert results["train_samples"] == 2 * 8  # duplicates and case variants are one phrase each
    assert 0 <= results["test_accuracy"] <= 2 / 3  # 'loud -> loudness' cannot be right
    mapper = WordMapper.from_pretrained(tmp_path / "out")
    assert len(mapper.predict(["🔥", "x" * 10_000], top_k=2)) == 2


def test_an_error_leaves_an_existing_output_folder_untouched(tiny_backbone, pair_files, tmp_path):
    output = tmp_path / "out"
    main(args(tiny_backbone, pair_files, output, "--num_train_epochs", "1"))
    listing = {p.name: p.stat().st_mtime_ns for p in output.iterdir()}
    bad = write_pairs(tmp_path / "bad.csv", [("a", "b")], header=("word", "target"))
    with pytest.raises(DataValidationError, match="bad.csv: no column 'phrase'"):
        main(args(tiny_backbone, dict(pair_files, train=bad), output))
    assert {p.name: p.stat().st_mtime_ns for p in output.iterdir()} == listing
    assert os.path.isfile(output / "model.safetensors")
