"""The package as users get it: a wheel and an sdist that build, carry the licences and data, and run from a
fresh virtual environment."""

import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import hf_bertmap

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_and_sdist_build_and_the_wheel_runs_bertmap_predict_from_a_fresh_venv(saved_model, tmp_path):
    dist = tmp_path / "dist"
    result = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = dist.glob(f"hf_bertmap-{hf_bertmap.__version__}-py3-none-any.whl")
    (sdist,) = dist.glob(f"hf_bertmap-{hf_bertmap.__version__}.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("hf_bertmap/resources/wordnet_attributes.tsv", "hf_bertmap/resources/WORDNET_LICENSE",
                    "hf_bertmap/hub_card.md", "hf_bertmap/py.typed", "hf_bertmap/metrics/word_mapping/word_mapping.py",
                    "hf_bertmap/decoding_bertmap.py"):
        assert shipped in names, shipped
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert any(name.endswith("/LICENSE") for name in tarfile.open(sdist).getnames())

    # A fresh venv with the wheel; its dependencies come from this environment's site-packages (no download).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                              "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True)
    if "no such option: --python" in install.stderr:  # pip < 22.3
        install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target",
                                  str(site), str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    located = subprocess.run([str(venv / "bin" / "python"), "-c", "import hf_bertmap; print(hf_bertmap.__file__)"],
                             capture_output=True, text=True, cwd=tmp_path)
    assert located.stdout.startswith(str(site)), located.stdout + located.stderr  # the wheel, not the checkout
    bertmap = venv / "bin" / "bertmap"
    command = [str(bertmap)] if bertmap.exists() else [str(venv / "bin" / "python"), "-m", "hf_bertmap.cli"]
    result = subprocess.run(command + ["predict", str(saved_model), "large"], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("large\t")
