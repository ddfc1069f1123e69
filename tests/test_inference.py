"""WordMapper: batched top-k predictions with probabilities."""

import pytest
import torch

from hf_bertmap import WordMapper


def test_predict_returns_top_k_words_with_probabilities_best_first(saved_model):
    mapper = WordMapper.from_pretrained(saved_model)
    results = mapper.predict(["very large", "fishy", "Hot"], top_k=3)
    assert len(results) == 3
    for top in results:
        assert [w for w, _ in top] and {w for w, _ in top} == {"height", "size", "smell"}
        scores = [s for _, s in top]
        assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-5)


def test_single_string_gives_a_single_list_and_batching_does_not_change_scores(saved_model):
    mapper = WordMapper.from_pretrained(saved_model)
    phrases = ["large", "very hot", "not fishy at all", "tall"]
    one_by_one = [mapper.predict(p, top_k=2) for p in phrases]
    batched = mapper.predict(phrases, top_k=2, batch_size=3)
    for a, b in zip(one_by_one, batched):
        assert [w for w, _ in a] == [w for w, _ in b]
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-5)


def test_phrases_are_normalised_like_training(saved_model):
    mapper = WordMapper.from_pretrained(saved_model)
    assert torch.allclose(mapper.predict_proba(["  Very   LARGE "]), mapper.predict_proba(["very large"]))


def test_bad_phrases_and_top_k_are_refused(saved_model):
    mapper = WordMapper.from_pretrained(saved_model)
    with pytest.raises(ValueError, match="phrase 1: expected a non-empty string, got '  '"):
        mapper.predict(["big", "  "])
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        mapper.predict(["big"], top_k=0)
    assert mapper.predict([], top_k=2) == []
