"""The `bertmap` console script."""

import json
import shutil
import subprocess
import sys

import pytest

from hf_bertmap import WordMapper
from hf_bertmap.cli import main


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


def test_predict_without_phrases_is_an_error(saved_model):
    with pytest.raises(SystemExit, match="no phrases given"):
        main(["predict", str(saved_model)])


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
