"""The decoding step on fixed tensors: temperature, the phrase memory (vote and lexicon), top-k, abstention, files."""

import dataclasses
import json

import pytest
import torch

from hf_bertmap import DecodingConfig, PhraseMemory, WordMappingDecoder

LABELS = ["height", "size", "smell"]
LOGITS = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.5, 3.0]])
EMBEDDINGS = torch.tensor([[1.0, 0.0], [0.0, 1.0]])


def memory() -> PhraseMemory:
    # "tall" (height) points the way of the first query, "musky" (smell, size) the way of the second.
    return PhraseMemory(["tall", "musky"], torch.tensor([[2.0, 0.1], [0.1, 3.0]]), torch.tensor([[0, -100], [2, 1]]))


def test_temperature_divides_the_logits_before_the_softmax():
    decoder = WordMappingDecoder(DecodingConfig(temperature=2.0))
    assert torch.allclose(decoder.probabilities(LOGITS), (LOGITS / 2).softmax(-1))


def test_memory_mixes_the_nearest_phrases_vote_into_unknown_phrases():
    decoder = WordMappingDecoder(DecodingConfig(memory_weight=0.4, memory_neighbors=1), memory())
    mixed = decoder.probabilities(LOGITS, EMBEDDINGS, ["lofty", "fishy"])
    vote = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])  # one neighbour each, its golds sharing its vote
    assert torch.allclose(mixed, 0.6 * LOGITS.softmax(-1) + 0.4 * vote, atol=1e-6)
    without = dataclasses.replace(decoder.config, memory_weight=0.0)
    assert torch.allclose(decoder.probabilities(LOGITS, EMBEDDINGS, ["lofty", "fishy"], config=without),
                          LOGITS.softmax(-1))
    assert decoder.config.memory_weight == 0.4  # a setting passed by value leaves the decoder's own as it was


def test_the_vote_counts_less_the_farther_the_nearest_stored_phrase_is():
    # Queries at cosine 0.95 and 0.6 from "tall", the only stored phrase; the vote counts from 0.7 up.
    stored = PhraseMemory(["tall"], torch.tensor([[1.0, 0.0]]), torch.tensor([[0]]))
    queries = torch.tensor([[0.95, (1 - 0.95**2) ** 0.5], [0.6, 0.8]])
    decoder = WordMappingDecoder(DecodingConfig(memory_weight=0.8, memory_neighbors=1, memory_closeness=0.7), stored)
    parts = decoder.decompose(LOGITS, queries, ["lofty", "fishy"])
    near_share = 0.8 * (0.95 - 0.7) / (1 - 0.7)
    assert parts.memory_share.tolist() == pytest.approx([near_share, 0.0])
    vote = torch.tensor([1.0, 0.0, 0.0])
    assert torch.allclose(parts.probabilities[0], (1 - near_share) * LOGITS.softmax(-1)[0] + near_share * vote,
                          atol=1e-6)
    assert torch.allclose(parts.probabilities[1], LOGITS.softmax(-1)[1], atol=1e-6)  # far: the classifier alone
    always = dataclasses.replace(decoder.config, memory_closeness=None)  # models saved before closeness
    assert decoder.decompose(LOGITS, queries, ["lofty", "fishy"], config=always).memory_share.tolist() == \
        pytest.approx([0.8, 0.8])


def test_explain_shows_the_memory_votes_share_of_each_phrase():
    stored = PhraseMemory(["tall"], torch.tensor([[1.0, 0.0]]), torch.tensor([[0]]))
    decoder = WordMappingDecoder(DecodingConfig(memory_weight=0.8, memory_neighbors=1, memory_closeness=0.7), stored)
    queries = torch.tensor([[0.95, (1 - 0.95**2) ** 0.5], [0.6, 0.8]])
    explained = decoder.explain(LOGITS, queries, ["lofty", "tall"], LABELS, top_k=2)
    assert explained[0]["memory_share"] == pytest.approx(0.8 * 0.25 / 0.3)
    assert explained[1]["stored"] and explained[1]["memory_share"] == 0.0  # a stored phrase: its words, no vote
    assert explained[0]["words"][0]["memory"] == pytest.approx(explained[0]["memory_share"], abs=1e-6)


def test_a_stored_phrase_is_matched_on_its_text_and_gets_only_its_words():
    decoder = WordMappingDecoder(DecodingConfig(memory_weight=0.4), memory())
    far = torch.tensor([[-1.0, 0.0], [0.0, -1.0]])  # embeddings say nothing: the text decides
    known = decoder.probabilities(LOGITS, far, ["musky", "tall"])
    plain = LOGITS.softmax(-1)
    assert torch.allclose(known[0], torch.cat([torch.zeros(1), plain[0, 1:] / plain[0, 1:].sum()]), atol=1e-6)
    assert torch.allclose(known[1], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)


def test_select_gives_the_top_k_best_first_or_nothing_below_min_score():
    decoder = WordMappingDecoder(DecodingConfig(top_k=2))
    probabilities = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    selected = decoder.select(probabilities, LABELS)
    assert [[word for word, _ in row] for row in selected] == [["height", "size"], ["height", "size"]]
    assert [[score for _, score in row] for row in selected] == [pytest.approx([0.7, 0.2]), pytest.approx([0.4, 0.35])]
    assert [[w for w, _ in row] for row in decoder.select(probabilities, LABELS, top_k=1, min_score=0.5)] == [
        ["height"], []]
    with pytest.raises(ValueError, match="top_k must be an integer >= 1"):
        decoder.select(probabilities, LABELS, top_k=0)
    with pytest.raises(ValueError, match=r"min_score must be a number in \[0, 1\]"):
        decoder.select(probabilities, LABELS, min_score=1.5)


def test_words_of_probability_zero_are_never_listed():
    decoder = WordMappingDecoder(DecodingConfig(memory_weight=0.4), memory())
    probabilities = decoder.probabilities(LOGITS, EMBEDDINGS, ["tall", "fishy"])
    assert decoder.select(probabilities, LABELS, top_k=3)[0] == [("height", 1.0)]  # a stored phrase: its word only
    assert len(decoder.select(probabilities, LABELS, top_k=3)[1]) == 3


def test_phrases_are_checked_and_normalised_like_training():
    decoder = WordMappingDecoder()
    assert decoder.normalize(["  Very   LARGE ", "olfactory_property"]) == ["very large", "olfactory property"]
    with pytest.raises(ValueError, match="phrase 1: expected a non-empty string, got '  '"):
        decoder.normalize(["big", "  "])


def test_settings_and_memory_survive_a_save_and_load(tmp_path):
    decoder = WordMappingDecoder(DecodingConfig(temperature=1.3, min_score=0.1, memory_weight=0.3, max_length=48,
                                                memory_closeness=0.6), memory())
    decoder.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "decoding_config.json").read_text())["temperature"] == 1.3
    loaded = WordMappingDecoder.from_pretrained(tmp_path)
    assert loaded.config == decoder.config and loaded.memory.phrases == ["tall", "musky"]
    assert torch.equal(loaded.memory.golds, decoder.memory.golds)
    assert torch.allclose(loaded.probabilities(LOGITS, EMBEDDINGS, ["lofty", "musky"]),
                          decoder.probabilities(LOGITS, EMBEDDINGS, ["lofty", "musky"]))
    WordMappingDecoder(loaded.config).save_pretrained(tmp_path)  # no memory now: its file goes
    assert not (tmp_path / "memory.safetensors").exists()
    (tmp_path / "plain-model").mkdir()
    assert WordMappingDecoder.from_pretrained(tmp_path / "plain-model").config == DecodingConfig()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"memory_weight": 1.5}, r"memory_weight must be a number in \[0, 1\]"),
    ({"memory_closeness": 1.0}, "memory_closeness must be below 1"),
    ({"memory_closeness": -0.5}, r"memory_closeness must be a number in \[0, 1\]"),
    ({"min_score": -0.1}, r"min_score must be a number in \[0, 1\]"),
    ({"top_k": 2.5}, r"top_k must be an integer >= 1, got 2.5"),
])
def test_bad_settings_are_refused_with_their_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DecodingConfig(**kwargs)


def test_half_precision_logits_and_embeddings_decode_like_float32():
    decoder = WordMappingDecoder(DecodingConfig(memory_weight=0.4, memory_neighbors=1), memory())
    full = decoder.probabilities(LOGITS, EMBEDDINGS, ["lofty", "fishy"])
    half = decoder.probabilities(LOGITS.bfloat16(), EMBEDDINGS.bfloat16(), ["lofty", "fishy"])
    assert half.dtype == torch.float32 and torch.allclose(half, full, atol=2e-2)
