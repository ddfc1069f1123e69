"""The benchmarks' --smoke modes run and print sane JSON (never asserting a speed)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_bench(script: str, *args: str, cwd: Path) -> dict:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--smoke", *args], capture_output=True,
                            text=True, cwd=cwd, stdin=subprocess.DEVNULL, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_train_throughput_smoke(tiny_backbone, tmp_path):
    results = run_bench("train_throughput.py", "--backbone", str(tiny_backbone), cwd=tmp_path)
    for key in ("bare_samples_per_s", "trainer_samples_per_s", "trainer_pad_to_max_length_samples_per_s",
                "trainer_group_by_length_samples_per_s"):
        assert results[key] > 0, key
    assert results["trainer_over_bare"] == round(results["trainer_samples_per_s"] / results["bare_samples_per_s"], 3)
    assert len(results["bare_runs"]) == len(results["trainer_runs"]) == results["repeats"] == 2


def test_inference_smoke(saved_model, tmp_path):
    results = run_bench("inference.py", "--model", str(saved_model), cwd=tmp_path)
    for system in ("bare_forward", "predict", "onnx_fp32_predict", "onnx_int8_predict", "pipeline",
                   "embedding_nearest_label", "sentence_transformers_encode"):
        row = results[system]
        assert row["phrases_per_s_batch64"] > 0 and 0 < row["p50_ms_batch1"] <= row["p95_ms_batch1"], system
    assert results["phrases_per_s_batch64"] == results["predict"]["phrases_per_s_batch64"]
    assert results["predict_over_forward_batch64"] > 0 and results["predict_p50_over_forward_p50"] > 0
    assert results["int8_speedup_batch64"] > 0 and 0.0 <= results["int8_top1_agreement"] <= 1.0
    for system in ("onnx_fp32_predict", "onnx_int8_predict"):
        assert 0.0 <= results[system]["top1_agreement"] <= 1.0 and results[system]["speedup_batch64"] > 0
    assert 0.0 <= results["bf16_top1_agreement"] <= 1.0


def test_default_run_smoke(tiny_backbone, tmp_path):
    results = run_bench("default_run.py", "--backbone", str(tiny_backbone), cwd=tmp_path)
    assert results["wall_s"] >= results["training_s"] + results["evaluation_s"] > 0
    assert results["train_peak_rss_mib"] > 0 and results["inference_peak_rss_mib"] > 0
    assert 0.0 <= results["test_accuracy"] <= results["test_accuracy_at_5"] <= 1.0


def test_quality_smoke(tiny_backbone, tmp_path):
    results = run_bench("quality.py", "--backbone", str(tiny_backbone), cwd=tmp_path)
    for system in ("zero_shot", "embedding_knn", "setfit", "seed_design", "default"):
        for split in ("test", "informal"):
            row = results[system][split]
            assert 0.0 <= row["top1"] <= row["top5"] <= 1.0 and 0.0 <= row["ece"] <= 1.0, (system, split)
    default = results["default"]
    curve = default["test"]["abstention"]
    assert curve[0]["min_score"] == 0.0 and curve[0]["coverage"] == 1.0
    assert all(a["coverage"] >= b["coverage"] for a, b in zip(curve, curve[1:]))
    assert set(default["informal_by_category"]) == set(results["informal_categories"])
    added = results["add_labels"]
    assert 0 < len(added["held_out"]) <= 3 and 0.0 <= added["held_out_top1"] <= added["held_out_top5"] <= 1.0
    for system in ("embedding_knn", "setfit", "seed_design", "default"):
        assert set(results[system]["examples"]) == {"fishy", "valuable", "large", "very chonky"}, system
