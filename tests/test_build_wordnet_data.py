"""scripts/build_wordnet_attributes.py: its everyday table is checked, and it rebuilds the shipped data files byte
for byte from Debian's wordnet-base."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from hf_bertmap.data import BUILTIN_DATA
from hf_bertmap.pair_files import read_pair_file

ROOT = Path(__file__).resolve().parents[1]
WORDNET_DIR = Path("/usr/share/wordnet")


@pytest.mark.slow
@pytest.mark.skipif(not (WORDNET_DIR / "data.adj").is_file(),
                    reason="needs Debian's wordnet-base (.ci/run installs it)")
def test_rebuild_matches_the_shipped_files(tmp_path):
    pytest.importorskip("nltk")
    pytest.importorskip("wordfreq")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_wordnet_attributes.py"), "--output_dir", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert ("21696 pairs (14547 everyday, 256 direct, 4119 satellite, 2539 derivation, 235 gloss), 20577 phrases, "
            "321 attribute synsets, 285 target words") in result.stdout
    for name in ("wordnet_attributes.tsv", "wordnet_labels.tsv"):
        assert (tmp_path / name).read_bytes() == (BUILTIN_DATA.parent / name).read_bytes(), name


def load_script(name: str):
    """A script of `scripts/` imported as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_build_script():
    return load_script("build_wordnet_attributes")


def test_everyday_table_reads_several_words_per_phrase_and_a_category(tmp_path):
    table = tmp_path / "pairs.tsv"
    table.write_text("phrase\twords\tcategory\nchubby\tweight|size\teveryday\ncosts a bomb\tprice\tidiom\n")
    pairs = load_build_script().read_everyday_pairs(table)
    assert pairs == {"chubby": (["weight", "size"], "everyday"), "costs a bomb": (["price"], "idiom")}


@pytest.mark.parametrize("rows, error", [
    ("chubby\tweight\teveryday\npricey\tprice\tslang\nChubby\tsize\teveryday\n",
     r"pairs.tsv, line 4: 'chubby' is listed twice"),
    ("chubby\tweight|\teveryday\n", r"pairs.tsv, line 2: a phrase and at least one word are required"),
    ("chubby\tweight|weight\teveryday\n", r"pairs.tsv, line 2: 'chubby' lists a word twice"),
    ("chubby\tweight\tadjective\n", r"pairs.tsv, line 2: category 'adjective' is not one of everyday, slang"),
    ("chubby\tweight\t\n", r"pairs.tsv, line 2: category '' is not one of"),
])
def test_everyday_table_refuses_a_bad_row_naming_the_line(tmp_path, rows, error):
    table = tmp_path / "pairs.tsv"
    table.write_text("phrase\twords\tcategory\n" + rows)
    with pytest.raises(ValueError, match=error):
        load_build_script().read_everyday_pairs(table)


def test_the_lints_refuse_words_that_are_no_output_word_and_every_evaluation_phrase_inside_a_row():
    build = load_build_script()
    pairs = {"chubby": build.EverydayPair(["weight", "chubbiness"], "everyday"),
             "a very chonky cat": build.EverydayPair(["size"], "description"),
             "ice-cold beer": build.EverydayPair(["temperature"], "description"),
             "icy": build.EverydayPair(["temperature"], "everyday")}
    problems = build.lint_everyday(pairs, {"weight", "size", "temperature"}, {"chonky", "very chonky", "ice cold"})
    assert problems == ["'chubby': ['chubbiness'] are no attribute's word",
                        "'a very chonky cat' contains the evaluation phrase(s) ['chonky', 'very chonky']",
                        "'ice-cold beer' contains the evaluation phrase(s) ['ice cold']"]


def test_the_shipped_everyday_table_passes_the_lints():
    build = load_build_script()
    pairs = build.read_everyday_pairs()
    words = set(read_pair_file(str(BUILTIN_DATA.with_name("wordnet_labels.tsv")), ("word",))["word"])
    assert build.lint_everyday(pairs, words, build.held_out_phrases()) == []
    assert len(pairs) >= 14000 and len({w for pair in pairs.values() for w in pair.words}) >= 200


def test_no_builtin_row_contains_an_evaluation_phrase():
    build = load_build_script()
    held_out = build.held_out_phrases()
    assert {"fishy", "chonky", "very chonky", "pricey", "dirt cheap"} <= held_out
    phrases = set(read_pair_file(str(BUILTIN_DATA), ("phrase",))["phrase"])
    assert not [p for p in phrases if any(build.contains(p, e) for e in held_out)]


def load_gloss_script():
    return load_script("build_wordnet_glosses")


class FakeSynset:
    def __init__(self, definition: str, *lemmas: str):
        self._definition, self._lemmas = definition, list(lemmas)

    def definition(self) -> str:
        return self._definition

    def lemma_names(self) -> list[str]:
        return self._lemmas


def test_glosses_pair_each_definition_with_its_single_word_lemmas():
    pairs = load_gloss_script().gloss_pairs([
        FakeSynset("a domesticated  canine", "dog", "domestic_dog", "Canis"),
        FakeSynset("a domesticated canine", "dog", "pooch"),       # same definition: merged
        FakeSynset("a unit of time", "hour", "60-minutes", "o'clock"),
        FakeSynset("only multi-word names", "ice_cream"),
    ])
    assert pairs == {"a domesticated canine": ["dog", "canis", "pooch"], "a unit of time": ["hour"]}


def test_the_split_by_word_never_trains_on_a_held_out_words_definition():
    script = load_gloss_script()
    words = [f"word{i}" for i in range(400)]
    pairs = {f"definition {i}": [words[i], words[(i + 1) % 400]] for i in range(400)}
    pairs["a description written by hand"] = ["word0"]
    train, test, vocabulary = script.split_by_word(pairs, 10.0, exclude={"a description written by hand"})
    held = {w for w in words if script.held_out(w, 10.0)}
    assert 10 < len(held) < 80 and vocabulary == sorted(words)
    assert {row["target"] for row in test} == held
    test_definitions = {row["phrase"] for row in test}
    assert not test_definitions & {row["phrase"] for row in train}
    assert not held & {row["target"] for row in train}
    assert "a description written by hand" not in test_definitions | {row["phrase"] for row in train}
