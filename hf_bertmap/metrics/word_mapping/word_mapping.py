"""Word-mapping metric: accuracy@1 and accuracy@k where any gold word counts, and macro-F1 over words."""

import datasets
import evaluate

_DESCRIPTION = """
Scores ranked predictions against one or more gold labels per example (a phrase such as "high" has several
correct words: height, pitch, level).

- accuracy: the top prediction is one of the golds (accuracy@1).
- accuracy_at_k: one of the first k predictions is a gold (k = `k`, default 5).
- macro_f1: F1 of the top prediction per label, averaged over every label that is a gold or a prediction. For
  an example with several golds, the reference is the predicted label when it is a gold, else the first gold.

An example with no gold (a target outside the model's label set) counts as wrong everywhere.

With `confidences` (the probability the model gave its top prediction), also:
- ece: expected calibration error of those confidences, over `n_bins` equal-width bins: the gap between mean
  confidence and accuracy@1 in each bin, weighted by the bin's share of examples.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[int]]`): label ids ranked best first, at least `k` per example when `k` is used.
    references (`list[list[int]]`): the gold label ids of each example; negative ids (padding) are ignored.
    k (`int`, defaults to 5): the cut-off of accuracy_at_k.
    confidences (`list[float]`, *optional*): the probability of each example's top prediction.
    n_bins (`int`, defaults to 15): bins of the calibration error.
Returns:
    accuracy (`float`), accuracy_at_k (`float`), macro_f1 (`float`) and, with confidences, ece (`float`), all
    in [0, 1].
Examples:
    >>> metric = evaluate.load("word_mapping.py")
    >>> metric.compute(predictions=[[3, 1], [2, 0]], references=[[1, 3], [0]], k=2)
    {'accuracy': 0.5, 'accuracy_at_k': 1.0, 'macro_f1': 0.3333333333333333}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class WordMapping(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int64")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
            ),
        )

    def _compute(self, predictions, references, k: int = 5, confidences=None, n_bins: int = 15):
        n = len(predictions)
        if confidences is not None and len(confidences) != n:
            raise ValueError(f"confidences: {len(confidences)} values for {n} predictions")
        if n == 0:
            empty = {"accuracy": 0.0, "accuracy_at_k": 0.0, "macro_f1": 0.0}
            return dict(empty, ece=0.0) if confidences is not None else empty
        hits_at_1 = hits_at_k = 0
        correct = []
        true_pos: dict[int, int] = {}
        pred_count: dict[int, int] = {}
        ref_count: dict[int, int] = {}
        for ranked, gold in zip(predictions, references):
            gold = [g for g in gold if g >= 0]
            top = ranked[0] if ranked else -1
            hits_at_1 += top in gold
            correct.append(top in gold)
            hits_at_k += any(p in gold for p in ranked[:k])
            pred_count[top] = pred_count.get(top, 0) + 1
            if gold:
                reference = top if top in gold else gold[0]
                ref_count[reference] = ref_count.get(reference, 0) + 1
                if reference == top:
                    true_pos[top] = true_pos.get(top, 0) + 1
        labels = (set(pred_count) | set(ref_count)) - {-1}
        f1s = []
        for label in labels:
            tp = true_pos.get(label, 0)
            denominator = pred_count.get(label, 0) + ref_count.get(label, 0)
            f1s.append(2 * tp / denominator if denominator else 0.0)
        results = {
            "accuracy": hits_at_1 / n,
            "accuracy_at_k": hits_at_k / n,
            "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
        }
        if confidences is not None:
            results["ece"] = expected_calibration_error(confidences, correct, n_bins)
        return results


def expected_calibration_error(confidences, correct, n_bins: int = 15) -> float:
    """Sum over equal-width confidence bins of |accuracy - mean confidence|, weighted by the bin's share."""
    bins: dict[int, list[tuple[float, bool]]] = {}
    for confidence, hit in zip(confidences, correct):
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"confidences must be probabilities in [0, 1], got {confidence}")
        bins.setdefault(min(int(confidence * n_bins), n_bins - 1), []).append((confidence, hit))
    gap = sum(abs(sum(c for c, _ in rows) - sum(h for _, h in rows)) for rows in bins.values())
    return gap / len(confidences)
