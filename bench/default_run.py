"""Wall time and peak memory of the default `python train.py`, split into data preparation, training and evaluation,
plus the peak memory of inference with the model it wrote.

    python bench/default_run.py                      # the real default run (about 6 minutes on 2 cores)
    python bench/default_run.py --smoke --backbone PATH_TO_TINY_BERT

Each phase runs in its own child process so `ru_maxrss` is that phase's peak. Prints a table and one JSON line
(targets: training <= 10 minutes, training peak memory <= 2 GiB).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INFERENCE = """
import sys
from hf_bertmap import WordMapper
from hf_bertmap.arguments import DataArguments
from hf_bertmap.data import load_splits
mapper = WordMapper.from_pretrained(sys.argv[1])
phrases = list(load_splits(DataArguments())["test"]["phrase"])
mapper.predict(phrases, top_k=5, batch_size=64)
"""


def run_child(command: list[str], cwd: str) -> tuple[float, float]:
    """(wall seconds, peak resident MiB) of a child process."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed:\n{result.stderr[-3000:]}")
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: run each phase in a fresh interpreter below.
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=None, help="default: train.py's own default")
    parser.add_argument("--smoke", action="store_true", help="a tiny run, for the test suite")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        output = os.path.join(work, "bertmap-attributes")
        train = [sys.executable, str(ROOT / "train.py"), "--output_dir", output, "--disable_tqdm", "true"]
        if args.backbone:
            train += ["--model_name_or_path", args.backbone]
        if args.smoke:
            train += ["--max_train_samples", "40", "--max_eval_samples", "20", "--max_predict_samples", "20",
                      "--num_train_epochs", "1"]
        env_cache = {"HF_DATASETS_CACHE": os.path.join(work, "datasets-cache")}  # no preprocessing cache hit
        os.environ.update(env_cache)
        # Measure inference in a separate process tree so its peak is not the training's.
        wall, train_peak = run_child(train, work)
        results = json.loads(Path(output, "all_results.json").read_text())
        inference = subprocess.run(
            [sys.executable, "-c", "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
             sys.executable, "-c", INFERENCE, output], capture_output=True, text=True, cwd=work)
        if inference.returncode != 0:
            raise SystemExit(inference.stderr[-3000:])
        inference_peak = int(inference.stdout.strip().splitlines()[-1]) / 1024

    training_s = results["train_runtime"]
    evaluation_s = results.get("eval_runtime", 0.0) + results.get("test_runtime", 0.0)
    report = {
        "command": "python train.py" + (f" --model_name_or_path {args.backbone}" if args.backbone else "")
                   + (" (smoke)" if args.smoke else ""),
        "wall_s": round(wall, 1),
        "training_s": round(training_s, 1),
        "evaluation_s": round(evaluation_s, 1),
        "data_model_and_saving_s": round(wall - training_s - evaluation_s, 1),
        "train_peak_rss_mib": round(train_peak),
        "inference_peak_rss_mib": round(inference_peak),
        "test_accuracy": results.get("test_accuracy"),
        "test_accuracy_at_5": results.get("test_accuracy_at_5"),
    }
    for key, value in report.items():
        print(f"{key:<28}{value}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
