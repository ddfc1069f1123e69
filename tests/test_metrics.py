"""The word_mapping evaluate metric and the Trainer glue around it."""

import numpy as np
import pytest
import torch
from transformers import EvalPrediction

from hf_bertmap.metrics import METRIC_PATH, build_compute_metrics, load_metric, top_k_logits


def test_metric_loads_offline_from_the_package():
    assert METRIC_PATH.is_file()
    assert load_metric().name == "word_mapping"


def test_any_gold_counts_for_accuracy_and_accuracy_at_k():
    metric = load_metric()
    results = metric.compute(
        predictions=[[3, 1, 0], [2, 0, 1], [1, 2, 3], [0, 1, 2]],
        references=[[1, 3], [0], [1], []],  # the last has no gold in the label set: always wrong
        k=2,
    )
    assert results["accuracy"] == pytest.approx(2 / 4)
    assert results["accuracy_at_k"] == pytest.approx(3 / 4)


def test_macro_f1_uses_the_matched_gold_as_reference():
    # top-1: 3 (gold {1,3} -> ref 3, hit), 2 (gold {0} -> ref 0, miss), 1 (gold {1}, hit)
    results = load_metric().compute(predictions=[[3], [2], [1]], references=[[1, 3], [0], [1]], k=1)
    # per label F1: 3 -> 1.0, 2 -> 0 (one false positive), 0 -> 0 (one false negative), 1 -> 1.0
    assert results["macro_f1"] == pytest.approx(2 / 4)
    assert results["accuracy"] == pytest.approx(2 / 3)


def test_compute_metrics_reads_minus_100_padded_gold_ids():
    compute = build_compute_metrics(k=2)
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.3], [0.0, 0.2, 0.7]])
    ranked, confidence = top_k_logits(2)(logits, None)
    assert ranked.tolist() == [[1, 0], [0, 2], [2, 1]]
    assert torch.allclose(confidence, logits.softmax(-1).max(-1).values)
    labels = np.array([[0, 1], [2, -100], [0, -100]])
    results = compute(EvalPrediction(predictions=(ranked.numpy(), confidence.numpy()), label_ids=labels))
    assert results["accuracy"] == pytest.approx(1 / 3)
    assert results["accuracy_at_2"] == pytest.approx(2 / 3)
    assert set(results) == {"accuracy", "accuracy_at_2", "macro_f1", "ece"}


def test_ece_is_the_bin_weighted_gap_between_confidence_and_accuracy():
    metric = load_metric()
    # Bin [0.9, 1.0): confidences 0.95, 0.95, both right -> gap 0.05 each. Bin [0.5, 0.6): 0.5 wrong -> gap 0.5.
    results = metric.compute(predictions=[[0], [1], [2]], references=[[0], [1], [0]], k=1,
                             confidences=[0.95, 0.95, 0.5], n_bins=10)
    assert results["ece"] == pytest.approx((0.05 + 0.05 + 0.5) / 3)
    perfect = metric.compute(predictions=[[0], [1]], references=[[0], [0]], k=1, confidences=[1.0, 0.0])
    assert perfect["ece"] == pytest.approx(0.0)
    assert "ece" not in metric.compute(predictions=[[0]], references=[[0]], k=1)


def test_ece_refuses_confidences_that_are_not_probabilities():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_metric().compute(predictions=[[0]], references=[[0]], k=1, confidences=[1.5])


def test_a_list_of_cut_offs_gives_one_accuracy_each():
    results = load_metric().compute(predictions=[[3, 1, 2], [2, 0, 1], [0, 1, 2]], references=[[1], [1], [2]],
                                    k=[1, 2, 3])
    assert (results["accuracy_at_1"], results["accuracy_at_2"], results["accuracy_at_3"]) == (0.0, 1 / 3, 1.0)
    assert "accuracy_at_k" not in results


def test_gold_ranks_give_the_median_rank():
    results = load_metric().compute(predictions=[[0], [0], [0]], references=[[0], [1], [2]], gold_ranks=[1, 40, 7])
    assert results["median_rank"] == 7.0


def test_gold_ranks_below_one_are_refused():
    with pytest.raises(ValueError, match="gold_ranks: ranks start at 1"):
        load_metric().compute(predictions=[[0]], references=[[0]], gold_ranks=[0])
