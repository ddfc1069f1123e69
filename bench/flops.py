"""Model FLOPs of a word mapper, counted from its shapes, and the machine's measured matrix-multiply peak: the two
halves of model FLOP utilisation (MFU) that `bench/train_throughput.py` and `bench/inference.py` report.

Counted are the matrix multiplies, which hold nearly all of an encoder's arithmetic: per layer the query, key, value
and output projections, the two feed-forward layers and the two attention products (scores and the weighted sum),
then the head's projection onto the output words. One multiply-add is 2 FLOPs. Training counts the backward pass
like PaLM's MFU (no recomputation): every trained layer's weights get a gradient (as many FLOPs as the forward
multiply) and so does every input that needs one, so a fixed lower layer costs its forward only and the first
trained layer does not propagate into the frozen ones. Element-wise work (softmax, layer norm, GELU, pooling) is
left out, as in the usual MFU; `tests/test_bench.py` checks the count against PyTorch's `FlopCounterMode`.
"""

import time

import torch


def _matmul(rows: int, fan_in: int, fan_out: int) -> int:
    return 2 * rows * fan_in * fan_out


def word_mapper_flops(config, batch: int, length: int, frozen_layers: int | None = None,
                      head_trained: bool = True) -> int:
    """FLOPs of one batch of `batch` phrases padded to `length` tokens through a `BertMapConfig`'s model: the
    forward pass when `frozen_layers` is None (inference), else a training step (forward and backward) with the
    embeddings and the first `frozen_layers` encoder layers fixed and the head trained or not."""
    if config.head != "labels":
        raise ValueError(f"FLOPs are counted for the labels head; this model has head={config.head!r}")
    encoder = config.encoder_config
    hidden, inner, layers = encoder.hidden_size, encoder.intermediate_size, encoder.num_hidden_layers
    tokens = batch * length
    projections = 4 * _matmul(tokens, hidden, hidden)  # query, key, value, output
    first_projections = 3 * _matmul(tokens, hidden, hidden)  # the three that read the layer's input
    feed_forward = _matmul(tokens, hidden, inner) + _matmul(tokens, inner, hidden)
    attention = 2 * _matmul(batch * length, hidden, length)  # scores (q k^T) and weighted sum (p v), all heads
    layer = projections + feed_forward + attention
    pooler = _matmul(batch, hidden, hidden) if config.pooling == "pooler" else 0
    head = _matmul(batch, hidden, config.num_labels)
    forward = layers * layer + pooler + head
    if frozen_layers is None:
        return forward
    if not 0 <= frozen_layers <= layers:
        raise ValueError(f"frozen_layers must be in [0, {layers}], got {frozen_layers}")
    trained = layers - frozen_layers
    backward = 0
    if trained:
        # Weight gradients of every trained multiply, input gradients of every multiply whose input needs one:
        # the attention products' operands always do, the first trained layer's own input only if it is trained.
        first_input = 0 if frozen_layers else first_projections
        backward += trained * (2 * projections + 2 * feed_forward + 2 * attention) - first_projections + first_input
        backward += 2 * pooler + head  # the pooled embedding's gradient
    if head_trained:
        backward += head
    return forward + backward


def matmul_peak_flops(dtype: torch.dtype = torch.float32, sizes: tuple[int, ...] = (1024, 2048),
                      seconds: float = 1.0) -> float:
    """The machine's best measured FLOP/s of a square matrix multiply in `dtype` on the current threads: the
    denominator of MFU, measured in the same run as the numerator."""
    best = 0.0
    for size in sizes:
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        a @ b  # warm-up: the kernel's first call picks its blocking
        runs, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds or runs < 2:
            a @ b
            runs += 1
        best = max(best, runs * _matmul(size, size, size) / elapsed)
    return best
