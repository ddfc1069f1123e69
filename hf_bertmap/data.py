"""The dataset pipeline: load, validate, group, split, augment, encode, tokenise, collate and cache (phrase, target
word) pairs with `datasets` (files are read by `pair_files`, copies made by `augmentation`).

Every phrase ends up as one row `{"phrase": str, "targets": list[str]}`: a phrase with several correct words
(`high -> height | level | pitch`) keeps them all. Training spreads the loss evenly over them; evaluation counts a
prediction as correct when it is any of them.
"""

import hashlib
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, load_dataset, load_from_disk
from datasets import Sequence as SequenceFeature
from datasets.fingerprint import Hasher
from transformers import PreTrainedTokenizerBase

from .augmentation import augment
from .configuration_bertmap import normalize_phrase
from .decoding_bertmap import pad_golds
from .metrics import gold_lists
from .pair_files import DataValidationError, read_pair_file

logger = logging.getLogger(__name__)

BUILTIN_DATA = Path(__file__).parent / "resources" / "wordnet_attributes.tsv"
# Hand-written informal phrases (slang, intensifiers, hedges, negation, misspellings, multi-word) with gold words
# from the built-in label set: for evaluation only, never trained on.
INFORMAL_EVAL_DATA = Path(__file__).parent / "resources" / "informal_eval.tsv"
SPLITS = ("train", "validation", "test")
# The built-in data's extra columns, and the split its everyday phrases are tested on.
BUILTIN_COLUMNS = ("source", "links", "category")
EXTRA_SPLITS = ("test_everyday",)
# The built-in grouped split: a phrase enters test only if at most this many phrases linked to it leave training.
MAX_DISPLACED = 2
CACHE_VERSION = 3  # bump when preprocessing changes

def _stable_fraction(key: str, seed: int) -> float:
    """A number in [0, 1) fixed by `key` and `seed`, the same on every machine and Python run."""
    digest = hashlib.sha1(f"{seed}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def validate_pairs(dataset: Dataset, source: str, phrase_column: str, target_column: str) -> None:
    """Raise `DataValidationError` naming `source`, the row and the field for a missing column or empty cell."""
    for column in (phrase_column, target_column):
        if column not in dataset.column_names:
            raise DataValidationError(
                f"{source}: no column {column!r}; the columns are {dataset.column_names} "
                "(choose with --phrase_column/--target_column)"
            )
    table = dataset[:]
    for column, name in ((phrase_column, "phrase"), (target_column, "target")):
        for i, value in enumerate(table[column]):
            if value is None or not str(value).strip():
                raise DataValidationError(f"{source}, row {i + 1}: empty {name} (column {column!r})")


def group_by_phrase(dataset: Dataset, phrase_column: str, target_column: str, lowercase: bool,
                    keep: Sequence[str] = ()) -> Dataset:
    """One row per distinct normalised phrase with its distinct targets in first-seen order, and the `keep`
    columns' values of its first row."""
    targets: dict[str, list[str]] = {}
    kept: dict[str, dict[str, str]] = {}
    table = dataset[:]  # every column as a list at once: much faster than row by row
    columns = [table[column] for column in keep]
    for i, (phrase, target) in enumerate(zip(table[phrase_column], table[target_column])):
        phrase = normalize_phrase(str(phrase), lowercase)
        words = targets.setdefault(phrase, [])
        kept.setdefault(phrase, {column: values[i] for column, values in zip(keep, columns)})
        target = normalize_phrase(str(target), lowercase)
        if target not in words:
            words.append(target)
    rows = {"phrase": list(targets), "targets": list(targets.values())}
    rows.update({column: [kept[phrase][column] for phrase in targets] for column in keep})
    return Dataset.from_dict(rows)


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


def split_by_links(dataset: Dataset, validation_percentage: int, test_percentage: int, seed: int,
                   max_displaced: int = MAX_DISPLACED) -> DatasetDict:
    """Split the built-in rows so that no test phrase shares a link (a head word or a WordNet adjective synset:
    `very big`/`big`, `big`/`large`) with a training phrase, and take the everyday rows' test phrases as their own
    split, `test_everyday`.

    Phrases are taken in an order fixed by phrase and seed; one becomes a test phrase while its source (WordNet or
    everyday) has fewer than `test_percentage` of its phrases in test, and only if at most `max_displaced`
    phrases linked to it must leave training for it: they go to validation. Validation is then filled up to
    `validation_percentage` in another fixed order. A test phrase is thus one with no synonym and no head word in
    training: the test measures new meanings, not synonym lookup."""
    table = dataset[:]
    phrases = table["phrase"]
    links = [set((row or "").split()) for row in table["links"]]
    everyday = [source == "everyday" for source in table["source"]]
    linked: dict[str, list[int]] = {}
    for i, keys in enumerate(links):
        for key in keys:
            linked.setdefault(key, []).append(i)
    wanted = {source: test_percentage / 100 * sum(flag == source for flag in everyday) for source in (False, True)}
    taken = {False: 0, True: 0}
    test, validation = set(), set()
    order = sorted(range(len(phrases)), key=lambda i: _stable_fraction(phrases[i], seed))
    for i in order:
        if i in test or i in validation or taken[everyday[i]] >= wanted[everyday[i]]:
            continue
        displaced = {j for key in links[i] for j in linked[key]} - test - validation - {i}
        if len(displaced) <= max_displaced:
            test.add(i)
            taken[everyday[i]] += 1
            validation |= displaced
    rest = sorted((i for i in order if i not in test and i not in validation),
                  key=lambda i: _stable_fraction(phrases[i], seed + 1))
    validation |= set(rest[:max(0, round(validation_percentage / 100 * len(phrases)) - len(validation))])
    # Each split shuffled (by phrase and seed, independently of the choices above), so that its first rows
    # (--max_*_samples) are a fair sample of it.
    shuffled = sorted(range(len(phrases)), key=lambda i: _stable_fraction(f"shuffle\0{phrases[i]}", seed))
    return DatasetDict({
        "train": dataset.select([i for i in shuffled if i not in test and i not in validation]),
        "validation": dataset.select([i for i in shuffled if i in validation]),
        "test": dataset.select([i for i in shuffled if i in test and not everyday[i]]),
        "test_everyday": dataset.select([i for i in shuffled if i in test and everyday[i]]),
    })


def is_builtin(data_args) -> bool:
    """Whether `data_args` name no data, so the built-in WordNet data is used."""
    files = (data_args.train_file, data_args.validation_file, data_args.test_file)
    return data_args.dataset_name is None and all(path is None for path in files)


def load_splits(data_args, cache_dir: str | None = None, seed: int = 42) -> DatasetDict:
    """Train/validation/test splits of grouped `{"phrase", "targets"}` rows, validated, before any tokenisation.

    Without files or a dataset name, the built-in data, split by its links (`split_by_links`) into train,
    validation, test (its WordNet phrases) and test_everyday (its everyday phrases); files and Hub datasets without
    a validation or test split are split by phrase (`split_by_phrase`).
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
        raw = {"train": read_pair_file(str(BUILTIN_DATA), ("phrase", "target", *BUILTIN_COLUMNS))}
        sources = {"train": str(BUILTIN_DATA)}
    phrase_column = "phrase" if builtin else data_args.phrase_column
    target_column = "target" if builtin else data_args.target_column
    keep = BUILTIN_COLUMNS if builtin else ()

    if "train" not in raw and data_args.dataset_name is not None:
        raise DataValidationError(f"{data_args.dataset_name}: no 'train' split; it has {list(raw)}")
    grouped = {}
    for split, dataset in raw.items():
        if split not in SPLITS:
            continue
        validate_pairs(dataset, sources[split], phrase_column, target_column)
        grouped[split] = group_by_phrase(dataset, phrase_column, target_column, data_args.lowercase, keep)
    if "train" not in grouped:  # only --validation_file/--test_file: evaluating a trained model
        grouped["train"] = group_by_phrase(Dataset.from_dict({"phrase": [], "target": []}), "phrase", "target",
                                           data_args.lowercase)

    missing = [split for split in ("validation", "test") if split not in grouped]
    if builtin:
        grouped = split_by_links(grouped["train"], data_args.validation_split_percentage,
                                 data_args.test_split_percentage, seed).select_columns(["phrase", "targets"])
    elif missing:
        carved = split_by_phrase(
            grouped["train"],
            data_args.validation_split_percentage if "validation" in missing else 0,
            data_args.test_split_percentage if "test" in missing else 0,
            seed,
        )
        grouped["train"] = carved["train"]
        for split in missing:
            grouped[split] = carved[split]
    splits = DatasetDict({split: grouped[split] for split in (*SPLITS, *EXTRA_SPLITS) if split in grouped})
    for split, limit in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples),
                         ("test", data_args.max_predict_samples), ("test_everyday", data_args.max_predict_samples)):
        if limit is not None and split in splits:
            splits[split] = splits[split].select(range(min(limit, len(splits[split]))))
    return splits


def load_informal_eval(lowercase: bool = True) -> Dataset:
    """The informal evaluation set as grouped `{"phrase", "targets", "category"}` rows."""
    raw = read_pair_file(str(INFORMAL_EVAL_DATA), ("phrase", "target", "category"))
    validate_pairs(raw, str(INFORMAL_EVAL_DATA), "phrase", "target")
    grouped = group_by_phrase(raw, "phrase", "target", lowercase)
    category = {normalize_phrase(p, lowercase): c for p, c in zip(raw["phrase"], raw["category"])}
    return grouped.add_column("category", [category[p] for p in grouped["phrase"]])


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


def check_max_seq_length(max_seq_length: int, encoder_config, tokenizer: PreTrainedTokenizerBase) -> None:
    """Refuse a `--max_seq_length` above the tokens the encoder reads (its positions, its tokenizer's limit)."""
    limits = [n for n in (getattr(encoder_config, "max_position_embeddings", None), tokenizer.model_max_length)
              if isinstance(n, int) and 0 < n < 1_000_000]
    if limits and max_seq_length > min(limits):
        raise ValueError(f"--max_seq_length {max_seq_length}: the encoder reads at most {min(limits)} tokens; choose "
                         f"at most {min(limits)}")


def check_described(descriptions: dict[str, str] | None, label_names: Sequence[str], source: str | None) -> None:
    """Say how many output words have a description, and name the described words that are not output words."""
    if descriptions is None:
        return
    logger.info(f"{sum(w in descriptions for w in label_names)} of the {len(label_names)} output words have a "
                "description")
    unknown = sorted(set(descriptions) - set(label_names))
    if unknown:
        logger.warning(f"--label_descriptions {source}: {len(unknown)} described word(s) are not output words and "
                       f"are ignored: {unknown[:10]}{' ...' if len(unknown) > 10 else ''}")


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
    held_out = {phrase for split in splits if split != "train" for phrase in splits[split]["phrase"]}
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

