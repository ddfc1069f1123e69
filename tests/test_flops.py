"""The benchmarks' model-FLOP count (bench/flops.py) agrees with PyTorch's own count of the matrix multiplies."""

import sys
from pathlib import Path

import pytest
import torch
from conftest import make_model
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from flops import matmul_peak_flops, word_mapper_flops  # noqa: E402


def eager_model(frozen_layers=None, freeze_head=False):
    model = make_model(labels=[f"w{i}" for i in range(11)])
    model.encoder.config._attn_implementation = "eager"  # attention as plain matmuls, which the counter sees
    if frozen_layers:
        model.freeze_encoder_layers(frozen_layers)
    for param in model.classifier.parameters():
        param.requires_grad = not freeze_head
    return model


def counted(model, train: bool) -> int:
    batch = {"input_ids": torch.randint(5, 20, (3, 7)), "attention_mask": torch.ones(3, 7, dtype=torch.long)}
    with FlopCounterMode(display=False) as counter:
        if train:
            model.train()(**batch, labels=torch.tensor([0, 4, 9])).loss.backward()
        else:
            with torch.no_grad():
                model.eval()(**batch)
    return counter.get_total_flops()


def test_forward_flops_match_pytorchs_count():
    model = eager_model()
    assert word_mapper_flops(model.config, batch=3, length=7) == counted(model, train=False)


@pytest.mark.parametrize("frozen_layers", [0, 1, 2])
def test_training_step_flops_match_pytorchs_count_with_frozen_layers(frozen_layers):
    model = eager_model(frozen_layers)
    flops = word_mapper_flops(model.config, batch=3, length=7, frozen_layers=frozen_layers)
    assert flops == counted(model, train=True)


def test_a_fixed_head_costs_no_weight_gradient():
    model = eager_model(frozen_layers=1, freeze_head=True)
    flops = word_mapper_flops(model.config, batch=3, length=7, frozen_layers=1, head_trained=False)
    assert flops == counted(model, train=True)


def test_the_matmul_peak_is_a_positive_rate():
    assert matmul_peak_flops(torch.float32, sizes=(64,), seconds=0.01) > 0
