"""WordMapper: batched top-k predictions with probabilities."""

import dataclasses

import pytest
import torch
from conftest import make_model

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
    with pytest.raises(ValueError, match="top_k must be an integer >= 1"):
        mapper.predict(["big"], top_k=0)
    assert mapper.predict([], top_k=2) == []


def test_min_score_abstains_below_the_threshold_and_defaults_to_the_config(saved_model):
    mapper = WordMapper.from_pretrained(saved_model)
    phrases = ["large", "hot", "fishy"]
    best = [top[0][1] for top in mapper.predict(phrases)]
    assert mapper.decoding.config.min_score == 0.0 and all(best)  # the default never abstains
    threshold = sorted(best)[1]  # the lowest-scored phrase falls below it, the others do not
    results = mapper.predict(phrases, top_k=2, min_score=threshold)
    assert [len(top) for top in results] == [0 if score < threshold else 2 for score in best]
    mapper.decoding.config = dataclasses.replace(mapper.decoding.config, min_score=1.0)
    assert mapper.predict(phrases) == [[], [], []] and mapper.predict("large") == []
    with pytest.raises(ValueError, match=r"min_score must be a number in \[0, 1\]"):
        mapper.predict(phrases, min_score=1.5)


def test_add_labels_makes_new_words_outputs_without_changing_the_old_scores(saved_model, tmp_path):
    mapper = WordMapper.from_pretrained(saved_model)
    phrases = ["large", "very hot", "fishy"]
    before = mapper.model(**mapper.tokenizer(phrases, padding=True, return_tensors="pt")).logits
    assert mapper.add_labels(["Value", "temperature", "size", "value"]) == ["value", "temperature"]  # size exists
    assert mapper.words == ["height", "size", "smell", "value", "temperature"]
    assert mapper.model.config.label2id["temperature"] == 4 and mapper.model.config.num_labels == 5
    after = mapper.model(**mapper.tokenizer(phrases, padding=True, return_tensors="pt")).logits
    assert after.shape == (3, 5) and torch.allclose(after[:, :3], before, atol=1e-6)
    assert {w for w, _ in mapper.predict("hot", top_k=5)} == set(mapper.words)

    mapper.save_pretrained(tmp_path / "extended")
    reloaded = WordMapper.from_pretrained(tmp_path / "extended")
    assert reloaded.words == mapper.words
    assert torch.allclose(reloaded.predict_proba(phrases), mapper.predict_proba(phrases), atol=1e-6)


def test_add_labels_refuses_empty_words_and_the_vocabulary_head(saved_model, tokenizer, tmp_path):
    mapper = WordMapper.from_pretrained(saved_model)
    with pytest.raises(ValueError, match="word 1: expected a non-empty string"):
        mapper.add_labels(["flavor", " "])
    assert mapper.words == ["height", "size", "smell"]  # nothing half-added
    make_model(head="vocab").save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"adding words \(add_labels\) applies to head='labels' or 'text'"):
        WordMapper.from_pretrained(tmp_path).add_labels(["flavor"])


def test_word_mapping_pipeline_gives_exactly_what_predict_gives(saved_model):
    from transformers import pipeline

    mapper = WordMapper.from_pretrained(saved_model)
    mapper.decoding.config = dataclasses.replace(mapper.decoding.config, temperature=1.7)
    mapper.memorize(["chonky", "very large"], ["smell", ["height", "size"]], weight=0.4)
    mapper.save_pretrained(saved_model)
    mapper = WordMapper.from_pretrained(saved_model)
    words = pipeline("word-mapping", model=str(saved_model), trust_remote_code=True)
    phrases = ["Very Large", "chonky", "fishy", "tall"]
    for kwargs in ({}, {"top_k": 2}, {"top_k": 3, "min_score": 0.5}, {"min_score": 1.0}):
        expected = [[{"word": w, "score": pytest.approx(s, abs=1e-6)} for w, s in top]
                    for top in mapper.predict(phrases, **kwargs)]
        assert words(phrases, **kwargs) == expected, kwargs
    words.decoding.config = dataclasses.replace(words.decoding.config, min_score=1.0)
    assert words("large") == []


def test_memorize_makes_stored_pairs_known_at_once_and_appends(saved_model, tmp_path):
    mapper = WordMapper.from_pretrained(saved_model)
    with pytest.raises(ValueError, match="needs a memory weight > 0"):
        mapper.memorize(["chonky"], ["size"])
    with pytest.raises(ValueError, match=r"phrase 0 \('chonky'\): targets \['girth'\] must be output words"):
        mapper.memorize(["chonky"], ["girth"], weight=0.9)
    mapper.memorize(["chonky", "Very Large"], ["smell", ["height", "size"]], weight=0.9)
    assert mapper.predict("chonky")[0][0] == "smell"
    assert {w for w, _ in mapper.predict("very large", top_k=2)} == {"height", "size"}
    mapper.memorize(["fishy"], ["height"])  # appended, the weight kept
    assert len(mapper.decoding.memory) == 3 and mapper.decoding.config.memory_weight == 0.9
    assert mapper.predict("fishy")[0][0] == "height" and mapper.predict("chonky")[0][0] == "smell"

    mapper.save_pretrained(tmp_path / "with-memory")
    reloaded = WordMapper.from_pretrained(tmp_path / "with-memory")
    assert torch.allclose(reloaded.predict_proba(["chonky", "fishy", "tall"]),
                          mapper.predict_proba(["chonky", "fishy", "tall"]), atol=1e-6)
    mapper.memorize(["tall"], ["smell"], replace=True)
    assert len(mapper.decoding.memory) == 1


def test_bfloat16_loads_and_predicts_with_the_memory(saved_model):
    mapper = WordMapper.from_pretrained(saved_model)
    mapper.memorize(["chonky"], ["smell"], weight=0.3)
    mapper.save_pretrained(saved_model)
    half = WordMapper.from_pretrained(saved_model, dtype=torch.bfloat16)
    assert half.model.dtype == torch.bfloat16 and half.tokenizer is not None
    phrases = ["large", "chonky", "very hot", "tall"]
    assert [top[0][0] for top in half.predict(phrases)] == [top[0][0] for top in mapper.predict(phrases)]


def test_evaluate_scores_decoded_words_and_counts_unknown_golds_as_misses(saved_model):
    mapper = WordMapper.from_pretrained(saved_model)
    phrases = ["large", "fishy", "tall"]
    top = [words[0][0] for words in mapper.predict(phrases)]
    targets = [[top[0]], [top[1], "girth"], ["girth"]]  # right, right (any gold), a word the model lacks
    metrics = mapper.evaluate(phrases, targets, k=2)
    assert metrics["accuracy"] == pytest.approx(2 / 3) and metrics["coverage"] == 1.0
    assert set(metrics) == {"accuracy", "accuracy_at_2", "macro_f1", "ece", "coverage", "median_rank"}
    assert mapper.evaluate(phrases, targets, min_score=1.0)["coverage"] == 0.0


def test_evaluate_ranks_each_gold_among_all_words_at_any_cut_offs(saved_model):
    mapper = WordMapper.from_pretrained(saved_model)
    phrases = ["large", "fishy", "tall"]
    order = [[word for word, _ in words] for words in mapper.predict(phrases, top_k=3, min_score=0.0)]
    targets = [[order[0][0]], [order[1][2]], ["girth"]]  # rank 1, rank 3, not an output word (rank 3 + 1)
    metrics = mapper.evaluate(phrases, targets, k=[1, 2, 3])
    assert (metrics["accuracy_at_1"], metrics["accuracy_at_2"], metrics["accuracy_at_3"]) == (1 / 3, 1 / 3, 2 / 3)
    assert metrics["median_rank"] == 3.0
    assert mapper.rank(phrases, k=1, golds=[[0, 1, 2], [], [1]]).gold_ranks[:2] == [1, 4]


def test_evaluate_normalises_gold_words_and_takes_a_bare_string_as_one_gold(saved_model):
    mapper = WordMapper.from_pretrained(saved_model)
    phrases = ["large", "fishy"]
    top = [words[0][0] for words in mapper.predict(phrases)]
    expected = mapper.evaluate(phrases, [[word] for word in top])
    assert expected["accuracy"] == 1.0
    assert mapper.evaluate(phrases, top) == expected  # one string per phrase
    assert mapper.evaluate(phrases, [[f" {word.upper()} "] for word in top]) == expected  # as training writes them
    with pytest.raises(ValueError, match="2 phrases but a single string"):
        mapper.evaluate(phrases, "size")
    with pytest.raises(ValueError, match="2 phrases but 1 targets"):
        mapper.evaluate(phrases, [["size"]])


@pytest.mark.parametrize(("call", "message"), [
    (lambda m: m.predict(["big"], batch_size=-1), "batch_size must be an integer >= 1, got -1"),
    (lambda m: m.predict(["big"], batch_size=0), "batch_size must be an integer >= 1, got 0"),
    (lambda m: m.predict(["big"], top_k=1.5), "top_k must be an integer >= 1, got 1.5"),
    (lambda m: m.predict(["big"], top_k=True), "top_k must be an integer >= 1, got True"),
    (lambda m: m.evaluate(["big"], ["size"], k=0), "k must be an integer >= 1, got 0"),
    (lambda m: m.evaluate(["big"], ["size"], k=[1, 2.5]), "k must be an integer >= 1, got 2.5"),
    (lambda m: m.embed(["big"], batch_size=-5), "batch_size must be an integer >= 1, got -5"),
])
def test_sizes_and_counts_are_checked_where_they_enter(saved_model, call, message):
    with pytest.raises(ValueError, match=message):
        call(WordMapper.from_pretrained(saved_model))


def test_add_labels_refuses_a_bare_string(saved_model):
    mapper = WordMapper.from_pretrained(saved_model)
    with pytest.raises(TypeError, match=r"add_labels takes a list of words, got the string 'abc'; pass \['abc'\]"):
        mapper.add_labels("abc")
    assert mapper.words == ["height", "size", "smell"]


def test_explain_gives_predicts_words_and_scores_with_their_sources(saved_model):
    mapper = WordMapper.from_pretrained(saved_model)
    mapper.memorize(["large", "fishy"], ["size", "smell"], weight=0.4)
    phrases = ["large", "very large", "tall", "hot"]
    explained = mapper.explain(phrases, top_k=2, neighbors=2)
    for why, top in zip(explained, mapper.predict(phrases, top_k=2)):
        assert [(w["word"], w["score"]) for w in why["words"]] == top and not why["abstained"]
        for word in why["words"]:
            assert word["classifier"] + word["memory"] == pytest.approx(word["score"], abs=1e-6)
    large, very_large = explained[:2]
    assert large["stored"] and [w["word"] for w in large["words"]] == ["size"] and large["words"][0]["memory"] == 0
    assert not very_large["stored"] and very_large["words"][0]["memory"] > 0
    assert [n["phrase"] for n in very_large["neighbors"]][:1] == ["large"]
    assert very_large["neighbors"][0]["words"] == ["size"] and 0 < very_large["neighbors"][0]["similarity"] <= 1
    assert mapper.explain("large", neighbors=1)["stored"] is True


def test_explain_names_an_abstention_and_keeps_its_candidates(saved_model):
    mapper = WordMapper.from_pretrained(saved_model)
    why = mapper.explain("tall", top_k=3, min_score=1.0)
    assert why["abstained"] and len(why["words"]) == 3 and mapper.predict("tall", min_score=1.0) == []
    assert why["neighbors"] == [] and not why["stored"]  # a model without a memory


def test_a_correction_is_answered_at_once_and_after_a_reload(saved_model, tmp_path):
    mapper = WordMapper.from_pretrained(saved_model)
    assert mapper.decoding.config.memory_weight == 0.0  # corrections need no memory weight
    mapper.correct("Very Fishy", "size")
    assert mapper.predict("very fishy") == [("size", 1.0)]
    assert (saved_model / "corrections.tsv").read_text() == "phrase\ttarget\nvery fishy\tsize\n"
    assert WordMapper.from_pretrained(saved_model).predict("very fishy") == [("size", 1.0)]  # saved in the model
    mapper.save_pretrained(tmp_path / "saved")
    assert WordMapper.from_pretrained(tmp_path / "saved").predict("very fishy") == [("size", 1.0)]
    assert (tmp_path / "saved" / "corrections.tsv").read_text() == "phrase\ttarget\nvery fishy\tsize\n"


def test_a_correction_to_an_unknown_word_is_refused_unless_adding_it_is_asked(saved_model):
    mapper = WordMapper.from_pretrained(saved_model)
    with pytest.raises(ValueError, match="'flavour' is not an output word of this model; .* add_word=True"):
        mapper.correct("fishy", "flavour")
    assert "flavour" not in mapper.words and not (saved_model / "corrections.tsv").exists()
    mapper.correct("fishy", "Flavour", add_word=True)
    assert mapper.words[-1] == "flavour" and mapper.predict("fishy") == [("flavour", 1.0)]
    assert WordMapper.from_pretrained(saved_model).predict("fishy") == [("flavour", 1.0)]
