"""Serving with ONNX Runtime: export a trained word mapper's network (encoder, pooling, head) to ONNX, and run it
in place of the PyTorch model behind the same `WordMapper` and the same decoding step, so the answers are the same
words.

    bertmap export bertmap-attributes bertmap-onnx
    WordMapper.from_pretrained("bertmap-onnx", backend="onnx")

Needs `pip install "hf_bertmap[onnx]"` (onnxruntime, and onnx for the export). int8 quantisation is not offered:
none of the four kinds `bench/inference.py` measures (dynamic, static calibrated, blockwise 8-bit with int8
arithmetic, weight-only) keeps the top-1 word of 99% of the test phrases at a speed-up (docs/benchmarks.md#int8).
"""

import os

import torch
from torch import nn

from .configuration_bertmap import BertMapConfig
from .decoding_bertmap import WordMappingDecoder
from .modeling_bertmap import BertForWordMapping, WordMappingOutput

ONNX_FILE = "model.onnx"
OPSET = 17


def require_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ImportError('the ONNX backend needs onnxruntime: pip install "hf_bertmap[onnx]"') from None
    return onnxruntime


class _Network(nn.Module):
    """The exported graph: (input_ids, attention_mask) -> (logits, pooled_output)."""

    def __init__(self, model: BertForWordMapping):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return outputs.logits, outputs.pooled_output


def export_onnx(model: BertForWordMapping, tokenizer, output_dir: str | os.PathLike) -> str:
    """Write `model.onnx` into `output_dir`, which must already hold the saved model folder (config, tokenizer,
    decoding step); returns its path."""
    output_dir = str(output_dir)
    model = model.eval().float()
    sample = tokenizer(["very chonky", "large"], padding=True, return_tensors="pt")
    path = os.path.join(output_dir, ONNX_FILE)
    with torch.no_grad():  # the wrapper in eval mode: the exporter restores its mode, and so the model's, afterwards
        torch.onnx.export(
            _Network(model).eval(), (sample["input_ids"], sample["attention_mask"]), path,
            input_names=["input_ids", "attention_mask"], output_names=["logits", "pooled_output"],
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                          "logits": {0: "batch"}, "pooled_output": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
    fuse_transformer_graph(path, model.config.encoder_config)
    return path


def fuse_transformer_graph(path: str, encoder_config) -> None:
    """Fuse the encoder's attention, layer-norm and GELU subgraphs with ONNX Runtime's transformer optimizer (the
    same arithmetic in fewer, faster kernels); an encoder it does not know keeps the plain graph."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError:
        return
    if encoder_config.model_type not in ("bert", "roberta", "mpnet", "distilbert", "electra"):
        return
    heads = getattr(encoder_config, "num_attention_heads", getattr(encoder_config, "n_heads", 0))
    hidden = getattr(encoder_config, "hidden_size", getattr(encoder_config, "dim", 0))
    optimize_model(path, model_type="bert", num_heads=heads, hidden_size=hidden).save_model_to_file(path)


def execution_providers(onnxruntime, device: str | None) -> list:
    """ONNX Runtime's providers for `device`: the CPU's for None or "cpu"; CUDA's ("cuda", "cuda:1"), with the CPU's
    behind it for what CUDA lacks, where this onnxruntime has it (onnxruntime-gpu)."""
    if device is None or device == "cpu":
        return ["CPUExecutionProvider"]
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"the ONNX backend runs on device 'cpu' or 'cuda[:N]', got {device!r}")
    available = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise ValueError(f"device {device!r} with the ONNX backend needs ONNX Runtime's CUDA provider (pip install "
                         f"onnxruntime-gpu); this onnxruntime has {', '.join(available)}")
    return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]


class OnnxWordMapping:
    """Runs an exported word mapper in ONNX Runtime and answers like `BertForWordMapping`: `__call__` returns a
    `WordMappingOutput` with `logits` and `pooled_output`; `config` and `decoding` are the saved ones. Inputs and
    outputs stay on the CPU (ONNX Runtime copies them to and from a CUDA `device`)."""

    training = False
    device = torch.device("cpu")

    def __init__(self, folder: str, file: str = ONNX_FILE, threads: int | None = None, device: str | None = None):
        onnxruntime = require_onnxruntime()
        providers = execution_providers(onnxruntime, device)
        path = os.path.join(folder, file)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{folder}: no {file}; write it with `bertmap export MODEL {folder}`")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(path, options, providers=providers)
        self.config = BertMapConfig.from_pretrained(folder)
        self.decoding = WordMappingDecoder.from_pretrained(folder)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs) -> WordMappingOutput:
        logits, pooled = self.session.run(None, {"input_ids": input_ids.numpy().astype("int64"),
                                                 "attention_mask": attention_mask.numpy().astype("int64")})
        return WordMappingOutput(logits=torch.from_numpy(logits), pooled_output=torch.from_numpy(pooled))

    def eval(self) -> "OnnxWordMapping":
        return self

    def train(self, mode: bool = True) -> "OnnxWordMapping":
        if mode:
            raise ValueError("an ONNX word mapper cannot be trained")
        return self

    def add_labels(self, *args, **kwargs):
        raise ValueError("add_labels needs the PyTorch model: load it without backend='onnx', then export again")


__all__ = ["export_onnx", "OnnxWordMapping", "ONNX_FILE"]
