"""scripts/build_wordnet_attributes.py rebuilds the shipped data files byte for byte from Debian's wordnet-base."""

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
    assert ("10247 pairs (692 direct, 5870 satellite, 3418 derivation, 267 gloss), 8811 adjectives, "
            "321 attribute synsets, 285 target words") in result.stdout
    for name in ("wordnet_attributes.tsv", "wordnet_labels.tsv"):
        assert (tmp_path / name).read_bytes() == (BUILTIN_DATA.parent / name).read_bytes(), name
