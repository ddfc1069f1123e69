"""The `word_mapping` evaluate metric, shipped in the package so it loads offline, and Trainer glue for it."""

from pathlib import Path

import evaluate
import numpy as np
import torch
from transformers import EvalPrediction

METRIC_PATH = Path(__file__).parent / "word_mapping" / "word_mapping.py"


def load_metric(**kwargs) -> evaluate.EvaluationModule:
    """Load the `word_mapping` metric from the package (no Hub access needed)."""
    return evaluate.load(str(METRIC_PATH), **kwargs)


def top_k_logits(k: int):
    """A `preprocess_logits_for_metrics` keeping only the `k` best label ids per row (cheap for big label sets)."""

    def preprocess(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if isinstance(logits, tuple):
            logits = logits[0]
        return logits.topk(min(k, logits.shape[-1]), dim=-1).indices

    return preprocess


def build_compute_metrics(k: int = 5, **load_kwargs):
    """`compute_metrics` for `Trainer`: predictions are top-k ids, label_ids gold ids padded with -100."""
    metric = load_metric(**load_kwargs)

    def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
        ranked = np.asarray(eval_prediction.predictions)
        gold = np.asarray(eval_prediction.label_ids)
        if gold.ndim == 1:
            gold = gold[:, None]
        references = [[int(g) for g in row if g >= 0] for row in gold]
        results = metric.compute(predictions=ranked.tolist(), references=references, k=k)
        return {"accuracy": results["accuracy"], f"accuracy_at_{k}": results["accuracy_at_k"],
                "macro_f1": results["macro_f1"]}

    return compute_metrics
