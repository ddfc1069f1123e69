"""Hand-damaged model folders, odd training options and slips of the command line: each a clear one-line error (or
warning) naming the file, flag or words, never a traceback or a silent change."""

import json
import logging
import os
import shutil
import subprocess
import sys

import pytest
from conftest import subprocess_env
from safetensors.torch import save_file
from test_text_head import text_mapper
from test_training import train_args

from hf_bertmap import WordMapper
from hf_bertmap.cli import main as cli_main
from hf_bertmap.training import main


def cli_error(capsys, *argv) -> str:
    """The one line `bertmap ARGV` ends with on stderr (exit status 1)."""
    with pytest.raises(SystemExit) as exited:
        cli_main([str(arg) for arg in argv])
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert exited.value.code == 1 and len(errors) == 1, stderr[-2000:]
    return errors[0]


def damage_memory(folder, keys, golds, metadata):
    save_file({"keys": keys, "golds": golds}, str(folder / "memory.safetensors"), metadata=metadata)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda f: (f / "decoding_config.json").write_text("[1, 2]"),
     "decoding_config.json: not a decoding config (expected an object of settings, got list)"),
    (lambda f: (f / "decoding_config.json").write_text('{"temperature": "hot"}'),
     "decoding_config.json: not a decoding config ("),
    (lambda f: (f / "config.json").write_text('{"model_type": "bert"}'),
     "config.json: not a bertmap model"),
    (lambda f: [os.remove(f / name) for name in os.listdir(f) if name.startswith(("tokenizer", "vocab", "special"))],
     "no tokenizer files"),
    (lambda f: damage_memory(f, __import__("torch").ones(2, 7), __import__("torch").zeros(2, 1).long(),
                             {"phrases": '["a", "b"]'}),
     "memory.safetensors: its embeddings have 7 dimensions, the model's 32"),
    (lambda f: damage_memory(f, __import__("torch").ones(2, 32), __import__("torch").full((2, 1), 999),
                             {"phrases": '["a", "b"]'}),
     "memory.safetensors: a stored phrase's word id 999 is not among the model's 3 output words"),
    (lambda f: damage_memory(f, __import__("torch").ones(2, 32), __import__("torch").zeros(2, 1).long(), {}),
     "memory.safetensors: not a phrase memory (no 'phrases')"),
])
def test_a_hand_damaged_model_folder_is_one_line_naming_the_file(saved_model, damage, message, capsys):
    damage(saved_model)
    assert message in cli_error(capsys, "predict", saved_model, "large")


def test_the_pipeline_answers_no_phrases_with_no_answers(saved_model):
    from transformers import pipeline

    assert pipeline("word-mapping", model=str(saved_model), trust_remote_code=True)([]) == []


def test_predictions_written_over_the_evaluated_file_are_refused(saved_model, tmp_path, capsys):
    data = tmp_path / "mydata.csv"
    data.write_text("phrase,target\nlarge,size\n")
    assert cli_error(capsys, "evaluate", saved_model, "--file", data, "--predictions", data) == (
        f"error: --predictions {data} is the file being evaluated (--file); choose another")
    assert data.read_text() == "phrase,target\nlarge,size\n"


def test_a_folder_given_as_a_file_of_phrases_is_named(saved_model, tmp_path, capsys):
    assert cli_error(capsys, "predict", saved_model, "--file", tmp_path) == (
        f"error: --file {tmp_path}: a folder, not a file of phrases")


def test_max_seq_length_above_the_encoders_positions_is_refused_at_start(tiny_backbone, pair_files, tmp_path):
    with pytest.raises(ValueError, match="--max_seq_length 100000: the encoder reads at most 64 tokens"):
        main(train_args(tiny_backbone, pair_files, tmp_path / "out", "--max_seq_length", "100000"))
    assert not (tmp_path / "out").exists()


def test_descriptions_name_their_real_mistakes(tiny_backbone, pair_files, tmp_path, caplog):
    with pytest.raises(IsADirectoryError, match=f"--label_descriptions: {tmp_path} is a folder"):
        main(train_args(tiny_backbone, pair_files, tmp_path / "out", "--label_descriptions", str(tmp_path)))
    nocolumn = tmp_path / "nocolumn.csv"
    nocolumn.write_text("word,text\nsize,how big\n")
    with pytest.raises(ValueError, match=r"no column 'description'; .* \(a file of word, description rows\)"):
        main(train_args(tiny_backbone, pair_files, tmp_path / "out", "--label_descriptions", str(nocolumn)))
    typo = tmp_path / "typo.csv"
    typo.write_text("word,description\nsize,how big\ntemprature,how hot\n")
    with caplog.at_level(logging.WARNING):
        main(train_args(tiny_backbone, pair_files, tmp_path / "out", "--label_descriptions", str(typo),
                        "--num_train_epochs", "1"))
    assert "1 described word(s) are not output words and are ignored: ['temprature']" in caplog.text


def test_text_head_words_whose_texts_are_cut_to_the_same_tokens_are_named(tokenizer, caplog):
    long = "very " * 40
    with caplog.at_level(logging.WARNING):
        mapper = text_mapper(tokenizer, labels=(long + "tall", long + "big", "smell"))
    length = mapper.model.config.label_text_length
    assert f"1 group(s) of output words have texts that are the same once cut to {length} tokens" in caplog.text
    assert f"[['{long}tall', '{long}big']]" in caplog.text


LOCK_IN_READ_ONLY_PARENT = """
import sys
from hf_bertmap.output_folder import OutputFolder
try:
    with OutputFolder.prepare(sys.argv[1]).lock():
        pass
except PermissionError as err:
    print(err)
"""


def test_a_read_only_parent_is_named_with_the_folder(saved_model, tmp_path):
    parent = tmp_path / "rop"
    parent.mkdir()
    shutil.copytree(saved_model, parent / "existing")
    command = [sys.executable, "-c", LOCK_IN_READ_ONLY_PARENT, str(parent / "existing")]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv to drop root's file capabilities")
        caps = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", *command]
    os.chmod(parent, 0o555)
    try:
        result = subprocess.run(command, env=subprocess_env(tmp_path), capture_output=True, text=True)
    finally:
        os.chmod(parent, 0o755)
    assert result.stdout.strip() == (f"{parent / 'existing'}: cannot be written: the folder it is in ({parent}), "
                                     "where the lock and the staging folder go, is read-only")


def test_a_model_saved_with_an_added_word_has_a_card_that_counts_it(saved_model):
    from hf_bertmap.model_card import BertMapCardData

    results = {"test_accuracy": 0.5, "test_accuracy_at_5": 1.0, "test_macro_f1": 0.4}
    BertMapCardData(results=results).save(saved_model)
    WordMapper.from_pretrained(saved_model).correct("quite big", "bulk", add_word=True)
    assert json.loads((saved_model / "config.json").read_text())["id2label"]["3"] == "bulk"
    assert "scored against 4 output words" in " ".join((saved_model / "README.md").read_text().split())
