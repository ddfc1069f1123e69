"""The `bertmap` console script."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hf_bertmap import WordMapper
from hf_bertmap.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_predict_prints_phrase_word_probability_per_line(saved_model, capsys):
    main(["predict", str(saved_model), "very large", "fishy"])
    lines = capsys.readouterr().out.strip().split("\n")
    expected = WordMapper.from_pretrained(saved_model).predict(["very large", "fishy"], top_k=1)
    assert [line.split("\t") for line in lines] == [
        ["very large", expected[0][0][0], f"{expected[0][0][1]:.4f}"],
        ["fishy", expected[1][0][0], f"{expected[1][0][1]:.4f}"],
    ]


def test_predict_json_gives_the_top_k(saved_model, capsys):
    main(["predict", str(saved_model), "hot", "--json", "--top-k", "2"])
    record = json.loads(capsys.readouterr().out)
    assert record["phrase"] == "hot" and len(record["predictions"]) == 2
    assert set(record["predictions"][0]) == {"word", "score"}


def test_predict_reads_phrases_from_a_file_and_from_stdin(saved_model, tmp_path):
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("large\n\nvery hot\n")
    result = subprocess.run([sys.executable, "-m", "hf_bertmap.cli", "predict", str(saved_model), "--file",
                             str(phrases)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert [line.split("\t")[0] for line in result.stdout.strip().split("\n")] == ["large", "very hot"]
    result = subprocess.run([sys.executable, "-m", "hf_bertmap.cli", "predict", str(saved_model), "--file", "-"],
                            input="tall\nfishy\n", capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert [line.split("\t")[0] for line in result.stdout.strip().split("\n")] == ["tall", "fishy"]


def test_predict_without_phrases_is_a_one_line_error(saved_model, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(saved_model)])
    assert exit_.value.code == 1
    assert capsys.readouterr().err == (
        "error: bertmap predict: no phrases given (pass them as arguments or with --file)\n")


@pytest.mark.slow
def test_console_script_is_installed(saved_model):
    executable = shutil.which("bertmap")
    assert executable is not None, "pip install -e . should install the bertmap console script"
    result = subprocess.run([executable, "predict", str(saved_model), "big"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("big\t")


def test_predict_min_score_prints_no_word_for_unsure_phrases(saved_model, capsys):
    main(["predict", str(saved_model), "large", "--min-score", "1.0"])
    assert capsys.readouterr().out == "large\t\t\n"
    main(["predict", str(saved_model), "large", "--min-score", "1.0", "--json"])
    assert json.loads(capsys.readouterr().out) == {"phrase": "large", "predictions": []}


def test_predict_top_k_in_tsv_prints_word_and_probability_pairs(saved_model, capsys):
    main(["predict", str(saved_model), "hot", "--top-k", "3"])
    fields = capsys.readouterr().out.rstrip("\n").split("\t")
    expected = WordMapper.from_pretrained(saved_model).predict("hot", top_k=3)
    assert fields == ["hot"] + [item for w, s in expected for item in (w, f"{s:.4f}")]


def test_predict_from_a_file_streams_with_a_progress_bar_on_stderr(saved_model, tmp_path):
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("\n".join(["large", "hot", "tall", "fishy"] * 5) + "\n")
    result = subprocess.run([sys.executable, "-m", "hf_bertmap.cli", "predict", str(saved_model), "--file",
                             str(phrases), "--batch-size", "3", "--device", "cpu"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().split("\n")) == 20
    assert "20/20" in result.stderr  # the progress bar's last state


def test_evaluate_scores_a_pair_file_and_writes_predictions(saved_model, tmp_path, capsys):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("phrase\ttarget\nlarge\tsize\nfishy\tsmell\nfishy\tsize\ntall\theight\nhuge\tgirth\n")
    main(["evaluate", str(saved_model), "--file", str(pairs), "--json", "--predictions", str(tmp_path / "p.jsonl")])
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["phrases"] == 4 and set(metrics) >= {"accuracy", "accuracy_at_5", "macro_f1", "ece", "coverage"}
    mapper = WordMapper.from_pretrained(saved_model)
    expected = mapper.evaluate(["large", "fishy", "tall", "huge"], [["size"], ["smell", "size"], ["height"], ["girth"]])
    assert metrics["accuracy"] == pytest.approx(expected["accuracy"])
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [row["phrase"] for row in rows] == ["large", "fishy", "tall", "huge"]
    assert rows[1]["targets"] == ["smell", "size"] and len(rows[0]["predictions"]) == 3  # all 3 output words


def test_a_negative_batch_size_or_top_k_is_a_usage_error(saved_model, capsys):
    for flag, value in (("--batch-size", "-5"), ("--top-k", "0")):
        with pytest.raises(SystemExit) as exit_:
            main(["predict", str(saved_model), "large", flag, value])
        assert exit_.value.code == 2
        assert f"argument {flag}: must be an integer >= 1, got {value}" in capsys.readouterr().err


def test_a_byte_order_mark_in_a_phrase_file_does_not_change_the_first_answer(saved_model, tmp_path, capsys):
    plain, marked = tmp_path / "plain.txt", tmp_path / "marked.txt"
    plain.write_text("large\nhot\n")
    marked.write_bytes("large\nhot\n".encode("utf-8-sig"))
    main(["predict", str(saved_model), "--file", str(plain), "--top-k", "2"])
    expected = capsys.readouterr().out
    main(["predict", str(saved_model), "--file", str(marked), "--top-k", "2"])
    assert capsys.readouterr().out == expected and expected.startswith("large\t")


def run_quietly(*command, env=None):
    return subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", **(env or {})))


def test_a_mistyped_model_folder_is_one_line_saying_it_does_not_exist(tmp_path, capsys, monkeypatch):
    import hf_bertmap.backbones

    monkeypatch.setattr(hf_bertmap.backbones, "is_offline_mode", lambda: True)  # read when the Hub client loads
    for name, message in (("my-mapprr", "my-mapprr: no such model folder here, and the Hub is offline "
                                        "(HF_HUB_OFFLINE=1), so it cannot be downloaded as a Hub id"),
                          (str(tmp_path / "nope"), f"{tmp_path / 'nope'}: no such model folder")):
        with pytest.raises(SystemExit) as exited:
            main(["predict", name, "large"])
        assert exited.value.code == 1 and capsys.readouterr().err == f"error: {message}\n"


@pytest.mark.slow
def test_train_py_reports_a_users_mistake_in_one_line_and_the_traceback_on_request(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("phrase,target\nbig,size\n,size\n")
    command = [sys.executable, str(ROOT / "train.py"), "--train_file", str(bad), "--output_dir", str(tmp_path / "o")]
    result = run_quietly(*command)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: {bad}, row 2: empty phrase (column 'phrase')"
    assert "Traceback" not in result.stderr
    debug = run_quietly(*command, env={"HF_BERTMAP_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "DataValidationError" in debug.stderr


def test_evaluate_reports_accuracy_at_each_cut_off_given_with_k(saved_model, tmp_path, capsys):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("phrase,target\nlarge,size\nfishy,smell\ntall,height\n")
    main(["evaluate", str(saved_model), "--file", str(pairs), "--json", "--k", "1", "2"])
    metrics = json.loads(capsys.readouterr().out)
    expected = WordMapper.from_pretrained(saved_model).evaluate(["large", "fishy", "tall"], ["size", "smell", "height"],
                                                                k=[1, 2])
    assert {key: metrics[key] for key in ("accuracy_at_1", "accuracy_at_2")} == pytest.approx(
        {key: expected[key] for key in ("accuracy_at_1", "accuracy_at_2")})


def test_predict_explain_adds_the_sources_of_each_word(saved_model, capsys):
    WordMapper.from_pretrained(saved_model).correct("fishy", "smell")
    main(["predict", str(saved_model), "fishy", "very fishy", "--top-k", "2", "--json", "--explain"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records[0]["predictions"] == [{"word": "smell", "score": 1.0}]
    assert records[0]["explanation"]["stored"] is True
    assert [n["phrase"] for n in records[1]["explanation"]["neighbors"]] == ["fishy"]
    main(["predict", str(saved_model), "very fishy", "--explain"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("very fishy\t") and lines[1].startswith("  words: ")
    assert lines[2].startswith("  nearest stored phrases: fishy (smell) ")
    assert lines[3].startswith("  their vote's share: ")


def test_train_py_reads_a_corrections_file_as_training_pairs(saved_model, tiny_backbone, tmp_path):
    mapper = WordMapper.from_pretrained(saved_model)
    for phrase, word in (("hot", "smell"), ("cold", "size"), ("warm", "height"), ("cool", "smell")):
        mapper.correct(phrase, word)
    from hf_bertmap.training import main as train_main

    corrections = str(saved_model / "corrections.tsv")
    results = train_main(["--model_name_or_path", str(tiny_backbone), "--train_file", corrections,
                          "--validation_file", corrections, "--test_file", corrections,
                          "--output_dir", str(tmp_path / "out"), "--use_cpu", "true", "--num_train_epochs", "1",
                          "--disable_tqdm", "true"])
    assert results["train_samples"] > 0 and results["test_samples"] == 4
    assert WordMapper.from_pretrained(tmp_path / "out").words == ["height", "size", "smell"]
