"""The `word_mapping` evaluate metric, shipped in the package so it loads offline, and Trainer glue for it."""

import functools
from collections.abc import Sequence
from pathlib import Path

import evaluate
import numpy as np
import torch
from transformers import EvalPrediction

METRIC_PATH = Path(__file__).parent / "word_mapping" / "word_mapping.py"
ECE_BINS = 15  # equal-width confidence bins of the calibration error (`n_bins`) and of the reliability diagram


@functools.cache
def load_metric() -> evaluate.EvaluationModule:
    """The `word_mapping` metric, loaded once from the package (no Hub access needed)."""
    return evaluate.load(str(METRIC_PATH))


def top_k_logits(k: int):
    """A `preprocess_logits_for_metrics` keeping only the `k` best label ids per row and the top probability
    (cheap for big label sets)."""

    def preprocess(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(logits, tuple):
            logits = logits[0]
        top = logits.topk(min(k, logits.shape[-1]), dim=-1)
        confidence = (top.values[:, 0] - logits.float().logsumexp(dim=-1)).exp()  # softmax of the best
        return top.indices, confidence

    return preprocess


def build_compute_metrics(k: int = 5):
    """`compute_metrics` for `Trainer`: predictions are `top_k_logits`' (top-k ids, top probability), label_ids
    gold ids padded with -100."""
    metric = load_metric()

    def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
        ranked, confidence = eval_prediction.predictions
        gold = np.asarray(eval_prediction.label_ids)
        if gold.ndim == 1:
            gold = gold[:, None]
        references = [[int(g) for g in row if g >= 0] for row in gold]
        results = metric.compute(predictions=np.asarray(ranked).tolist(), references=references, k=k,
                                 confidences=np.asarray(confidence, dtype=float).tolist(), n_bins=ECE_BINS)
        return {"accuracy": results["accuracy"], f"accuracy_at_{k}": results["accuracy_at_k"],
                "macro_f1": results["macro_f1"], "ece": results["ece"]}

    return compute_metrics


def gold_lists(targets: Sequence[Sequence[str]], label2id: dict[str, int]) -> list[list[int]]:
    """Each phrase's gold ids: its target words that are output words (a target outside the label set is dropped)."""
    return [[label2id[w] for w in words if w in label2id] for words in targets]


def word_mapping_scores(ranked: list[list[int]], confidences: list[float], references: list[list[int]],
                        k: int | Sequence[int], min_score: float = 0.0,
                        gold_ranks: list[int] | None = None) -> dict[str, float]:
    """The `word_mapping` metric of decoded predictions: `accuracy` (top-1, any gold), `accuracy_at_{k}` for each
    cut-off in `k`, `macro_f1`, `ece` of the top probability, `coverage`, the share of phrases whose top probability
    reaches `min_score` (the rest get no word), and, with `gold_ranks`, `median_rank`."""
    cutoffs = [k] if isinstance(k, int) else list(k)
    confidences = [min(1.0, max(0.0, c)) for c in confidences]  # a sum of float32 shares can pass 1 by 1e-7
    results = load_metric().compute(predictions=ranked, references=references, k=cutoffs, confidences=confidences,
                                    n_bins=ECE_BINS,
                                    gold_ranks=gold_ranks)
    coverage = sum(c >= min_score for c in confidences) / max(1, len(confidences))
    scores = {"accuracy": results["accuracy"]}
    scores.update({f"accuracy_at_{c}": results[f"accuracy_at_{c}"] for c in cutoffs})
    scores.update(macro_f1=results["macro_f1"], ece=results["ece"], coverage=coverage)
    if gold_ranks is not None:
        scores["median_rank"] = results["median_rank"]
    return scores


def calibration_error(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Expected calibration error of the top word's probability (any gold counts as right)."""
    if labels.dim() == 1:
        labels = labels.unsqueeze(-1)
    probabilities = logits.softmax(dim=-1)
    confidence, top = probabilities.max(dim=-1)
    references = [[int(g) for g in row if g >= 0] for row in labels.tolist()]
    return load_metric().compute(predictions=top.unsqueeze(-1).tolist(), references=references, k=1,
                                 confidences=confidence.tolist(), n_bins=ECE_BINS)["ece"]
