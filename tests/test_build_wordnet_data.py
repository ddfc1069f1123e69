"""scripts/build_wordnet_attributes.py rebuilds the shipped data file byte for byte from Debian's wordnet-base."""

import subprocess
import sys
from pathlib import Path

import pytest

from hf_bertmap.data import BUILTIN_DATA

ROOT = Path(__file__).resolve().parents[1]
WORDNET_DIR = Path("/usr/share/wordnet")


@pytest.mark.skipif(not (WORDNET_DIR / "data.adj").is_file(), reason="needs Debian's wordnet-base (.ci/run installs it)")
def test_rebuild_matches_the_shipped_file(tmp_path):
    pytest.importorskip("nltk")
    output = tmp_path / "wordnet_attributes.tsv"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_wordnet_attributes.py"), "--output", str(output)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "7743 pairs (802 direct), 6172 adjectives, 320 attribute synsets" in result.stdout
    assert output.read_bytes() == BUILTIN_DATA.read_bytes()
