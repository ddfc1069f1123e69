"""Corrections and saves into a model's own folder: saved at once and atomically, under the folder's lock, never over
a model saved there since, never through a symbolic link; the corrections file a record that cannot stop a load."""

import errno
import glob
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import threading

import pytest
import transformers.modeling_utils
from conftest import make_model, subprocess_env

from hf_bertmap import WordMapper
from hf_bertmap.output_folder import FolderChangedError


def digest(folder) -> dict[str, str]:
    """Each file of `folder` (no subfolders) by content."""
    return {name: hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(folder)) if os.path.isfile(os.path.join(folder, name))}


def snapshot(folder) -> tuple[int, int]:
    """(labels in config.json, rows of the classifier in model.safetensors), read from one version of the folder
    even while a save renames a new one into place."""
    directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    opener = lambda path, flags: os.open(path, flags, dir_fd=directory)  # noqa: E731
    try:
        with open("config.json", opener=opener) as f:
            labels = len(json.load(f)["id2label"])
        with open("model.safetensors", "rb", opener=opener) as f:
            header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    finally:
        os.close(directory)
    return labels, header["classifier.weight"]["shape"][0]


def pipeline_words(folder, phrases, top_k=2):
    from transformers import pipeline

    words = pipeline("word-mapping", model=str(folder), trust_remote_code=True)
    return [[(w["word"], pytest.approx(w["score"], abs=1e-5)) for w in top] for top in words(phrases, top_k=top_k)]


def test_a_correction_is_saved_into_the_model_and_every_loader_answers_it(saved_model):
    mapper = WordMapper.from_pretrained(saved_model)
    assert mapper.correct("Very Fishy", "size") == str(saved_model / "corrections.tsv")
    assert mapper.correct("quite big", "Bulk", add_word=True) == str(saved_model / "corrections.tsv")
    assert (saved_model / "corrections.tsv").read_text() == "phrase\ttarget\nvery fishy\tsize\nquite big\tbulk\n"
    assert mapper.predict(["very fishy", "quite big"]) == [[("size", 1.0)], [("bulk", 1.0)]]
    reloaded = WordMapper.from_pretrained(saved_model)
    assert reloaded.words == ["height", "size", "smell", "bulk"] and reloaded.unsaved_corrections == []
    phrases = ["very fishy", "quite big", "large", "tall"]
    assert pipeline_words(saved_model, phrases) == reloaded.predict(phrases, top_k=2)


def test_a_correction_kept_in_memory_only_is_saved_with_the_model(saved_model, tmp_path):
    mapper = WordMapper.from_pretrained(saved_model)
    assert mapper.correct("very fishy", "size", save=False) is None
    assert not (saved_model / "corrections.tsv").exists() and mapper.unsaved_corrections == [("very fishy", "size")]
    mapper.save_pretrained(tmp_path / "copy")
    assert WordMapper.from_pretrained(tmp_path / "copy").predict("very fishy") == [("size", 1.0)]
    assert (tmp_path / "copy" / "corrections.tsv").read_text() == "phrase\ttarget\nvery fishy\tsize\n"


KILL = """
import os, signal, sys
import transformers.modeling_utils, hf_bertmap.decoding_bertmap
from hf_bertmap import WordMapper
folder, point = sys.argv[1], sys.argv[2]
mapper = WordMapper.from_pretrained(folder)
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if point == "weights":  # config.json is written, the weights are not yet
    transformers.modeling_utils.safe_save_file = die
else:  # the memory
    hf_bertmap.decoding_bertmap.save_file = die
if sys.argv[3] == "correct":
    mapper.correct("quite big", "bulk", add_word=True)
else:
    mapper.correct("quite big", "bulk", add_word=True, save=False)
    mapper.save_pretrained(folder)
"""


@pytest.mark.parametrize(("how", "point"), [("correct", "weights"), ("save_pretrained", "memory")])
def test_a_kill_in_the_middle_of_a_save_leaves_the_whole_old_model(saved_model, tmp_path, point, how):
    WordMapper.from_pretrained(saved_model).correct("fishy", "size")  # a memory and a corrections file to lose
    before = digest(saved_model)
    run = subprocess.run([sys.executable, "-c", KILL, str(saved_model), point, how], env=subprocess_env(tmp_path),
                         capture_output=True, text=True)
    assert run.returncode == -9, run.stderr[-2000:]
    assert digest(saved_model) == before
    mapper = WordMapper.from_pretrained(saved_model)
    assert mapper.words == ["height", "size", "smell"] and mapper.predict("fishy") == [("size", 1.0)]


def test_a_full_disk_during_a_correction_changes_neither_the_folder_nor_the_mapper(saved_model, monkeypatch):
    mapper = WordMapper.from_pretrained(saved_model)
    before, answer = digest(saved_model), mapper.predict(["quite big", "large"], top_k=3)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", full)
    with pytest.raises(OSError, match="No space left on device"):
        mapper.correct("quite big", "bulk", add_word=True)
    assert digest(saved_model) == before and glob.glob(str(saved_model.parent / ".tiny-mapper.*")) == []
    assert mapper.words == ["height", "size", "smell"] and mapper.unsaved_corrections == []
    assert mapper.predict(["quite big", "large"], top_k=3) == answer


def test_corrections_saves_and_answers_from_several_threads_keep_the_folder_whole(saved_model):
    mapper = WordMapper.from_pretrained(saved_model)
    errors, mismatched = [], []

    def run(work):
        try:
            work()
        except Exception as err:  # noqa: BLE001 (reported below)
            errors.append(repr(err))

    def correct():
        for i in range(12):
            mapper.correct(f"phrase {i}", f"word{i}", add_word=True)

    def save():
        for _ in range(12):
            mapper.save_pretrained(saved_model)
            labels, rows = snapshot(saved_model)
            if labels != rows:
                mismatched.append((labels, rows))

    def explain():
        for _ in range(40):
            mapper.explain(["big", "phrase 3"], top_k=3)

    threads = [threading.Thread(target=run, args=(work,)) for work in (correct, save, explain)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and mismatched == []
    reloaded = WordMapper.from_pretrained(saved_model)
    assert reloaded.predict([f"phrase {i}" for i in range(12)]) == [[(f"word{i}", 1.0)] for i in range(12)]
    assert len((saved_model / "corrections.tsv").read_text().splitlines()) == 13


def test_a_save_or_correction_over_a_model_saved_since_is_refused(saved_model, tokenizer):
    stale = WordMapper.from_pretrained(saved_model)
    WordMapper(make_model(labels=("height", "size", "smell", "color")), tokenizer).save_pretrained(saved_model)
    retrained = digest(saved_model)
    with pytest.raises(FolderChangedError, match="another run, page or process saved a model there since"):
        stale.save_pretrained(saved_model)
    with pytest.raises(FolderChangedError, match="nothing was written"):
        stale.correct("quite big", "bulk", add_word=True)
    assert digest(saved_model) == retrained and stale.words == ["height", "size", "smell"]
    assert stale.predict("quite big") != [("bulk", 1.0)]


def test_two_writers_of_one_folder_lose_neither_correction(saved_model):
    first, second = WordMapper.from_pretrained(saved_model), WordMapper.from_pretrained(saved_model)
    first.correct("alpha phrase", "bulk", add_word=True)
    with pytest.raises(FolderChangedError):
        second.correct("beta phrase", "flavor", add_word=True)
    assert "flavor" not in second.words
    WordMapper.from_pretrained(saved_model).correct("beta phrase", "flavor", add_word=True)  # loaded again
    reloaded = WordMapper.from_pretrained(saved_model)
    assert reloaded.predict(["alpha phrase", "beta phrase"]) == [[("bulk", 1.0)], [("flavor", 1.0)]]
    assert (saved_model / "corrections.tsv").read_text().splitlines()[1:] == ["alpha phrase\tbulk",
                                                                              "beta phrase\tflavor"]


READ_ONLY = """
import sys
from hf_bertmap import WordMapper
mapper = WordMapper.from_pretrained(sys.argv[1])
before = mapper.predict("quite big", top_k=3)
try:
    mapper.correct("quite big", "bulk", add_word=True)
except PermissionError as err:
    print("refused:", err)
assert mapper.predict("quite big", top_k=3) == before and "bulk" not in mapper.words, "changed"
mapper.correct("quite big", "bulk", add_word=True, save=False)
print("in memory:", mapper.predict("quite big"))
"""


def test_a_correction_on_a_read_only_folder_is_refused_before_anything_changes(saved_model, tmp_path):
    command = [sys.executable, "-c", READ_ONLY, str(saved_model)]
    if os.geteuid() == 0:  # root writes anywhere: drop the capabilities that let it
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv to drop root's file capabilities")
        caps = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", *command]
    before = digest(saved_model)
    os.chmod(saved_model, 0o555)
    try:
        run = subprocess.run(command, env=subprocess_env(tmp_path), capture_output=True, text=True)
    finally:
        os.chmod(saved_model, 0o755)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"refused: {saved_model}: cannot be written: it is read-only" in run.stdout
    assert "in memory: [('bulk', 1.0)]" in run.stdout and digest(saved_model) == before


@pytest.mark.parametrize("content", [b"", b"phrase\ttarget\n", b"\x89PNG\r\n\x1a\n\x00\xff",
                                     b"phrase\ttarget\ncaf\xe9\tsize\n", b"word\tlabel\nbig\tsize\n",
                                     b"phrase\ttarget\nbig\tsize\textra\n", b"phrase\ttarget\nbig\t\n"])
def test_a_damaged_corrections_file_never_stops_a_load(saved_model, content):
    (saved_model / "corrections.tsv").write_bytes(content)
    mapper = WordMapper.from_pretrained(saved_model)
    assert mapper.words == ["height", "size", "smell"]
    assert pipeline_words(saved_model, ["large", "fishy"]) == mapper.predict(["large", "fishy"], top_k=2)
    mapper.correct("quite big", "size")
    assert (saved_model / "corrections.tsv").read_bytes().startswith(content)  # kept as it was, the row after it


def test_corrections_the_saved_model_lacks_are_named_at_load_and_taught_on_request(saved_model, caplog):
    (saved_model / "corrections.tsv").write_text("phrase\ttarget\nvery fishy\tsize\nquite big\tbulk\n")
    mapper = WordMapper.from_pretrained(saved_model)
    assert "2 correction(s) not in the saved model" in caplog.text
    assert mapper.predict("very fishy") == pipeline_words(saved_model, ["very fishy"], top_k=1)[0]  # nor this
    assert mapper.load_corrections() == [("very fishy", "size")]
    assert "skipped 1 correction(s) to words that are not output words: ['bulk']" in caplog.text
    assert mapper.words == ["height", "size", "smell"] and mapper.predict("very fishy") == [("size", 1.0)]
    mapper.save_pretrained(saved_model)
    assert WordMapper.from_pretrained(saved_model).pending_corrections() == [("quite big", "bulk")]


def test_a_save_replaces_symbolic_links_in_the_folder_and_never_writes_through_them(saved_model, tmp_path):
    victim_code, victim_pairs = tmp_path / "notes.txt", tmp_path / "pairs.tsv"
    victim_code.write_text("my notes\n")
    victim_pairs.write_text("phrase\ttarget\nmine\tsize\n")
    (saved_model / "modeling_bertmap.py").unlink()
    (saved_model / "modeling_bertmap.py").symlink_to(victim_code)
    (saved_model / "corrections.tsv").symlink_to(victim_pairs)
    mapper = WordMapper.from_pretrained(saved_model)
    mapper.correct("quite big", "bulk", add_word=True)
    assert victim_code.read_text() == "my notes\n" and victim_pairs.read_text() == "phrase\ttarget\nmine\tsize\n"
    assert not (saved_model / "modeling_bertmap.py").is_symlink()
    assert (saved_model / "corrections.tsv").read_text() == "phrase\ttarget\nquite big\tbulk\n"
