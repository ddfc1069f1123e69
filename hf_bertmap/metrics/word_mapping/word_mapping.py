"""Word-mapping metric: accuracy@1 and accuracy@k where any gold word counts, and macro-F1 over words."""

from statistics import median

import datasets
import evaluate

_DESCRIPTION = """
Scores ranked predictions against one or more gold labels per example (a phrase such as "high" has several
correct words: height, pitch, level).

- accuracy: the top prediction is one of the golds (accuracy@1).
- accuracy_at_k: one of the first k predictions is a gold (k = `k`, default 5); with a list of cut-offs
  (`k=[1, 10, 100]`), one `accuracy_at_{k}` per cut-off instead (`accuracy_at_10`).
- macro_f1: F1 of the top prediction per label, averaged over every label that is a gold or a prediction. For
  an example with several golds, the reference is the predicted label when it is a gold, else the first gold.

An example with no gold (a target outside the model's label set) counts as wrong everywhere.

With `gold_ranks` (each example's 1-based rank of its best-ranked gold among all output words, as the model
ranked them), also:
- median_rank: their median (the reverse-dictionary measure: half the golds rank this well or better).

With `confidences` (the probability the model gave its top prediction), also:
- ece: expected calibration error of those confidences, over `n_bins` equal-width bins: the gap between mean
  confidence and accuracy@1 in each bin, weighted by the bin's share of examples.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[int]]`): label ids ranked best first, at least `k` per example when `k` is used.
    references (`list[list[int]]`): the gold label ids of each example; negative ids (padding) are ignored.
    k (`int` or `list[int]`, defaults to 5): the cut-off of accuracy_at_k, or cut-offs, one accuracy_at_{k} each.
    gold_ranks (`list[int]`, *optional*): per example, the rank (1 = best) of its best gold over every output
        word; an example without a gold gets the worst rank its caller chose (e.g. the number of words + 1).
    confidences (`list[float]`, *optional*): the probability of each example's top prediction.
    n_bins (`int`, defaults to 15): bins of the calibration error.
Returns:
    accuracy (`float`), accuracy_at_k (`float`, or accuracy_at_{k} per cut-off), macro_f1 (`float`) and, with
    confidences, ece (`float`), all in [0, 1]; with gold_ranks, median_rank (`float`).
Examples:
    >>> metric = evaluate.load("word_mapping.py")
    >>> metric.compute(predictions=[[3, 1], [2, 0]], references=[[1, 3], [0]], k=2)
    {'accuracy': 0.5, 'accuracy_at_k': 1.0, 'macro_f1': 0.3333333333333333}
    >>> metric.compute(predictions=[[3, 1], [2, 0]], references=[[1, 3], [0]], k=[1, 2], gold_ranks=[1, 2])
    {'accuracy': 0.5, 'accuracy_at_1': 0.5, 'accuracy_at_2': 1.0, 'macro_f1': 0.3333333333333333, 'median_rank': 1.5}
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

    def _compute(self, predictions, references, k=5, confidences=None, n_bins: int = 15, gold_ranks=None):
        n = len(predictions)
        cutoffs = [k] if isinstance(k, int) else [int(c) for c in k]
        if not cutoffs or min(cutoffs) < 1:
            raise ValueError(f"k: cut-offs must be >= 1, got {k}")
        for name, values in (("confidences", confidences), ("gold_ranks", gold_ranks)):
            if values is not None and len(values) != n:
                raise ValueError(f"{name}: {len(values)} values for {n} predictions")
        if gold_ranks is not None and any(rank < 1 for rank in gold_ranks):
            raise ValueError("gold_ranks: ranks start at 1")
        at_k = ["accuracy_at_k"] if isinstance(k, int) else [f"accuracy_at_{c}" for c in cutoffs]
        if n == 0:
            empty = dict({"accuracy": 0.0}, **dict.fromkeys(at_k, 0.0), macro_f1=0.0)
            empty.update({} if gold_ranks is None else {"median_rank": 0.0})
            return dict(empty, ece=0.0) if confidences is not None else empty
        hits_at_1 = 0
        hits_at = [0] * len(cutoffs)
        correct = []
        true_pos: dict[int, int] = {}
        pred_count: dict[int, int] = {}
        ref_count: dict[int, int] = {}
        for ranked, gold in zip(predictions, references):
            gold = [g for g in gold if g >= 0]
            top = ranked[0] if ranked else -1
            hits_at_1 += top in gold
            correct.append(top in gold)
            for i, cutoff in enumerate(cutoffs):
                hits_at[i] += any(p in gold for p in ranked[:cutoff])
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
        results = {"accuracy": hits_at_1 / n}
        results.update({name: hits / n for name, hits in zip(at_k, hits_at)})
        results["macro_f1"] = sum(f1s) / len(f1s) if f1s else 0.0
        if gold_ranks is not None:
            results["median_rank"] = float(median(gold_ranks))
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
