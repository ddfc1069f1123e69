"""Determinism, resume after SIGKILL, atomic final save, and the bad-input matrix."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_pairs

from hf_bertmap import WordMapper
from hf_bertmap.pair_files import DataValidationError
from hf_bertmap.trainer import SeededLengthGroupedSampler
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


def test_length_grouped_batches_depend_on_the_seed_and_the_epoch_only():
    sampler = SeededLengthGroupedSampler(4, lengths=[i % 7 + 1 for i in range(40)], seed=3)
    torch.manual_seed(0)
    sampler.set_epoch(1)
    first = list(sampler)
    torch.manual_seed(99)  # another global random state, as at a resume point
    sampler.set_epoch(1)
    assert list(sampler) == first and sorted(first) == list(range(40))
    sampler.set_epoch(2)
    assert list(sampler) != first


def test_resume_last_without_any_checkpoint_is_refused(tiny_backbone, pair_files, tmp_path):
    output = tmp_path / "out"
    with pytest.raises(ValueError, match="--resume_from_checkpoint last: no checkpoint-\\* folder in"):
        main(args(tiny_backbone, pair_files, output, "--resume_from_checkpoint", "last"))


def complete_checkpoints(tiny_backbone, pair_files, output):
    """A run that saved checkpoint-8 and checkpoint-16 (steps of 4 phrases) into `output`."""
    main(args(tiny_backbone, pair_files, output, "--max_steps", "16", "--save_strategy", "steps", "--save_steps", "8",
              "--eval_strategy", "no", "--load_best_model_at_end", "false", "--save_total_limit", "5"))
    return output / "checkpoint-8", output / "checkpoint-16"


def test_resume_last_skips_a_half_written_checkpoint_for_the_newest_complete_one(tiny_backbone, pair_files, tmp_path,
                                                                                caplog):
    output = tmp_path / "out"
    complete_checkpoints(tiny_backbone, pair_files, output)
    half = output / "checkpoint-24"  # cut short by a kill: weights written, no optimizer or trainer state yet
    half.mkdir()
    (half / "config.json").write_text((output / "checkpoint-16" / "config.json").read_text())
    (half / "model.safetensors").write_bytes((output / "checkpoint-16" / "model.safetensors").read_bytes())
    with caplog.at_level("WARNING"):
        results = main(args(tiny_backbone, pair_files, output, "--max_steps", "20", "--eval_strategy", "no",
                            "--load_best_model_at_end", "false", "--resume_from_checkpoint", "last"))
    assert "Skipping checkpoint-24: " in caplog.text and "checkpoint-24/trainer_state.json: missing" in caplog.text
    assert results["train_samples"] > 0
    assert json.loads((output / "trainer_state.json").read_text())["global_step"] == 20


def test_resume_from_a_checkpoint_without_optimizer_state_names_the_missing_file(tiny_backbone, pair_files, tmp_path):
    output = tmp_path / "out"
    _, last = complete_checkpoints(tiny_backbone, pair_files, output)
    (last / "optimizer.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"checkpoint-16/optimizer.pt: missing, so resuming from .* would "
                                                r"start a fresh optimizer"):
        main(args(tiny_backbone, pair_files, output, "--max_steps", "20", "--resume_from_checkpoint", str(last)))


@pytest.mark.parametrize("name", ["optimizer.pt", "model.safetensors", "trainer_state.json"])
def test_resume_from_a_truncated_checkpoint_file_names_it(tiny_backbone, pair_files, tmp_path, name):
    output = tmp_path / "out"
    _, last = complete_checkpoints(tiny_backbone, pair_files, output)
    data = (last / name).read_bytes()
    (last / name).write_bytes(data[: len(data) // 2])  # a full disk or a kill cut it short
    with pytest.raises(OSError, match=rf"checkpoint-16/{name}: corrupt"):
        main(args(tiny_backbone, pair_files, output, "--max_steps", "20", "--resume_from_checkpoint", str(last)))


def test_a_full_disk_while_checkpointing_names_the_checkpoint(tiny_backbone, pair_files, tmp_path, monkeypatch):
    import torch

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match=r"out/checkpoint-8: could not be written \(\[Errno 28\] No space left"):
        main(args(tiny_backbone, pair_files, tmp_path / "out", "--max_steps", "8", "--save_strategy", "steps",
                  "--save_steps", "8", "--eval_strategy", "no", "--load_best_model_at_end", "false"))


def test_a_corrupt_model_file_is_named_when_loading(saved_model):
    (saved_model / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{bad json")
    with pytest.raises(OSError, match=r"tiny-mapper/model.safetensors: corrupt or unreadable safetensors file"):
        WordMapper.from_pretrained(saved_model)


def test_a_crash_while_saving_keeps_the_previous_model_and_the_new_files_are_reported_not_deleted(
        tiny_backbone, pair_files, tmp_path, monkeypatch, caplog):
    output = tmp_path / "out"
    main(args(tiny_backbone, pair_files, output, "--num_train_epochs", "1"))
    before = WordMapper.from_pretrained(output).predict(["large", "hot"], top_k=3)
    weights = (output / "model.safetensors").read_bytes()

    from hf_bertmap.model_card import BertMapCardData

    def crash(*a, **k):
        raise RuntimeError("simulated crash while saving")

    monkeypatch.setattr(BertMapCardData, "render", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(args(tiny_backbone, pair_files, output, "--num_train_epochs", "2", "--seed", "7"))
    assert (output / "model.safetensors").read_bytes() == weights
    assert WordMapper.from_pretrained(output).predict(["large", "hot"], top_k=3) == before
    (staging,) = tmp_path.glob(".out.saving-*")  # the new model, complete but for its card, beside it
    assert (staging / "model.safetensors").is_file()

    monkeypatch.undo()
    with caplog.at_level("WARNING"):
        main(args(tiny_backbone, pair_files, output, "--num_train_epochs", "2", "--seed", "7"))
    assert f"{staging}: left by an interrupted save into {output}; nothing in it was deleted" in caplog.text
    assert (staging / "model.safetensors").is_file()
    assert not list(tmp_path.glob(".out.previous-*"))
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
                            "--max_seq_length", "16", "--misspellings", "0", "--comparatives", "false",
                            "--augment_copies", "1"))
    messages = " ".join(record.getMessage() for record in caplog.records)
    # the 10,000-character phrase and its modifier copy
    assert "2 phrase(s) in train reached max_seq_length=16 tokens and were truncated" in messages
    assert "test: 1 target word(s) that are not output words" in messages and "'loudness'" in messages
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
