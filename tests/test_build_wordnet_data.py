"""scripts/build_wordnet_attributes.py: its everyday table is checked, and it rebuilds the shipped data files byte
for byte from Debian's wordnet-base."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from hf_bertmap.data import BUILTIN_DATA

ROOT = Path(__file__).resolve().parents[1]
WORDNET_DIR = Path("/usr/share/wordnet")


@pytest.mark.skipif(not (WORDNET_DIR / "data.adj").is_file(), reason="needs Debian's wordnet-base (.ci/run installs it)")
def test_rebuild_matches_the_shipped_files(tmp_path):
    pytest.importorskip("nltk")
    pytest.importorskip("wordfreq")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_wordnet_attributes.py"), "--output_dir", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert ("10255 pairs (683 everyday, 567 direct, 5503 satellite, 3240 derivation, 262 gloss), 8895 adjectives, "
            "321 attribute synsets, 285 target words") in result.stdout
    for name in ("wordnet_attributes.tsv", "wordnet_labels.tsv"):
        assert (tmp_path / name).read_bytes() == (BUILTIN_DATA.parent / name).read_bytes(), name


def load_build_script():
    spec = importlib.util.spec_from_file_location("build_wordnet_attributes",
                                                  ROOT / "scripts" / "build_wordnet_attributes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_everyday_table_reads_several_words_per_phrase(tmp_path):
    table = tmp_path / "pairs.tsv"
    table.write_text("phrase\twords\nchubby\tweight|size\npricey\tprice\n")
    assert load_build_script().read_everyday_pairs(table) == {"chubby": ["weight", "size"], "pricey": ["price"]}


def test_everyday_table_refuses_a_phrase_listed_twice_naming_the_line(tmp_path):
    table = tmp_path / "pairs.tsv"
    table.write_text("phrase\twords\nchubby\tweight\npricey\tprice\nchubby\tsize\n")
    with pytest.raises(ValueError, match=r"pairs.tsv, line 4: 'chubby' is listed twice"):
        load_build_script().read_everyday_pairs(table)


def test_everyday_table_refuses_an_empty_word_naming_the_line(tmp_path):
    table = tmp_path / "pairs.tsv"
    table.write_text("phrase\twords\nchubby\tweight|\n")
    with pytest.raises(ValueError, match=r"pairs.tsv, line 2: a phrase and at least one word are required"):
        load_build_script().read_everyday_pairs(table)
