"""Shared fixtures: a tiny random-weight BERT, a tiny WordPiece tokenizer built here, tiny pair files."""

import csv
import os
from pathlib import Path

import datasets
import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

from hf_bertmap import BertForWordMapping, BertMapConfig

# Phrases and target words of the tiny data; each is one token of the tiny vocabulary.
PAIRS = [
    ("large", "size"), ("huge", "size"), ("tiny", "size"), ("small", "size"), ("big", "size"),
    ("hot", "temperature"), ("cold", "temperature"), ("warm", "temperature"), ("cool", "temperature"),
    ("fishy", "smell"), ("smelly", "smell"), ("fragrant", "smell"), ("stinky", "smell"),
    ("valuable", "value"), ("worthless", "value"), ("cheap", "value"), ("precious", "value"),
    ("high", "height"), ("high", "pitch"), ("low", "height"), ("tall", "height"), ("short", "height"),
]
EXTRA_WORDS = ["very", "not", "extremely", "really", "quite", "rather", "pretty", "fairly", "super", "incredibly",
               "so", "too", "kind", "of", "sort", "somewhat", "slightly", "a", "bit", "little", "barely", "at", "all",
               "hardly", "more", "less", "chonky"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_vocab() -> list[str]:
    words = sorted({w for pair in PAIRS for w in pair} | set(EXTRA_WORDS))
    return SPECIAL + words


def tiny_encoder_config(**kwargs) -> BertConfig:
    defaults = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                    vocab_size=len(tiny_vocab()), max_position_embeddings=64)
    defaults.update(kwargs)
    return BertConfig(**defaults)


def make_tokenizer(folder: Path) -> BertTokenizerFast:
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizerFast(vocab={word: i for i, word in enumerate(tiny_vocab())}, do_lower_case=True)
    tokenizer.save_pretrained(folder)
    return tokenizer


def write_pairs(path: Path, rows, header=("phrase", "target")) -> Path:
    delimiter = "\t" if path.suffix == ".tsv" else ","
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(autouse=True)
def _isolated_caches(monkeypatch, tmp_path_factory, tmp_path):
    # Nothing in the unit tests may reach a hub; remote code and datasets are cached in private folders, so no
    # test sees what an earlier run left in ~/.cache.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path_factory.getbasetemp() / "hf_modules"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory) -> BertTokenizerFast:
    return make_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory, tokenizer) -> Path:
    """A folder holding a random-weight tiny BertModel and its tokenizer: a stand-in for bert-base-uncased."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    BertModel(tiny_encoder_config()).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_model(head: str = "labels", pooling: str = "mean", labels=("height", "size", "smell"), **kwargs):
    encoder = tiny_encoder_config()
    if head == "vocab":
        labels = tiny_vocab()
    config = BertMapConfig(encoder_config=encoder.to_dict(), head=head, pooling=pooling,
                           id2label=dict(enumerate(labels)), **kwargs)
    torch.manual_seed(0)
    return BertForWordMapping(config)


@pytest.fixture
def saved_model(tmp_path, tokenizer) -> Path:
    """A saved tiny word mapper with its tokenizer, as `save_pretrained` writes it."""
    folder = tmp_path / "tiny-mapper"
    make_model().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_tiny_pairs(folder: Path) -> dict[str, Path]:
    """Train/validation/test CSV files of the tiny pairs (validation = test, phrase-disjoint from train)."""
    train = [p for i, p in enumerate(PAIRS) if i % 5 != 0]
    test = [p for i, p in enumerate(PAIRS) if i % 5 == 0 and p[0] != "high"]
    return {
        "train": write_pairs(folder / "train.csv", train),
        "validation": write_pairs(folder / "validation.csv", test),
        "test": write_pairs(folder / "test.csv", test),
    }


@pytest.fixture
def pair_files(tmp_path) -> dict[str, Path]:
    return write_tiny_pairs(tmp_path)


def block_hf_bertmap_code() -> str:
    """Python source that makes `import hf_bertmap` fail, for subprocesses that must not see the package."""
    return (
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'hf_bertmap' or name.startswith('hf_bertmap.'):\n"
        "            raise ImportError('hf_bertmap is blocked in this test')\n"
        "sys.meta_path.insert(0, _Block())\n"
    )


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    env.pop("PYTHONPATH", None)
    return env
