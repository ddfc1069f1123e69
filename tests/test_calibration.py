"""Fitting the decoding step: the fitted temperature, what it changes (probabilities) and what it does not
(ranking); the memory weight chosen on validation."""

import dataclasses

import pytest
import torch

from hf_bertmap import DecodingConfig, PhraseMemory, WordMappingDecoder
from hf_bertmap.calibration import (
    MEMORY_WEIGHTS,
    ReducedFit,
    decoded_nll,
    fit_memory_vote,
    fit_temperature,
    gold_log_likelihood,
    top_k_hits,
)
from hf_bertmap.metrics import calibration_error


def sample_labels(logits: torch.Tensor, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def test_fit_recovers_the_temperature_the_labels_were_drawn_with():
    true_logits = torch.randn(4000, 12, generator=torch.Generator().manual_seed(0)) * 2
    labels = sample_labels(true_logits)
    # A model three times overconfident: its logits are the true ones times 3.
    assert fit_temperature(true_logits * 3, labels) == pytest.approx(3.0, rel=0.1)
    assert fit_temperature(true_logits, labels) == pytest.approx(1.0, rel=0.1)


def test_fitted_temperature_lowers_the_calibration_error_of_an_overconfident_model():
    true_logits = torch.randn(3000, 20, generator=torch.Generator().manual_seed(1)) * 2
    labels = sample_labels(true_logits)
    overconfident = true_logits * 4
    temperature = fit_temperature(overconfident, labels)
    before, after = calibration_error(overconfident, labels), calibration_error(overconfident / temperature, labels)
    assert after < before / 3
    assert torch.equal((overconfident / temperature).argmax(-1), overconfident.argmax(-1))


def test_several_golds_count_their_summed_probability_and_padding_rows_are_ignored():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    labels = torch.tensor([[0, 1], [2, -100]])
    expected = torch.stack([logits[0].softmax(-1)[:2].sum().log(), logits[1].log_softmax(-1)[2]])
    assert torch.allclose(gold_log_likelihood(logits, labels), expected)
    with_empty_row = torch.cat([labels, torch.tensor([[-100, -100]])])
    logits3 = torch.cat([logits, torch.tensor([[9.0, 0.0, 0.0]])])
    assert fit_temperature(logits3, with_empty_row) == pytest.approx(fit_temperature(logits, labels), rel=1e-4)


def test_no_gold_at_all_is_a_clear_error():
    with pytest.raises(ValueError, match="no row has a gold label"):
        fit_temperature(torch.zeros(2, 3), torch.tensor([[-100], [-100]]))


def test_the_memory_weight_is_the_one_decoding_validation_best():
    # Two validation phrases the classifier gets wrong and their nearest stored phrases get right.
    memory = PhraseMemory(["a", "b"], torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1], [2]]))
    decoder = WordMappingDecoder(DecodingConfig(memory_neighbors=1), memory)
    logits = torch.tensor([[2.0, 1.5, 0.0], [2.0, 0.0, 1.2]])
    chosen, scores = fit_memory_vote(decoder, logits, torch.eye(2), ["c", "d"], torch.tensor([1, 2]), k=2,
                                     calibrate=False, closenesses=(None,))
    assert scores[(0.0, None)] == (0.0, 1.0)
    assert chosen == {"memory_weight": 1.0, "memory_closeness": None, "temperature": 1.0}  # most mass on the golds
    assert all(scores[(w, None)][0] == 1.0 for w in (0.3, 0.4, 0.5, 0.6, 0.8, 1.0)) and scores[(0.2, None)][0] < 1.0
    assert decoder.config.temperature == 1.0 and decoder.config.memory_weight == 0.0  # nothing set on the decoder


def test_a_lone_far_neighbour_is_outweighed_while_a_near_one_decides():
    # Validation: two phrases near a stored one (right by the memory) and two far from any (right by the
    # classifier, wrong by the nearest stored phrase). Only a closeness between the two distances gets all four.
    memory = PhraseMemory(["salmon", "loud"], torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
                          torch.tensor([[0], [1]]))
    decoder = WordMappingDecoder(DecodingConfig(memory_neighbors=1), memory)
    embeddings = torch.tensor([[0.0, 0.98, 0.2], [0.0, 0.97, 0.24], [0.66, 0.0, 0.75], [0.6, 0.0, 0.8]])
    logits = torch.tensor([[0.0, 0.0, 3.0]] * 4)  # the classifier says word 2 for all four
    labels = torch.tensor([1, 1, 2, 2])
    chosen, scores = fit_memory_vote(decoder, logits, embeddings, ["a", "b", "c", "d"], labels, k=1,
                                     calibrate=False)
    assert scores[(0.0, None)][0] == 0.5 and max(scores[(w, None)][0] for w in MEMORY_WEIGHTS) == 0.5
    assert scores[(chosen["memory_weight"], chosen["memory_closeness"])][0] == 1.0
    assert chosen["memory_closeness"] is not None and chosen["memory_weight"] > 0


def test_with_a_memory_the_temperature_fits_the_mixed_probabilities():
    torch.manual_seed(0)
    keys, golds = torch.randn(40, 8), torch.randint(0, 5, (40, 1))
    decoder = WordMappingDecoder(DecodingConfig(memory_neighbors=5), PhraseMemory([f"p{i}" for i in range(40)],
                                                                                  keys, golds))
    embeddings, labels = torch.randn(200, 8), torch.randint(0, 5, (200,))
    logits = 4 * torch.nn.functional.one_hot(labels, 5).float() + 3 * torch.randn(200, 5)  # overconfident
    phrases = [f"q{i}" for i in range(200)]
    chosen, _ = fit_memory_vote(decoder, logits, embeddings, phrases, labels)
    temperature = chosen["temperature"]

    def nll(t: float) -> float:
        config = dataclasses.replace(decoder.config, **dict(chosen, temperature=t))
        return decoded_nll(decoder.probabilities(logits, embeddings, phrases, config=config), labels)

    assert temperature > 1.0 and nll(temperature) <= min(nll(temperature * 1.1), nll(temperature / 1.1))


def test_the_fit_scores_only_the_words_that_can_matter_and_gets_the_full_decodings_scores():
    # 300 words: each phrase's golds, top-k words, vote words and (stored phrase "p3") stored words are kept, and
    # their probabilities, top-k and golds' mass are exactly those of decoding over every word.
    torch.manual_seed(0)
    keys, golds = torch.randn(40, 8), torch.randint(0, 300, (40, 2))
    decoder = WordMappingDecoder(DecodingConfig(memory_neighbors=5), PhraseMemory([f"p{i}" for i in range(40)],
                                                                                  keys, golds))
    embeddings, labels = torch.randn(60, 8), torch.randint(0, 300, (60, 2))
    labels[::3, 1] = -100
    logits = 3 * torch.randn(60, 300)
    phrases = [f"q{i}" for i in range(59)] + ["p3"]
    reduced = ReducedFit(decoder, logits, embeddings, phrases, labels, k=5)
    assert reduced.columns.shape[1] < 300
    for weight, closeness, temperature in ((0.0, None, 1.0), (0.5, None, 0.3), (0.8, 0.2, 2.5)):
        config = dataclasses.replace(decoder.config, memory_weight=weight, memory_closeness=closeness,
                                     temperature=temperature)
        full = decoder.probabilities(logits, embeddings, phrases, config=config)
        kept = reduced.probabilities(config)
        assert torch.allclose(kept, full.gather(1, reduced.columns), atol=1e-6)
        assert top_k_hits(kept, labels, 5, reduced.columns) == top_k_hits(full, labels, 5)
        assert reduced.nll(kept) == pytest.approx(decoded_nll(full, labels), rel=1e-5)
