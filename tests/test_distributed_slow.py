"""Two real DDP ranks on the CPU (gloo) via `accelerate launch` and `torchrun`: both train, one writes."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hf_bertmap.training import main

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def train_flags(backbone, files, output, batch_size):
    return ["--use_cpu", "true", "--model_name_or_path", str(backbone), "--train_file", str(files["train"]),
            "--validation_file", str(files["validation"]), "--test_file", str(files["test"]),
            "--output_dir", str(output), "--per_device_train_batch_size", str(batch_size),
            "--num_train_epochs", "3", "--learning_rate", "3e-3", "--disable_tqdm", "true"]


def last_eval_loss(folder) -> float:
    log = json.loads((folder / "trainer_state.json").read_text())["log_history"]
    return [entry["eval_loss"] for entry in log if "eval_loss" in entry][-1]


@pytest.mark.parametrize("launcher", ["accelerate", "torchrun"])
def test_two_ranks_train_like_one_process_with_the_same_global_batch(launcher, tiny_backbone, pair_files, tmp_path):
    single = main(train_flags(tiny_backbone, pair_files, tmp_path / "single", batch_size=8))

    output = tmp_path / "ddp"
    if launcher == "accelerate":
        command = [shutil.which("accelerate"), "launch", "--config_file",
                   str(ROOT / "configs" / "accelerate_cpu_ddp.yaml"), str(ROOT / "train.py")]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                   str(ROOT / "train.py")]
    env = dict(os.environ, HF_DATASETS_CACHE=str(tmp_path / "ddp-datasets-cache"))  # not the single run's cache
    result = subprocess.run(command + train_flags(tiny_backbone, pair_files, output, batch_size=4), env=env,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300, cwd=tmp_path)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    for rank in (0, 1):
        assert f"Process rank: {rank}, device: cpu" in log and "distributed training: True" in log
    assert log.count("very chonky ->") == 1  # only the main process predicts, writes and renders the card
    # rank 0 preprocesses first (main_process_first) and caches; rank 1 loads its result
    assert log.count("Reusing the preprocessed data cached") == 1

    ddp = json.loads((output / "all_results.json").read_text())
    assert ddp["train_samples"] == single["train_samples"]
    assert ddp["train_loss"] == pytest.approx(single["train_loss"], abs=0.05)
    assert last_eval_loss(output) == pytest.approx(last_eval_loss(tmp_path / "single"), abs=0.05)
    assert (output / "model.safetensors").is_file() and (output / "README.md").is_file()
    assert not (tmp_path / "ddp.saving").exists()
