"""The benchmarks' --smoke modes run and print sane JSON (never asserting a speed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each runs a benchmark end to end in its own process

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
    assert results["trainer_bf16_samples_per_s"] > 0 and results["bf16_over_fp32"] > 0
    assert results["model_gflops_per_phrase"] > 0 and min(results["matmul_peak_gflops"].values()) > 0
    assert set(results["mfu"]) == {"bare", "trainer", "trainer_bf16"} and min(results["mfu"].values()) > 0


def test_inference_smoke(saved_model, tmp_path):
    results = run_bench("inference.py", "--model", str(saved_model), cwd=tmp_path)
    onnx_rows = ["onnx_fp32_predict"] + [f"onnx_int8_{name}_predict" for name in ("dynamic", "static", "blockwise",
                                                                                  "weight_only")]
    for system in ("bare_forward", "predict", "predict_bf16", *onnx_rows, "pipeline", "embedding_nearest_label",
                   "sentence_transformers_encode"):
        row = results[system]
        assert row["phrases_per_s_batch64"] > 0 and 0 < row["p50_ms_batch1"] <= row["p95_ms_batch1"], system
    assert results["phrases_per_s_batch64"] == results["predict"]["phrases_per_s_batch64"]
    assert results["predict_over_forward_batch64"] > 0 and results["predict_p50_over_forward_p50"] > 0
    assert results["int8_speedup_batch64"] > 0 and 0.0 <= results["int8_top1_agreement"] <= 1.0
    for system in onnx_rows:
        assert 0.0 <= results[system]["top1_agreement"] <= 1.0 and results[system]["speedup_batch64"] > 0
    assert 0.0 <= results["bf16_top1_agreement"] <= 1.0 and results["bf16_speedup_batch64"] > 0
    for system in ("bare_forward", "predict", "predict_bf16"):
        assert results[system]["mfu_batch64"] > 0, system


def test_default_run_smoke(tiny_backbone, tmp_path):
    results = run_bench("default_run.py", "--backbone", str(tiny_backbone), cwd=tmp_path)
    assert results["wall_s"] >= results["training_s"] + results["evaluation_s"] > 0
    assert results["train_peak_rss_mib"] > 0 and results["inference_peak_rss_mib"] > 0
    assert 0.0 <= results["test_accuracy"] <= results["test_accuracy_at_5"] <= 1.0


def test_quality_smoke(tiny_backbone, tmp_path):
    results = run_bench("quality.py", "--backbone", str(tiny_backbone), "--train_fraction", "0.5",
                        "--variant", "text=--head text", "--add_labels_systems", "default,text", cwd=tmp_path)
    assert 0 < results["split"]["train"] < 400 and results["variants"] == {"text": "--head text"}
    for system in ("zero_shot", "embedding_knn", "setfit", "seed_design", "default", "text"):
        for split in ("test", "test_everyday", "informal"):
            row = results[system][split]
            assert 0.0 <= row["top1"] <= row["top5"] <= 1.0 and 0.0 <= row["ece"] <= 1.0, (system, split)
    default = results["default"]
    curve = default["test"]["abstention"]
    assert curve[0]["min_score"] == 0.0 and curve[0]["coverage"] == 1.0
    assert all(a["coverage"] >= b["coverage"] for a, b in zip(curve, curve[1:]))
    assert set(default["informal_by_category"]) == set(results["informal_categories"])
    for added in (results["add_labels"]["default"], results["add_labels"]["text"]):
        assert 0 < len(added["held_out"]) <= 3
        for way in ("by_name", "described"):
            assert 0.0 <= added[way]["held_out_top1"] <= added[way]["held_out_top5"] <= 1.0
    for system in ("embedding_knn", "setfit", "seed_design", "default", "text"):
        assert set(results[system]["examples"]) == {"fishy", "valuable", "large", "very chonky"}, system


def test_serve_smoke(saved_model, tmp_path):
    pytest.importorskip("fastapi")
    results = run_bench("serve.py", "--model", str(saved_model), "--clients", "1,4", cwd=tmp_path)
    for name in ("batching x1", "batching x4", "no batching x1", "no batching x4"):
        run = results["runs"][name]
        assert run["failures"] == [] and run["answers_equal_to_predict"] == 1.0 and run["phrases_per_s"] > 0, name
    bad = results["runs"]["batching x4"]["bad"]
    assert set(bad) == {"malformed JSON", "empty phrase", "100,000 characters", "10,000 phrases", "wrong type"}
    assert all(status.startswith("4") for statuses in bad.values() for status in statuses), bad


def write_gloss_fixture(folder: Path) -> Path:
    """A tiny reverse-dictionary folder as scripts/build_wordnet_glosses.py writes it, from the tiny vocabulary."""
    from conftest import write_pairs

    folder.mkdir()
    train = [("very large", "size"), ("not very large", "size"), ("very tall", "height"), ("really tall", "height"),
             ("very hot", "temperature"), ("quite hot", "temperature"), ("so smelly", "smell"),
             ("a bit smelly", "smell"), ("pretty heavy", "weight"), ("super heavy", "weight"),
             ("rather cold", "temperature"), ("kind of huge", "size")]
    write_pairs(folder / "train.tsv", train)
    write_pairs(folder / "held_out.tsv", [("really expensive", "value"), ("so expensive", "value")])
    write_pairs(folder / "descriptions.tsv", [("extremely large", "size"), ("a little hot", "temperature")])
    (folder / "words.txt").write_text("".join(f"{w}\n" for w in ("height", "size", "smell", "temperature", "value",
                                                                  "weight")))
    return folder


def test_reverse_dictionary_smoke(tiny_backbone, tmp_path):
    glosses = write_gloss_fixture(tmp_path / "glosses")
    results = run_bench("reverse_dictionary.py", "--backbone", str(tiny_backbone), "--glosses", str(glosses),
                        "--descriptions", str(glosses / "descriptions.tsv"), "--seed_design", cwd=tmp_path)
    assert results["output_words"] == 6
    for system in ("default", "seed_design"):
        run = results[system]
        assert run["wall_s"] > run["first_step_s"] > 0 and run["peak_rss_mib"] > 0 and run["losses"], system
    for split, n in (("held_out_definitions", 2), ("descriptions", 2)):
        row = results["default"][split]
        assert 0.0 <= row["acc@1"] <= row["acc@10"] <= row["acc@100"] <= 1.0 and row["n"] == n
        assert 1 <= row["median_rank"] <= 6
        assert results["seed_design"][split]["n"] == results["default"][f"{split}_one_token"]["n"]


def test_reverse_dictionary_refuses_a_word_read_with_an_evaluation_definition(tiny_backbone, tmp_path):
    from conftest import write_pairs

    glosses = write_gloss_fixture(tmp_path / "glosses")
    descriptions = tmp_path / "words.tsv"
    write_pairs(descriptions, [("size", "how big"), ("value", "what it is worth: so expensive")],
                header=("word", "description"))
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "reverse_dictionary.py"), "--smoke", "--backbone",
                             str(tiny_backbone), "--glosses", str(glosses), "--descriptions",
                             str(glosses / "descriptions.tsv"), "--skip_default", "--recipe",
                             f"leaky=--head text --label_descriptions {descriptions}"],
                            capture_output=True, text=True, cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=600)
    assert result.returncode != 0
    assert "recipe leaky: 1 evaluation phrase(s) on the word side, e.g. 'value' is read with 'so expensive'" in (
        result.stderr)
    assert not (tmp_path / "leaky").exists()  # refused before training


def test_reverse_dictionary_recipes_are_scored_side_by_side_with_the_text_heads_word_side_checked(tiny_backbone,
                                                                                                   tmp_path):
    glosses = write_gloss_fixture(tmp_path / "glosses")
    descriptions = tmp_path / "words.tsv"
    descriptions.write_text("word\tdescription\nsize\thow big a thing is\n")
    results = run_bench("reverse_dictionary.py", "--backbone", str(tiny_backbone), "--glosses", str(glosses),
                        "--descriptions", str(glosses / "descriptions.tsv"), "--epochs", "2", "--recipe",
                        f"described=--head text --label_descriptions {descriptions}", cwd=tmp_path)
    assert results["epochs"] == 2.0 and results["described"]["flags"][:2] == ["--head", "text"]
    for recipe in ("default", "described"):
        assert results[recipe]["held_out_definitions"]["n"] == 2 and results[recipe]["losses"], recipe


def test_decoding_settings_smoke(saved_model, tmp_path):
    from hf_bertmap import WordMapper

    mapper = WordMapper.from_pretrained(saved_model)
    mapper.memorize(["large", "fishy", "tall"], ["size", "smell", "height"], weight=0.3)
    mapper.save_pretrained(tmp_path / "with-memory")
    results = run_bench("decoding_settings.py", "--model", str(tmp_path / "with-memory"), cwd=tmp_path)
    saved = [row for row in results["rows"] if row["saved"]]
    assert len(results["rows"]) == 2 and len(saved) == 1
    assert (saved[0]["memory_neighbors"], saved[0]["memory_temperature"]) == (30, 0.05)
    for row in results["rows"]:
        for split in ("validation", "test", "informal"):
            assert 0.0 <= row[f"{split}_top1"] <= row[f"{split}_top5"] <= 1.0


def test_the_gpu_check_dry_run_parses_every_command(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run"], capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=600,
                            env={**os.environ, "GPU_CHECK_OUT": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["dry_run"] is True and set(report) >= {"ddp", "fsdp", "predict", "onnx_predict"}
    commands = [line for line in result.stderr.splitlines() if line.startswith("+ ")]
    assert [c.split()[1:3] for c in commands] == [["python", "-m"], ["accelerate", "launch"], ["bertmap", "predict"],
                                                  ["bertmap", "export"], ["bertmap", "predict"]]
    assert "--backend onnx" in commands[4] and "--device cuda" in commands[4]
    assert all("--bf16 true" in c for c in commands[:2]) and "--device cuda" in commands[2]
