"""Data pipeline: reading, validation errors, grouping, phrase-disjoint splits, augmentation, collation."""

import json
import random

import pytest
import torch
from conftest import PAIRS, write_pairs
from datasets import Dataset

from hf_bertmap.arguments import DataArguments
from hf_bertmap.augmentation import MODIFIERS, SLANG_MODIFIERS, augment, comparative, misspell, respell
from hf_bertmap.configuration_bertmap import normalize_phrase
from hf_bertmap.data import (
    BUILTIN_DATA,
    WordMappingCollator,
    check_vocab_targets,
    encode_labels,
    group_by_phrase,
    label_list_for,
    load_informal_eval,
    load_splits,
    preprocess_splits,
    split_by_links,
    split_by_phrase,
    tokenize_splits,
    validate_pairs,
)
from hf_bertmap.pair_files import DataValidationError, read_label_file, read_pair_file


def test_normalize_phrase_collapses_whitespace_underscores_and_case():
    assert normalize_phrase("  Very   Chonky\t") == "very chonky"
    assert normalize_phrase("olfactory_property") == "olfactory property"
    assert normalize_phrase("Size", lowercase=False) == "Size"


def test_builtin_wordnet_file_has_the_documented_counts():
    dataset = read_pair_file(str(BUILTIN_DATA))
    assert dataset.column_names == ["phrase", "target", "synset", "source", "category", "links"]
    assert len(dataset) == 21696
    sources = list(dataset["source"])
    assert tuple(map(sources.count, ("everyday", "direct", "satellite", "derivation", "gloss"))) == (
        14547, 256, 4119, 2539, 235)
    assert len(set(dataset["phrase"])) == 20577
    assert len(set(dataset["synset"])) == 318 and len(set(dataset["target"])) == 285


def test_builtin_targets_are_everyday_words():
    rows = set(zip(*(read_pair_file(str(BUILTIN_DATA))[c] for c in ("phrase", "target"))))
    everyday = {("large", "size"), ("hot", "temperature"), ("scentless", "smell"), ("valuable", "value"),
                ("expensive", "price"), ("smelly", "smell"), ("crimson", "color"), ("salty", "taste"),
                ("fat", "weight")}
    assert everyday <= rows
    wordnet_lemmas = {"odor", "hue", "worthiness", "taste property", "body weight", "olfactory property",
                      "financial condition", "emotionalism"}
    assert not {target for _, target in rows} & wordnet_lemmas


def test_the_everyday_table_replaces_wordnet_pairs_of_its_adjectives():
    data = read_pair_file(str(BUILTIN_DATA))
    words = {}
    for phrase, target, source in zip(data["phrase"], data["target"], data["source"]):
        words.setdefault(phrase, set()).add((target, source))
    assert words["chunky"] == {("size", "everyday"), ("thickness", "everyday")}  # WordNet says height
    assert words["rotten"] == {("freshness", "everyday")}  # WordNet's satellite link says quality
    assert words["scentless"] == {("smell", "satellite")}  # not in the table: WordNet's


def test_every_label_override_gives_its_reason_and_merges_are_listed():
    labels = read_pair_file(str(BUILTIN_DATA.with_name("wordnet_labels.tsv")))
    by_synset = dict(zip(labels["synset"], zip(labels["word"], labels["rule"], labels["reason"])))
    assert by_synset["hue.n.01"][:2] == ("color", "override") and by_synset["color.n.01"][0] == "color"
    assert by_synset["olfactory_property.n.01"] == ("smell", "frequency", None)
    assert all(reason for _, rule, reason in by_synset.values() if rule == "override")


def test_informal_eval_set_is_hand_written_held_apart_and_uses_builtin_words():
    informal = load_informal_eval()
    assert len(informal) >= 150 and len(set(informal["phrase"])) == len(informal)
    assert set(informal["category"]) == {"slang", "intensifier", "hedge", "negation", "misspelling", "multiword"}
    builtin = read_pair_file(str(BUILTIN_DATA))
    assert {w for words in informal["targets"] for w in words} <= set(builtin["target"])
    assert not set(informal["phrase"]) & set(builtin["phrase"])  # never in the training data
    row = informal[list(informal["phrase"]).index("very chonky")]
    assert row["category"] == "slang" and "size" in row["targets"]


def test_builtin_splits_are_phrase_disjoint_deterministic_and_seeded():
    splits = load_splits(DataArguments())
    assert list(splits) == ["train", "validation", "test", "test_everyday"]
    phrases = {split: set(ds["phrase"]) for split, ds in splits.items()}
    for a, b in [("train", "validation"), ("train", "test"), ("train", "test_everyday"), ("validation", "test"),
                 ("validation", "test_everyday"), ("test", "test_everyday")]:
        assert not phrases[a] & phrases[b], (a, b)
    assert sum(len(p) for p in phrases.values()) == 20577
    assert 0.17 < (len(phrases["test"]) + len(phrases["test_everyday"])) / 20577 < 0.21
    assert 0.09 < len(phrases["validation"]) / 20577 < 0.12
    again = load_splits(DataArguments())
    assert list(again["test"]["phrase"]) == list(splits["test"]["phrase"])
    other_seed = load_splits(DataArguments(), seed=7)
    assert set(other_seed["test"]["phrase"]) != phrases["test"]
    split_of_thin = next(s for s, p in phrases.items() if "thin" in p)
    row = splits[split_of_thin][list(splits[split_of_thin]["phrase"]).index("thin")]
    assert set(row["targets"]) == {"thickness", "weight"}


def test_no_builtin_test_phrase_shares_a_head_word_or_synset_with_a_training_phrase():
    data = read_pair_file(str(BUILTIN_DATA), ("phrase", "links", "source"))
    links = {phrase: set((row or "").split()) for phrase, row in zip(data["phrase"], data["links"])}
    everyday = {phrase for phrase, source in zip(data["phrase"], data["source"]) if source == "everyday"}
    splits = load_splits(DataArguments())
    in_training = set().union(*(links[phrase] for phrase in splits["train"]["phrase"]))
    for split in ("test", "test_everyday"):
        assert not any(links[phrase] & in_training for phrase in splits[split]["phrase"]), split
    assert not set(splits["test"]["phrase"]) & everyday and set(splits["test_everyday"]["phrase"]) <= everyday
    # "big" and "very big" share a link; so do "big" and its WordNet synonym "large".
    assert links["big"] & links["very big"] and links["big"] & links["large"]


def test_split_by_links_takes_a_test_phrase_only_when_few_linked_phrases_leave_training():
    data = Dataset.from_dict({
        "phrase": ["big", "very big", "bigger", "large", "huge", "chonk", "pongy", "an arm and a leg"],
        "targets": [["size"]] * 5 + [["size"], ["smell"], ["price"]],
        "links": ["1 2", "1", "1", "2", "", "", "", ""],
        "source": ["direct", "everyday", "everyday", "direct", "satellite", "everyday", "everyday", "everyday"],
    })
    for seed in range(20):
        splits = split_by_links(data, 0, 50, seed, max_displaced=1)
        in_training = {link for row in splits["train"]["links"] for link in row.split()}
        for split in ("test", "test_everyday"):
            assert not any(set(row.split()) & in_training for row in splits[split]["links"]), (seed, split)
        # "big" links to three phrases: more than one would leave training, so it is never a test phrase.
        assert "big" not in splits["test"]["phrase"]
        assert set(splits["test_everyday"]["source"]) <= {"everyday"} and "everyday" not in splits["test"]["source"]
        assert sorted(sum((list(splits[s]["phrase"]) for s in splits), [])) == sorted(data["phrase"])


def test_files_are_grouped_by_phrase_keeping_every_gold(pair_files):
    splits = load_splits(DataArguments(train_file=str(pair_files["train"]),
                                       validation_file=str(pair_files["validation"]),
                                       test_file=str(pair_files["test"])))
    train = dict(zip(splits["train"]["phrase"], splits["train"]["targets"]))
    assert train["high"] == ["height", "pitch"]
    assert len(splits["test"]) == len({p for i, (p, _) in enumerate(PAIRS) if i % 5 == 0 and p != "high"})


def test_missing_splits_are_carved_from_train_by_phrase(pair_files):
    splits = load_splits(DataArguments(train_file=str(pair_files["train"]), validation_split_percentage=20,
                                       test_split_percentage=20))
    assert all(len(splits[s]) > 0 for s in ("train", "validation", "test"))
    assert not set(splits["train"]["phrase"]) & set(splits["test"]["phrase"])


def test_tsv_jsonl_and_custom_column_names(tmp_path):
    tsv = write_pairs(tmp_path / "pairs.tsv", [("Large", "Size"), ("hot", "temperature")], header=("adj", "word"))
    splits = load_splits(DataArguments(train_file=str(tsv), phrase_column="adj", target_column="word",
                                       validation_split_percentage=0, test_split_percentage=0))
    assert list(splits["train"]["phrase"]) == ["large", "hot"]
    assert list(splits["train"]["targets"]) == [["size"], ["temperature"]]
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text('{"phrase": "fishy", "target": "smell"}\n{"phrase": "big", "target": "size"}\n')
    splits = load_splits(DataArguments(train_file=str(jsonl), validation_split_percentage=0, test_split_percentage=0))
    assert sorted(splits["train"]["phrase"]) == ["big", "fishy"]


def test_quoted_commas_and_tabs_survive_csv(tmp_path):
    path = write_pairs(tmp_path / "q.csv", [("big, really\tbig", "size")])
    assert list(read_pair_file(str(path))["phrase"]) == ["big, really\tbig"]


def test_mixed_case_targets_are_one_label(tmp_path):
    path = write_pairs(tmp_path / "m.csv", [("big", "Size"), ("huge", "size"), ("small", "SIZE")])
    splits = load_splits(DataArguments(train_file=str(path), validation_split_percentage=0, test_split_percentage=0))
    assert label_list_for("labels", splits["train"], tokenizer=None) == ["size"]


def test_missing_column_names_the_file_and_its_columns(tmp_path):
    path = write_pairs(tmp_path / "bad.csv", [("big", "size")], header=("adjective", "target"))
    with pytest.raises(DataValidationError, match=r"bad.csv: no column 'phrase'; the columns are \['adjective', "
                                                  r"'target'\]"):
        load_splits(DataArguments(train_file=str(path)))


@pytest.mark.parametrize(("rows", "message"), [
    ([("big", "size"), ("", "size")], r"row 2: empty phrase \(column 'phrase'\)"),
    ([("big", "size"), ("   ", "size")], r"row 2: empty phrase"),
    ([("big", "size"), ("hot", "temperature"), ("cold", "")], r"row 3: empty target \(column 'target'\)"),
])
def test_empty_cells_name_the_file_and_row(tmp_path, rows, message):
    path = write_pairs(tmp_path / "rows.csv", rows)
    with pytest.raises(DataValidationError, match=rf"rows.csv, {message}"):
        load_splits(DataArguments(train_file=str(path)))


def test_empty_file_and_header_only_file_are_refused(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataValidationError, match="empty.csv: the file is empty"):
        read_pair_file(str(empty))
    header = write_pairs(tmp_path / "header.csv", [])
    with pytest.raises(DataValidationError, match=r"header.csv: no rows \(a header alone is not data\)"):
        read_pair_file(str(header))


def test_non_utf8_file_names_the_byte_offset(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("phrase,target\ncaf\xe9,taste\n".encode("latin-1"))
    with pytest.raises(DataValidationError, match=r"latin1.csv: not UTF-8 text: byte 0xe9 at byte offset 17"):
        read_pair_file(str(path))


def test_bad_file_arguments_are_refused_when_parsed(tmp_path):
    with pytest.raises(FileNotFoundError, match="--train_file: no such file"):
        DataArguments(train_file=str(tmp_path / "nope.csv"))
    other = tmp_path / "pairs.xlsx"
    other.write_text("x")
    with pytest.raises(ValueError, match="must be a .csv, .tsv, .json or .jsonl file"):
        DataArguments(train_file=str(other))


def test_augmentation_adds_modified_copies_with_the_same_targets(pair_files):
    train = load_splits(DataArguments(train_file=str(pair_files["train"]), validation_split_percentage=0,
                                      test_split_percentage=0))["train"]
    augmented = augment(train, copies=2, seed=0)
    assert len(augmented) == 3 * len(train)
    originals = dict(zip(train["phrase"], train["targets"]))
    prefixes = {template.format("") for template in MODIFIERS}
    for phrase, targets in zip(augmented["phrase"][len(train):], augmented["targets"][len(train):]):
        base = next(p for p in originals if phrase.endswith(" " + p))
        assert phrase[: -len(base)] in prefixes and targets == originals[base]
    assert list(augment(train, copies=2, seed=0)["phrase"]) == list(augmented["phrase"])
    assert augment(train, copies=0, seed=0) is train


@pytest.mark.parametrize("word, expected", [("big", "bigger"), ("smelly", "smellier"), ("large", "larger"),
                                            ("hot", "hotter"), ("cheap", "cheaper"), ("expensive", None),
                                            ("very big", None)])
def test_comparatives_of_short_adjectives(word, expected):
    assert comparative(word) == expected


def test_misspelling_changes_one_letter_of_the_longest_word_and_keeps_its_first():
    rng = random.Random(0)
    for _ in range(50):
        typo = misspell("very enormous", rng)
        assert typo != "very enormous" and typo.startswith("very e")
        assert abs(len(typo) - len("very enormous")) <= 1
    assert misspell("red", rng) is None


def test_respelling_stretches_shortens_or_reends_the_longest_word_as_people_do():
    rng = random.Random(0)
    seen = {respell("very comfortable", rng) for _ in range(200)}
    assert all(phrase.startswith("very ") for phrase in seen) and "very comfortable" not in seen
    words = {phrase.split(" ")[1] for phrase in seen}
    assert "cmfrtble" in words  # inner vowels dropped
    assert any("ooo" in word or "aaa" in word for word in words)  # a vowel stretched
    assert "comfy" in words and "comfortablo" in words  # clipped or whole, with a slang ending
    assert respell("ok", rng) is None


def test_slang_copies_carry_an_informal_intensifier_and_leave_the_other_copies_as_they_were():
    train = Dataset.from_dict({"phrase": ["big", "heavy", "an animal that barks at strangers in the night"],
                               "targets": [["size"], ["weight"], ["dog"]]})
    plain = augment(train, copies=1, seed=0, misspellings=1.0)
    informal = augment(train, copies=1, seed=0, misspellings=1.0, respellings=1.0, slang=1.0)
    assert list(informal["phrase"][: len(plain)]) == list(plain["phrase"])
    added = dict(zip(informal["phrase"][len(plain):], informal["targets"][len(plain):]))
    assert len(added) == 4  # a re-spelt and a slang copy of each short phrase; none of the definition
    templates = [template.split("{}") for template in SLANG_MODIFIERS]
    slang = [p for p in added if any(p.startswith(a) and p.endswith(b) and p != a + b for a, b in templates)]
    assert len(slang) == 2 and all(added[p] == (["size"] if "b" in p.replace("barks", "") else ["weight"])
                                   for p in slang)


def test_augmentation_never_writes_a_held_out_phrase():
    train = Dataset.from_dict({"phrase": ["big", "heavy"] * 1, "targets": [["size"], ["weight"]]})
    everything = augment(train, copies=len(MODIFIERS), seed=0, misspellings=1.0, comparatives=True,
                         respellings=1.0, slang=1.0)
    assert "bigger" in everything["phrase"] and "very big" in everything["phrase"]
    informal = list(everything["phrase"])[-2:]  # the last re-spelt and slang copies
    held_out = frozenset({"bigger", "very big", "heavier", *informal})
    guarded = augment(train, copies=len(MODIFIERS), seed=0, misspellings=1.0, comparatives=True, held_out=held_out,
                      respellings=1.0, slang=1.0)
    assert not held_out & set(guarded["phrase"])
    assert set(guarded["phrase"]) == set(everything["phrase"]) - held_out


def test_labels_are_sorted_training_targets_and_unknown_golds_are_dropped(pair_files):
    splits = load_splits(DataArguments(train_file=str(pair_files["train"]), validation_file=str(
        pair_files["validation"]), test_file=str(pair_files["test"])))
    splits["test"] = group_by_phrase(
        write_and_read([("loud", "loudness"), ("big", "size")], pair_files["test"].parent), "phrase", "target", True)
    labels = label_list_for("labels", splits["train"], tokenizer=None)
    assert labels == sorted(labels) and "size" in labels and "loudness" not in labels
    encoded = encode_labels(splits, labels)
    assert list(encoded["test"]["labels"]) == [[], [labels.index("size")]]
    assert encoded["train"].features["labels"].feature.names == labels


def write_and_read(rows, folder):
    return read_pair_file(str(write_pairs(folder / "extra.csv", rows)))


def test_vocab_head_targets_must_be_single_tokens(tokenizer, tmp_path):
    path = write_pairs(tmp_path / "v.csv", [("big", "size"), ("hot", "taste property"), ("cold", "warmth")])
    splits = load_splits(DataArguments(train_file=str(path), validation_split_percentage=0, test_split_percentage=0))
    with pytest.raises(DataValidationError, match=r"2 target\(s\) are not: 'taste property', 'warmth'"):
        check_vocab_targets(splits, tokenizer)


def test_validate_pairs_accepts_good_rows(pair_files):
    validate_pairs(read_pair_file(str(pair_files["train"])), "train.csv", "phrase", "target")


def test_split_by_phrase_keeps_every_row_once():
    from datasets import Dataset

    data = Dataset.from_dict({"phrase": [f"p{i}" for i in range(200)], "targets": [["x"]] * 200})
    splits = split_by_phrase(data, 10, 20, seed=1)
    assert sorted(sum((list(splits[s]["phrase"]) for s in splits), [])) == sorted(data["phrase"])
    assert 20 < len(splits["test"]) < 60


def test_tokenised_batches_are_padded_dynamically_with_gold_padding(pair_files, tokenizer):
    splits = load_splits(DataArguments(train_file=str(pair_files["train"]), validation_split_percentage=0,
                                       test_split_percentage=0))
    labels = label_list_for("labels", splits["train"], tokenizer)
    tokenized = tokenize_splits(encode_labels(splits, labels), tokenizer, max_seq_length=8)
    rows = [tokenized["train"][i] for i in range(len(tokenized["train"]))]
    high = next(r for r in rows if r["phrase"] == "high")
    big = next(r for r in rows if r["phrase"] == "big")
    batch = WordMappingCollator(tokenizer)([dict(big), dict(high)])
    assert batch["input_ids"].shape == (2, 3)  # [CLS] word [SEP]: padded to the longest row only
    assert batch["labels"].tolist() == [[labels.index("size"), -100], [labels.index("height"), labels.index("pitch")]]
    long = tokenizer("very " * 50, truncation=True, max_length=8)
    assert len(long["input_ids"]) == 8
    assert isinstance(batch["attention_mask"], torch.Tensor)


def test_no_evaluation_phrase_reaches_the_training_data(tokenizer, tmp_path):
    """The informal set and the task's examples WordNet does not link stay out of training (augmented rows
    included), so out of the memory too, which stores training phrases."""
    data_args = DataArguments(misspellings=1.0, augment_copies=1)
    splits = load_splits(data_args)
    labels = label_list_for("labels", splits["train"], None)
    tokenized = preprocess_splits(splits, labels, tokenizer, data_args, seed=42, cache_root=tmp_path)
    evaluation = set(load_informal_eval()["phrase"]) | {"fishy", "chonky", "very chonky"}
    assert not evaluation & set(tokenized["train"]["phrase"])
    assert len(tokenized["train"]) > 2 * len(splits["train"])  # modifier, comparative and misspelt copies


@pytest.mark.parametrize("extension", [".csv", ".tsv", ".jsonl"])
def test_every_cell_is_text_even_words_pandas_reads_as_missing(tmp_path, extension):
    words = ["null", "NA", "nan", "None", "N/A", "NULL"]
    rows = [(word, target) for word, target in zip(words, reversed(words))]
    path = tmp_path / f"pairs{extension}"
    if extension == ".jsonl":
        path.write_text("".join(json.dumps({"phrase": p, "target": t}) + "\n" for p, t in rows))
    else:
        write_pairs(path, rows) if extension == ".csv" else path.write_text(
            "phrase\ttarget\n" + "".join(f"{p}\t{t}\n" for p, t in rows))
    splits = load_splits(DataArguments(train_file=str(path), validation_split_percentage=0, test_split_percentage=0,
                                       lowercase=False))
    assert dict(zip(splits["train"]["phrase"], splits["train"]["targets"])) == {p: [t] for p, t in rows}


def test_an_empty_cell_is_still_refused_naming_the_row(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("phrase,target\nnull,size\n,size\n")
    with pytest.raises(DataValidationError, match=r"pairs.csv, row 2: empty phrase \(column 'phrase'\)"):
        load_splits(DataArguments(train_file=str(path)))


def test_a_test_file_alone_gives_empty_training_and_validation_splits(pair_files):
    splits = load_splits(DataArguments(test_file=str(pair_files["test"])))
    assert len(splits["train"]) == len(splits["validation"]) == 0
    assert len(splits["test"]) == len(pair_files["test"].read_text().splitlines()) - 1


def test_a_label_file_adds_output_words_that_have_no_training_phrase(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("Girth\n\nsize\nheight\n")
    assert read_label_file(str(words)) == ["girth", "size", "height"]
    train = Dataset.from_dict({"phrase": ["large"], "targets": [["size"]]})
    assert label_list_for("labels", train, None, read_label_file(str(words))) == ["girth", "height", "size"]


def test_an_empty_label_file_is_refused_naming_it(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("\n  \n")
    with pytest.raises(DataValidationError, match=r"words.txt: no words \(one output word per line\)"):
        read_label_file(str(words))


def test_a_row_with_more_or_fewer_fields_than_the_header_is_refused_with_its_line(tmp_path):
    path = tmp_path / "shifted.csv"
    path.write_text("phrase,target\nbig,size\nlarge,size,x\n")
    with pytest.raises(DataValidationError, match=r"shifted.csv, line 3: 3 fields, but the header has 2"):
        read_pair_file(str(path))
    path.write_text("phrase\ttarget\nbig\tsize\n\nhot\n")
    tsv = path.rename(tmp_path / "short.tsv")
    with pytest.raises(DataValidationError, match=r"short.tsv, line 4: 1 fields, but the header has 2"):
        read_pair_file(str(tsv))


@pytest.mark.parametrize("extension", [".csv", ".tsv"])
@pytest.mark.parametrize("rows", [[("1", "007"), ("2", "010"), ("3", "1e3")],  # columns of numbers
                                  [("true", "False"), ("false", "TRUE")]])  # and of booleans
def test_cells_that_look_like_numbers_or_booleans_stay_text(tmp_path, extension, rows):
    separator = "\t" if extension == ".tsv" else ","
    path = tmp_path / f"types{extension}"
    path.write_text("".join(separator.join(row) + "\n" for row in [("phrase", "target"), *rows]))
    data = read_pair_file(str(path))
    assert list(zip(data["phrase"], data["target"])) == rows


@pytest.mark.parametrize(("content", "message"), [
    ('[\n  {"phrase": "big", "target": "size"},\n  {"phrase": {"a": "big"}, "target": "size"}\n]',
     r"nested.json, line 3, field 'phrase': \{\"a\": \"big\"\} is not text"),
    ('{"phrase": "big", "target": "size"}\n{"phrase": "hot", "target": 7}\n',
     r"nested.json, line 2, field 'target': 7 is not text"),
    ('[{"phrase": "big", "target": ["size"]}]', r"nested.json, line 1, field 'target': \[\"size\"\] is not text"),
    ('[{"phrase": "big", "target": "size"}, "hot"]', r"nested.json, line 1: expected an object of fields"),
    ('[{"phrase": "big", "target": "size"},\n{"phrase": "hot" "target": "x"}]', r"nested.json, line 2: not valid JSON"),
])
def test_json_values_that_are_not_strings_are_refused_with_line_and_field(tmp_path, content, message):
    path = tmp_path / "nested.json"
    path.write_text(content)
    with pytest.raises(DataValidationError, match=message):
        read_pair_file(str(path), ("phrase", "target"))


def test_json_columns_lines_and_arrays_read_as_the_same_rows(tmp_path):
    rows = [{"phrase": "big", "target": "size"}, {"phrase": "hot", "target": "temperature"}]
    forms = {
        "columns.json": json.dumps({"phrase": ["big", "hot"], "target": ["size", "temperature"]}),
        "array.json": json.dumps(rows, indent=2),
        "lines.json": "".join(json.dumps(row) + "\n" for row in rows),
        "lines.jsonl": "".join(json.dumps(dict(row, id=i)) + "\n" for i, row in enumerate(rows)),  # an unused number
    }
    for name, text in forms.items():
        (tmp_path / name).write_text(text)
        assert read_pair_file(str(tmp_path / name), ("phrase", "target")).to_list() == rows, name
    (tmp_path / "ragged.json").write_text(json.dumps({"phrase": ["big", "hot"], "target": ["size"]}))
    with pytest.raises(DataValidationError, match=r"ragged.json: columns of different lengths"):
        read_pair_file(str(tmp_path / "ragged.json"))


def test_a_byte_order_mark_is_not_part_of_the_first_cell_or_a_phrase(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("phrase,target\nlarge,size\n".encode("utf-8-sig"))
    assert read_pair_file(str(path)).to_list() == [{"phrase": "large", "target": "size"}]
    words = tmp_path / "words.txt"
    words.write_bytes("girth\n".encode("utf-8-sig"))
    assert read_label_file(str(words)) == ["girth"]
    assert normalize_phrase("\ufeffVery large") == "very large"
