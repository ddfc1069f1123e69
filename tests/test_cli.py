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
