"""Load, validate, split, augment, encode and tokenise (phrase, target word) pairs with `datasets`.

Every phrase ends up as one row `{"phrase": str, "targets": list[str]}`: a phrase with several correct words
(`high -> height | level | pitch`) keeps them all. Training spreads the loss evenly over them; evaluation counts a
prediction as correct when it is any of them.
"""

import csv
import hashlib
import io
import json
import logging
import os
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, load_dataset, load_from_disk
from datasets import Sequence as SequenceFeature
from datasets.fingerprint import Hasher
from transformers import PreTrainedTokenizerBase

from .configuration_bertmap import normalize_phrase
from .decoding_bertmap import pad_golds
from .metrics import gold_lists

logger = logging.getLogger(__name__)

BUILTIN_DATA = Path(__file__).parent / "resources" / "wordnet_attributes.tsv"
# Hand-written informal phrases (slang, intensifiers, hedges, negation, misspellings, multi-word) with gold words
# from the built-in label set: for evaluation only, never trained on.
INFORMAL_EVAL_DATA = Path(__file__).parent / "resources" / "informal_eval.tsv"
# The built-in output words' WordNet definitions (`--label_descriptions wordnet`), from the attribute synsets.
WORDNET_GLOSSES = Path(__file__).parent / "resources" / "wordnet_glosses.tsv"
SPLITS = ("train", "validation", "test")
CACHE_VERSION = 3  # bump when preprocessing changes

# Modifiers for training-time augmentation. Negation and hedges keep the attribute: "not very warm" is still
# about temperature.
MODIFIERS = (
    "very {}", "extremely {}", "really {}", "quite {}", "rather {}", "pretty {}", "fairly {}", "super {}",
    "incredibly {}", "so {}", "too {}", "kind of {}", "sort of {}", "somewhat {}", "slightly {}", "a bit {}",
    "a little {}", "barely {}", "not {}", "not very {}", "not at all {}", "hardly {}", "more {}", "less {}",
)


MISSPELT_MAX_WORDS = 5  # longer phrases (definitions) get no misspelt copy or re-spelt copy
# Intensifiers and hedges of informal writing (`--slang`): "X af", "hella X", "lowkey X".
SLANG_MODIFIERS = (
    "{} af", "hella {}", "lowkey {}", "mega {}", "totally {}", "kinda {}", "sorta {}", "mad {}", "crazy {}",
    "real {}", "{} as heck", "{} as hell", "super duper {}", "soooo {}", "v {}", "def {}", "lowkey kinda {}",
)
# Endings people put on a clipped or whole word (`comfy`, `cutie`, `weirdo`, `preggers`).
SLANG_ENDINGS = ("y", "ie", "o", "ers")
VOWELS = "aeiou"


class DataValidationError(ValueError):
    """A data file or row that cannot be used; the message names the file, row and field."""


def _stable_fraction(key: str, seed: int) -> float:
    """A number in [0, 1) fixed by `key` and `seed`, the same on every machine and Python run."""
    digest = hashlib.sha1(f"{seed}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _read_utf8(path: str) -> str:
    """The file's text; a UTF-8 byte order mark is dropped, other undecodable bytes are named by offset."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        raise DataValidationError(
            f"{path}: not UTF-8 text: byte 0x{raw[err.start]:02x} at byte offset {err.start} cannot be decoded"
        ) from None


def read_pair_file(path: str, columns: Sequence[str] | None = None,
                   hint: str = "choose with --phrase_column/--target_column") -> Dataset:
    """Read a .csv/.tsv/.json/.jsonl file of pairs as text: every cell a string (no number, date or boolean
    guessing), an empty cell or a JSON `null` missing (`None`).

    CSV/TSV: the first row is the header and every row has as many fields as it (else refused with the line
    number). JSON: an array of objects, JSON Lines (one object per line, in a .json file too), or one object of
    equally long columns; a value that is not a string or null is refused with its line and field. `columns`, if
    given, are the only fields read (the others are ignored); a missing one is refused, naming the file's (and
    `hint`: how to choose others).
    """
    text = _read_utf8(path)
    if not text.strip():
        raise DataValidationError(f"{path}: the file is empty")
    extension = os.path.splitext(path)[1].lower()
    if extension in (".csv", ".tsv"):
        header, rows = _csv_rows(text, path, "\t" if extension == ".tsv" else ",")
    else:
        header, rows = _json_rows(text, path, columns)
    if not rows:
        raise DataValidationError(f"{path}: no rows" + (" (a header alone is not data)" if header else ""))
    wanted = list(header) if columns is None else list(dict.fromkeys(columns))
    for column in wanted:
        if column not in header:
            raise DataValidationError(f"{path}: no column {column!r}; the columns are {list(header)} ({hint})")
    data = {column: [row.get(column) for row in rows] for column in wanted}
    return Dataset.from_dict(data, features=Features({column: Value("string") for column in wanted}))


def _csv_rows(text: str, path: str, delimiter: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header, rows = None, []
    try:
        for fields in reader:
            if not fields:  # a blank line
                continue
            if header is None:
                header = fields
                twice = sorted({name for name in header if header.count(name) > 1})
                if twice:
                    raise DataValidationError(f"{path}, line {reader.line_num}: the header names column(s) {twice} "
                                              "more than once")
                continue
            if len(fields) != len(header):
                raise DataValidationError(
                    f"{path}, line {reader.line_num}: {len(fields)} fields, but the header has {len(header)} "
                    f"({delimiter!r}-separated: {header}); quote a field that holds {delimiter!r}")
            rows.append({name: value if value != "" else None for name, value in zip(header, fields)})
    except csv.Error as err:
        raise DataValidationError(f"{path}, line {reader.line_num}: cannot be read as CSV ({err})") from None
    return header or [], rows


def _json_rows(text: str, path: str,
               columns: Sequence[str] | None) -> tuple[list[str], list[dict[str, str | None]]]:
    records = _json_records(text, path)
    header: dict[str, None] = {}
    rows = []
    for where, record in records:
        if not isinstance(record, dict):
            raise DataValidationError(f"{path}, {where}: expected an object of fields, got {json.dumps(record)[:80]}")
        for key, value in record.items():
            if (columns is None or key in columns) and value is not None and not isinstance(value, str):
                raise DataValidationError(f"{path}, {where}, field {key!r}: {json.dumps(value)[:80]} is not text "
                                          "(every value must be a JSON string, or null for a missing one)")
            header.setdefault(key)
        rows.append(record)
    return list(header), rows


def _json_records(text: str, path: str) -> list[tuple[str, object]]:
    """(where, value) of each record: `line N` in an array or JSON Lines, `row N` in an object of columns."""
    stripped = text.lstrip()
    decoder = json.JSONDecoder()
    try:
        if stripped.startswith("["):
            return _json_array(text, decoder)
        try:
            whole = json.loads(text)
        except json.JSONDecodeError as err:
            if err.msg != "Extra data":
                raise
        else:
            if isinstance(whole, dict) and whole and all(isinstance(v, list) for v in whole.values()):
                lengths = {key: len(values) for key, values in whole.items()}
                if len(set(lengths.values())) > 1:
                    raise DataValidationError(f"{path}: columns of different lengths {lengths}")
                size = next(iter(lengths.values()))
                return [(f"row {i + 1}", {key: values[i] for key, values in whole.items()}) for i in range(size)]
            return [("line 1", whole)]
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append((f"line {number}", json.loads(line)))
                except json.JSONDecodeError as err:
                    raise DataValidationError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
        return records
    except json.JSONDecodeError as err:
        raise DataValidationError(f"{path}, line {err.lineno}: not valid JSON ({err.msg})") from None


def _json_array(text: str, decoder: json.JSONDecoder) -> list[tuple[str, object]]:
    """The elements of a top-level JSON array, each with the line it starts on."""
    records, line, position = [], 1, 0
    index = text.index("[") + 1

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    index = skip(index)
    if index < len(text) and text[index] == "]":
        index += 1
    else:
        while True:
            line += text.count("\n", position, index)
            position = index
            value, index = decoder.raw_decode(text, index)
            records.append((f"line {line}", value))
            index = skip(index)
            if index < len(text) and text[index] == ",":
                index = skip(index + 1)
                continue
            if index < len(text) and text[index] == "]":
                index += 1
                break
            raise json.JSONDecodeError("Expecting ',' or ']'", text, index)
    if text[index:].strip():
        raise json.JSONDecodeError("Extra data", text, skip(index))
    return records


def validate_pairs(dataset: Dataset, source: str, phrase_column: str, target_column: str) -> None:
    """Raise `DataValidationError` naming `source`, the row and the field for a missing column or empty cell."""
    for column in (phrase_column, target_column):
        if column not in dataset.column_names:
            raise DataValidationError(
                f"{source}: no column {column!r}; the columns are {dataset.column_names} "
                "(choose with --phrase_column/--target_column)"
            )
    for column, name in ((phrase_column, "phrase"), (target_column, "target")):
        for i, value in enumerate(dataset[column]):
            if value is None or not str(value).strip():
                raise DataValidationError(f"{source}, row {i + 1}: empty {name} (column {column!r})")


def group_by_phrase(dataset: Dataset, phrase_column: str, target_column: str, lowercase: bool) -> Dataset:
    """One row per distinct normalised phrase with its distinct targets in first-seen order."""
    targets: dict[str, list[str]] = {}
    for phrase, target in zip(dataset[phrase_column], dataset[target_column]):
        words = targets.setdefault(normalize_phrase(str(phrase), lowercase), [])
        target = normalize_phrase(str(target), lowercase)
        if target not in words:
            words.append(target)
    return Dataset.from_dict({"phrase": list(targets), "targets": list(targets.values())})


def split_by_phrase(dataset: Dataset, validation_percentage: int, test_percentage: int, seed: int) -> DatasetDict:
    """Split grouped rows so that no phrase is in two splits; the assignment depends only on phrase and seed."""
    fractions = [_stable_fraction(phrase, seed) for phrase in dataset["phrase"]]
    test_cut = test_percentage / 100
    validation_cut = test_cut + validation_percentage / 100
    index = {"train": [], "validation": [], "test": []}
    for i, fraction in enumerate(fractions):
        split = "test" if fraction < test_cut else "validation" if fraction < validation_cut else "train"
        index[split].append(i)
    return DatasetDict({split: dataset.select(rows) for split, rows in index.items()})


def is_builtin(data_args) -> bool:
    """Whether `data_args` name no data, so the built-in WordNet data is used."""
    files = (data_args.train_file, data_args.validation_file, data_args.test_file)
    return data_args.dataset_name is None and all(path is None for path in files)


def load_splits(data_args, cache_dir: str | None = None, seed: int = 42) -> DatasetDict:
    """Train/validation/test splits of grouped `{"phrase", "targets"}` rows, validated, before any tokenisation.

    Without files or a dataset name, the built-in WordNet adjective -> attribute data, split by adjective.
    """
    builtin = is_builtin(data_args)
    if data_args.dataset_name is not None:
        raw = load_dataset(data_args.dataset_name, data_args.dataset_config_name, cache_dir=cache_dir)
        sources = {split: f"{data_args.dataset_name}[{split}]" for split in raw}
    elif not builtin:
        files = {"train": data_args.train_file, "validation": data_args.validation_file, "test": data_args.test_file}
        columns = (data_args.phrase_column, data_args.target_column)
        raw = {split: read_pair_file(path, columns) for split, path in files.items() if path is not None}
        sources = {split: path for split, path in files.items() if path is not None}
    else:
        raw = {"train": read_pair_file(str(BUILTIN_DATA), ("phrase", "target"))}
        sources = {"train": str(BUILTIN_DATA)}
    phrase_column = "phrase" if builtin else data_args.phrase_column
    target_column = "target" if builtin else data_args.target_column

    if "train" not in raw and data_args.dataset_name is not None:
        raise DataValidationError(f"{data_args.dataset_name}: no 'train' split; it has {list(raw)}")
    grouped = {}
    for split, dataset in raw.items():
        if split not in SPLITS:
            continue
        validate_pairs(dataset, sources[split], phrase_column, target_column)
        grouped[split] = group_by_phrase(dataset, phrase_column, target_column, data_args.lowercase)
    if "train" not in grouped:  # only --validation_file/--test_file: evaluating a trained model
        grouped["train"] = group_by_phrase(Dataset.from_dict({"phrase": [], "target": []}), "phrase", "target",
                                           data_args.lowercase)

    missing = [split for split in ("validation", "test") if split not in grouped]
    if missing:
        carved = split_by_phrase(
            grouped["train"],
            data_args.validation_split_percentage if "validation" in missing else 0,
            data_args.test_split_percentage if "test" in missing else 0,
            seed,
        )
        grouped["train"] = carved["train"]
        for split in missing:
            grouped[split] = carved[split]
    splits = DatasetDict({split: grouped[split] for split in SPLITS})
    for split, limit in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples),
                         ("test", data_args.max_predict_samples)):
        if limit is not None:
            splits[split] = splits[split].select(range(min(limit, len(splits[split]))))
    return splits


def load_informal_eval(lowercase: bool = True) -> Dataset:
    """The informal evaluation set as grouped `{"phrase", "targets", "category"}` rows."""
    raw = read_pair_file(str(INFORMAL_EVAL_DATA), ("phrase", "target", "category"))
    validate_pairs(raw, str(INFORMAL_EVAL_DATA), "phrase", "target")
    grouped = group_by_phrase(raw, "phrase", "target", lowercase)
    category = {normalize_phrase(p, lowercase): c for p, c in zip(raw["phrase"], raw["category"])}
    return grouped.add_column("category", [category[p] for p in grouped["phrase"]])


def comparative(word: str) -> str | None:
    """The `-er` comparative of a short one-word adjective (`big -> bigger`, `smelly -> smellier`,
    `large -> larger`), or None for words English compares with "more" (long words, phrases, non-letters)."""
    if not word.isalpha() or not word.islower() or len(word) < 3:
        return None
    if word.endswith("y") and len(word) <= 8 and word[-2] not in "aeiou":
        return word[:-1] + "ier"
    if len(word) > 6:
        return None
    if word.endswith("e"):
        return word + "r"
    vowels = "aeiou"
    if (len(word) <= 4 and word[-1] not in vowels + "wxy" and word[-2] in vowels and word[-3] not in vowels):
        return word + word[-1] + "er"  # big -> bigger, hot -> hotter
    return word + "er"


def misspell(phrase: str, rng: random.Random) -> str | None:
    """One typo in the longest word of `phrase` (a letter dropped, doubled, swapped with the next, or a vowel
    changed), as people type them: `enormous -> enormus`, `heavy -> hevy`; None if no word has 4+ letters."""
    words = phrase.split(" ")
    i = max(range(len(words)), key=lambda j: len(words[j]))
    word = words[i]
    if len(word) < 4 or not word.isalpha():
        return None
    k = rng.randrange(1, len(word) - 1)  # keep the first letter, as typos mostly do
    edit = rng.choice(("drop", "double", "swap", "vowel"))
    if edit == "drop":
        word = word[:k] + word[k + 1:]
    elif edit == "double":
        word = word[:k] + word[k] + word[k:]
    elif edit == "swap":
        word = word[:k] + word[k + 1] + word[k] + word[k + 2:]
    else:
        vowels = [j for j in range(1, len(word)) if word[j] in "aeiou"]
        if not vowels:
            return None
        j = rng.choice(vowels)
        word = word[:j] + rng.choice([v for v in "aeiou" if v != word[j]]) + word[j + 1:]
    words[i] = word
    return " ".join(words)


def respell(phrase: str, rng: random.Random) -> str | None:
    """The longest word of `phrase` written as people stretch, shorten or re-spell it on purpose: letters
    stretched (`long -> loooong`, `big -> biiig`), inner vowels dropped (`light -> lght`), or a clipped or whole word
    with a slang ending (`comfortable -> comfy`, `weird -> weirdo`, `cute -> cutie`); None if no word has 3+
    letters."""
    words = phrase.split(" ")
    i = max(range(len(words)), key=lambda j: len(words[j]))
    word = words[i]
    if len(word) < 3 or not word.isalpha():
        return None
    edit = rng.choice(("stretch", "stretch", "drop_vowels", "ending"))
    vowels = [j for j, letter in enumerate(word) if letter in VOWELS + "y" and j > 0]
    if edit == "drop_vowels" and len(word) >= 5 and len(vowels) < len(word) - 2:
        word = word[0] + "".join(c for c in word[1:-1] if c not in VOWELS) + word[-1]
    elif edit == "ending":
        # the first syllable and the consonants after it (`comf`, `exp`), else the whole word
        start = next((j for j, c in enumerate(word) if c in VOWELS), 0)
        end = next((j for j in range(start, len(word)) if word[j] not in VOWELS), len(word))
        end = next((j for j in range(end, len(word)) if word[j] in VOWELS), len(word))
        if 3 <= end < len(word) - 1 and rng.random() < 0.5:
            word = word[:end] + rng.choice(SLANG_ENDINGS)
        else:
            word = word.rstrip("ey") + rng.choice(SLANG_ENDINGS[:3])
    else:
        j = rng.choice(vowels) if vowels else len(word) - 1
        word = word[:j] + word[j] * rng.randint(3, 5) + word[j + 1:]
    if word == words[i]:
        return None
    words[i] = word
    return " ".join(words)


def augment(dataset: Dataset, copies: int, seed: int, misspellings: float = 0.0, comparatives: bool = False,
            held_out: frozenset[str] = frozenset(), respellings: float = 0.0, slang: float = 0.0) -> Dataset:
    """Add training rows with the same targets as their source phrase:

    - `copies` per phrase with a random modifier in front ("very X", "kind of X", "not very X", ...);
    - with `comparatives`, the `-er` form of each short one-word phrase (`bigger`, `smellier`);
    - a misspelt copy of a `misspellings` share of the phrases of at most `MISSPELT_MAX_WORDS` words (`hevy`;
      one typo in a sentence-long definition leaves the same definition, and would only lengthen the epoch);
    - a re-spelt copy (`respell`: `loooong`, `lght`, `comfy`) of a `respellings` share of those phrases;
    - a copy with a slang intensifier or hedge (`SLANG_MODIFIERS`: `X af`, `hella X`, `lowkey X`) of a `slang`
      share of those phrases, its word re-spelt half the time (`hella loooong`).

    Rows equal to a phrase in `held_out` (validation, test and evaluation phrases) or already present are left
    out, so augmentation never writes an evaluation phrase into the training data.
    """
    if len(dataset) == 0 or (copies == 0 and misspellings == 0 and not comparatives and not respellings
                             and not slang):
        return dataset
    rng = random.Random(seed)
    phrases, targets = list(dataset["phrase"]), list(dataset["targets"])
    seen = set(phrases) | set(held_out)

    def add(phrase: str | None, words: list[str]) -> None:
        if phrase is not None and phrase not in seen:
            seen.add(phrase)
            phrases.append(phrase)
            targets.append(words)

    for phrase, words in zip(dataset["phrase"], dataset["targets"]):
        for template in rng.sample(MODIFIERS, copies):
            add(template.format(phrase), words)
        if comparatives:
            add(comparative(phrase), words)
        if misspellings and rng.random() < misspellings:
            typo = misspell(phrase, rng)  # drawn for long phrases too: the random stream stays as it was
            add(typo if len(phrase.split(" ")) <= MISSPELT_MAX_WORDS else None, words)
    # Drawn from a stream of their own, so that the copies above stay the same with or without them.
    informal = random.Random(f"informal-{seed}")
    for phrase, words in zip(dataset["phrase"], dataset["targets"]):
        if len(phrase.split(" ")) > MISSPELT_MAX_WORDS:
            continue
        if respellings and informal.random() < respellings:
            add(respell(phrase, informal), words)
        if slang and informal.random() < slang:
            base = (respell(phrase, informal) if informal.random() < 0.5 else None) or phrase
            add(informal.choice(SLANG_MODIFIERS).format(base), words)
    return Dataset.from_dict({"phrase": phrases, "targets": targets}, features=dataset.features)


def read_label_file(path: str, lowercase: bool = True) -> list[str]:
    """The output words listed in `path`, one per line, normalised like targets (blank lines are skipped)."""
    words = []
    for line in _read_utf8(path).splitlines():
        if line.strip():
            words.append(normalize_phrase(line, lowercase))
    if not words:
        raise DataValidationError(f"{path}: no words (one output word per line)")
    return words


def read_label_descriptions(source: str, lowercase: bool = True) -> dict[str, str]:
    """Word -> short description, from a pair file with columns `word` and `description` (any format
    `read_pair_file` reads), or `"wordnet"` for the built-in words' WordNet glosses. Words are normalised like
    targets; an empty cell or a word given twice is refused, naming the row."""
    path = str(WORDNET_GLOSSES) if source == "wordnet" else source
    rows = read_pair_file(path, ("word", "description"), hint="a file of word, description rows")
    descriptions: dict[str, str] = {}
    for i, (word, description) in enumerate(zip(rows["word"], rows["description"])):
        if not (word or "").strip() or not (description or "").strip():
            field = "word" if not (word or "").strip() else "description"
            raise DataValidationError(f"{path}, row {i + 1}: empty {field}")
        word = normalize_phrase(word, lowercase)
        if word in descriptions:
            raise DataValidationError(f"{path}, row {i + 1}: {word!r} is described twice")
        descriptions[word] = " ".join(description.split())
    return descriptions


def label_list_for(head: str, train: Dataset, tokenizer: PreTrainedTokenizerBase,
                   extra: Sequence[str] = ()) -> list[str]:
    """The output words: the sorted training targets and `extra` words (`labels` and `text` heads), or the
    tokenizer's vocabulary (`vocab`)."""
    if head != "vocab":
        return sorted({word for words in train["targets"] for word in words} | set(extra))
    vocab = tokenizer.get_vocab()
    labels = [""] * len(vocab)
    for token, i in vocab.items():
        labels[i] = token
    return labels


def check_vocab_targets(splits: DatasetDict, tokenizer: PreTrainedTokenizerBase) -> None:
    """The `vocab` head can only output single-token words: name every target that is not one."""
    vocab = tokenizer.get_vocab()
    bad = sorted({w for split in splits.values() for words in split["targets"] for w in words if w not in vocab})
    if bad:
        shown = ", ".join(repr(w) for w in bad[:20]) + (f" and {len(bad) - 20} more" if len(bad) > 20 else "")
        raise DataValidationError(
            f"head='vocab' can only output single tokens of the tokenizer's vocabulary; {len(bad)} target(s) "
            f"are not: {shown}. Use --head labels, or map these targets to single words."
        )


def encode_labels(splits: DatasetDict, label_names: Sequence[str]) -> DatasetDict:
    """Add a `labels` column (gold ids, as a `Sequence(ClassLabel)`); targets outside `label_names` are dropped."""
    label2id = {name: i for i, name in enumerate(label_names)}
    features = Features({
        "phrase": Value("string"),
        "targets": SequenceFeature(Value("string")),
        "labels": SequenceFeature(ClassLabel(names=list(label_names))),
    })
    encoded = {}
    for split, dataset in splits.items():
        unknown = {w for words in dataset["targets"] for w in words if w not in label2id}
        if unknown:
            logger.warning(
                f"{split}: {len(unknown)} target word(s) that are not output words (never seen in training, not in "
                f"--label_file) cannot be predicted and count as wrong: {sorted(unknown)[:10]}"
            )
        encoded[split] = dataset.map(
            lambda batch: {"labels": gold_lists(batch["targets"], label2id)},
            batched=True,
            features=features,
            desc=f"Encoding {split} labels",
        )
    return DatasetDict(encoded)


def tokenize_splits(
    splits: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    num_proc: int | None = None,
) -> DatasetDict:
    """Tokenise the `phrase` column (no padding: the collator pads each batch)."""

    def tokenize(batch):
        return tokenizer(batch["phrase"], truncation=True, max_length=max_seq_length)

    return splits.map(tokenize, batched=True, num_proc=num_proc, desc="Tokenising")


def warn_truncated(tokenized: DatasetDict, max_seq_length: int) -> None:
    """Say how many phrases per split filled `max_seq_length` tokens (so were, or may have been, truncated)."""
    for split, dataset in tokenized.items():
        if len(dataset) == 0:
            continue
        full = sum(len(ids) >= max_seq_length for ids in dataset["input_ids"])
        if full:
            logger.warning(f"{full} phrase(s) in {split} reached max_seq_length={max_seq_length} tokens and were "
                           "truncated (raise --max_seq_length to keep more)")


def gold_ids(targets: Sequence[Sequence[str]], label2id: dict[str, int]) -> torch.Tensor:
    """`gold_lists` as one tensor, padded with -100 (`pad_golds`)."""
    return pad_golds(gold_lists(targets, label2id))


class WordMappingCollator:
    """Pads a batch dynamically; `labels` (one or more gold ids per row) are padded with -100."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.tokenizer = tokenizer

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        labels = [f.pop("labels") for f in features] if "labels" in features[0] else None
        model_inputs = [{k: v for k, v in f.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
                        for f in features]
        batch = self.tokenizer.pad(model_inputs, return_tensors="pt")
        if labels is not None:
            batch["labels"] = pad_golds(labels)
        return dict(batch)


def preprocess_splits(
    splits: DatasetDict,
    label_names: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    data_args,
    seed: int,
    cache_root: str | os.PathLike,
) -> DatasetDict:
    """Augment the training split, encode labels and tokenise, cached on disk by a fingerprint of all inputs.

    A later run with the same data, labels, tokenizer and arguments (or another rank, after the main process)
    loads the result instead of recomputing it; `--overwrite_cache` recomputes.
    """
    key = Hasher.hash([
        {split: (list(d["phrase"]), list(d["targets"])) for split, d in splits.items()},
        list(label_names), tokenizer, seed, data_args.augment_copies, data_args.misspellings, data_args.comparatives,
        data_args.respellings, data_args.slang, data_args.max_seq_length, CACHE_VERSION,
    ])
    folder = Path(cache_root) / "hf_bertmap" / key
    if folder.is_dir() and not data_args.overwrite_cache:
        logger.warning(f"Reusing the preprocessed data cached in {folder}")
        tokenized = load_from_disk(str(folder))
        warn_truncated(tokenized, data_args.max_seq_length)
        return tokenized
    # No evaluation phrase enters training through augmentation, whichever data it augments.
    held_out = {phrase for split in ("validation", "test") for phrase in splits[split]["phrase"]}
    held_out |= set(load_informal_eval(data_args.lowercase)["phrase"])
    train = augment(splits["train"], data_args.augment_copies, seed, misspellings=data_args.misspellings,
                    comparatives=data_args.comparatives, held_out=frozenset(held_out),
                    respellings=data_args.respellings, slang=data_args.slang)
    splits = DatasetDict(dict(splits, train=train))
    tokenized = tokenize_splits(encode_labels(splits, label_names), tokenizer, data_args.max_seq_length,
                                num_proc=data_args.preprocessing_num_workers)
    staging = folder.with_name(f"{key}.tmp{os.getpid()}")
    tokenized.save_to_disk(str(staging), num_shards={split: 1 for split in tokenized})  # an empty split too
    if folder.is_dir():
        shutil.rmtree(folder)
    os.replace(staging, folder)
    logger.info(f"Preprocessed data cached in {folder}")
    warn_truncated(tokenized, data_args.max_seq_length)
    return load_from_disk(str(folder))


def describe_splits(splits: DatasetDict) -> dict[str, dict[str, int]]:
    """Counts per split: phrases, (phrase, target) pairs, distinct targets."""
    return {
        split: {
            "phrases": len(dataset),
            "pairs": sum(len(words) for words in dataset["targets"]),
            "targets": len({w for words in dataset["targets"] for w in words}),
        }
        for split, dataset in splits.items()
    }

