"""The ONNX Runtime backend: an exported model gives the PyTorch path's words and scores, through the same
decoding step."""

import builtins
import dataclasses
import subprocess
import sys

import pytest

from hf_bertmap import WordMapper
from hf_bertmap.onnx_backend import execution_providers, require_onnxruntime

pytest.importorskip("onnxruntime")
PHRASES = ["large", "Very  HOT", "fishy", "chonky", "not tall at all"]


@pytest.fixture
def exported(saved_model, tmp_path):
    mapper = WordMapper.from_pretrained(saved_model)
    mapper.decoding.config = dataclasses.replace(mapper.decoding.config, temperature=1.4)
    mapper.memorize(["chonky", "very large"], ["smell", ["height", "size"]], weight=0.4)
    assert mapper.export_onnx(tmp_path / "onnx") == str(tmp_path / "onnx" / "model.onnx")
    return mapper, tmp_path / "onnx"


def test_onnx_answers_are_the_pytorch_words_and_scores(exported):
    mapper, folder = exported
    served = WordMapper.from_pretrained(folder, backend="onnx")
    for kwargs in ({"top_k": 3}, {"top_k": 3, "min_score": 0.4}):  # all 3 words: near-ties may swap places
        expected, got = mapper.predict(PHRASES, **kwargs), served.predict(PHRASES, **kwargs)
        assert [dict(top) for top in got] == [pytest.approx(dict(top), abs=1e-5) for top in expected]
    assert served.decoding.config.temperature == 1.4 and len(served.decoding.memory) == 2


def test_the_onnx_mapper_refuses_what_needs_pytorch(exported, tmp_path):
    _, folder = exported
    served = WordMapper.from_pretrained(folder, backend="onnx")
    with pytest.raises(ValueError, match="add_labels needs the PyTorch model"):
        served.add_labels(["flavor"])
    with pytest.raises(ValueError, match="save_pretrained needs the PyTorch model"):
        served.save_pretrained(tmp_path / "again")
    with pytest.raises(FileNotFoundError, match="no model.onnx; write it with `bertmap export"):
        WordMapper.from_pretrained(tmp_path, backend="onnx")


@pytest.mark.slow
def test_cli_exports_and_serves_with_the_onnx_backend(saved_model, tmp_path):
    cli = [sys.executable, "-m", "hf_bertmap.cli"]
    result = subprocess.run(cli + ["export", str(saved_model), str(tmp_path / "onnx")], capture_output=True, text=True)
    assert result.returncode == 0 and "model.onnx" in result.stdout, result.stderr[-2000:]
    torch_out = subprocess.run(cli + ["predict", str(saved_model), "large", "hot"], capture_output=True, text=True)
    onnx_out = subprocess.run(cli + ["predict", str(tmp_path / "onnx"), "large", "hot", "--backend", "onnx"],
                              capture_output=True, text=True)
    assert onnx_out.returncode == 0, onnx_out.stderr[-2000:]
    assert [line.split("\t")[:2] for line in onnx_out.stdout.splitlines()] == [
        line.split("\t")[:2] for line in torch_out.stdout.splitlines()]


def test_cuda_needs_onnxruntimes_cuda_provider_and_other_devices_are_refused(exported, monkeypatch):
    import onnxruntime

    _, folder = exported
    assert WordMapper.from_pretrained(folder, backend="onnx", device="cpu").predict(["large"])
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ValueError, match="needs ONNX Runtime's CUDA provider \\(pip install onnxruntime-gpu\\)"):
        WordMapper.from_pretrained(folder, backend="onnx", device="cuda")
    with pytest.raises(ValueError, match="runs on device 'cpu' or 'cuda\\[:N\\]', got 'mps'"):
        WordMapper.from_pretrained(folder, backend="onnx", device="mps")


def test_cuda_sessions_put_the_cuda_provider_first_with_the_cpu_behind_it():
    class CudaRuntime:
        @staticmethod
        def get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    assert execution_providers(CudaRuntime, "cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}),
                                                          "CPUExecutionProvider"]


def test_a_missing_onnxruntime_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def without_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_onnxruntime)
    with pytest.raises(ImportError, match=r'pip install "hf_bertmap\[onnx\]"'):
        require_onnxruntime()


def test_a_cosine_head_exports_with_the_same_scores(tokenizer, tmp_path):
    from conftest import make_model

    mapper = WordMapper(make_model(head_scoring="cosine"), tokenizer)
    mapper.export_onnx(tmp_path / "onnx")
    served = WordMapper.from_pretrained(tmp_path / "onnx", backend="onnx")
    expected, got = mapper.predict(PHRASES, top_k=3, min_score=0.0), served.predict(PHRASES, top_k=3, min_score=0.0)
    assert [dict(top) for top in got] == [pytest.approx(dict(top), abs=1e-5) for top in expected]
