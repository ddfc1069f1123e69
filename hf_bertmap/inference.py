"""`WordMapper`: a word mapper (model, tokenizer and decoding step) loaded from a folder or the Hub; it tokenises
phrases and returns their top-k words with probabilities, explains them, grows words and evaluates. Saving it is
`model_folder.MapperFolderMixin`'s, correcting it `corrections.CorrectionsMixin`'s."""

import dataclasses
import logging
import numbers
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .backbones import check_model_location
from .corrections import CorrectionsMixin
from .decoding_bertmap import (
    HUB_KWARGS,
    DecodingConfig,
    PhraseMemory,
    WordMappingDecoder,
    check_decoding,
    check_positive_int,
    pad_golds,
)
from .hardware import cpu_has_native_bfloat16
from .metrics import gold_lists, word_mapping_scores
from .model_card import BertMapCardData
from .model_folder import MapperFolderMixin, check_model_folder
from .modeling_bertmap import BertForWordMapping
from .onnx_backend import ONNX_FILE, OnnxWordMapping

logger = logging.getLogger(__name__)

PROGRESS_FROM = 2048  # texts: a progress bar from this many on
BF16_EMBEDDING_FROM = 20_000  # texts: `embed` uses bfloat16 autocast on a CPU that has it from this many on


class Ranking(NamedTuple):
    """`WordMapper.rank`'s answer, per phrase: its best word ids (best first), their probabilities, and the 1-based
    rank of its best gold among all words (`None` when no golds were given)."""

    ids: list[list[int]]
    scores: list[list[float]]
    gold_ranks: list[int] | None = None


class Evaluation(NamedTuple):
    """`WordMapper.evaluate(..., return_ranking=True)`'s answer: the metrics, the `Ranking` they came from, and per
    phrase whether its top word is one of its golds."""

    metrics: dict[str, float]
    ranking: Ranking
    hits: list[bool]


class WordMapper(MapperFolderMixin, CorrectionsMixin):
    """A trained `BertForWordMapping`, its tokenizer and its decoding step (`WordMappingDecoder`).

    Example:

    ```python
    >>> mapper = WordMapper.from_pretrained("bertmap-attributes")
    >>> mapper.predict(["very chonky", "fishy"], top_k=2)
    [[('size', 0.83), ('weight', 0.05)], [('smell', 0.61), ('taste', 0.12)]]
    >>> mapper.predict("very chonky", min_score=0.9)  # no word when the best one is less likely than that
    []
    >>> mapper.add_labels(["flavor"])  # a new output word, usable at once
    ['flavor']
    ```
    """

    def __init__(self, model: BertForWordMapping, tokenizer: PreTrainedTokenizerBase, source_folder: str | None = None,
                 card_data: BertMapCardData | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.card_data = card_data  # the model card's data, saved and rendered with the model
        self.source_folder = source_folder  # where results, the card's inputs and corrections are found and saved
        self.unsaved_corrections: list[tuple[str, str]] = []  # `correct(..., save=False)`'s pairs, for the next save
        # One thread at a time changes or runs the model (a page serves several): a word added between a batch's
        # forward and its decoding would not match its logits.
        self._lock = threading.RLock()
        self._mark_saved()

    @property
    def decoding(self) -> WordMappingDecoder:
        """The model's decoding step (`model.decoding`): temperature, memory, top-k and abstention."""
        return self.model.decoding

    @property
    def words(self) -> list[str]:
        """The output words, in head order (`config.id2label`); `labels` means gold ids, as in transformers."""
        return [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    @classmethod
    def from_pretrained(cls, model_name_or_path: str | os.PathLike, device: str | None = None,
                        allow_pickle: bool = False, backend: str = "torch", onnx_file: str = ONNX_FILE,
                        **kwargs) -> "WordMapper":
        """Load a saved or pushed word mapper (folder or Hub id; `revision=` pins a branch or commit).

        Only safetensors weights are loaded unless `allow_pickle=True`. File-locating keywords (`revision`,
        `token`, `cache_dir`, `local_files_only`...) go to the tokenizer and the model (with its decoding step); the
        others (`dtype=torch.bfloat16`, `device_map`...) to the model only. `backend="onnx"` runs a folder written
        by `export_onnx` (its `onnx_file`) in ONNX Runtime with the same decoding step, on the CPU or, with
        `device="cuda"`, on ONNX Runtime's CUDA provider (onnxruntime-gpu).
        """
        path = str(model_name_or_path)
        check_model_location(path)
        if backend == "onnx":
            return cls(OnnxWordMapping(path, onnx_file, device=device), AutoTokenizer.from_pretrained(path))
        if backend != "torch":
            raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        if os.path.isdir(path):
            check_model_folder(path, allow_pickle)
        hub_kwargs = {key: kwargs.pop(key) for key in HUB_KWARGS if key in kwargs}
        tokenizer = AutoTokenizer.from_pretrained(path, **hub_kwargs)
        model = BertForWordMapping.from_pretrained(path, use_safetensors=None if allow_pickle else True,
                                                   **hub_kwargs, **kwargs)
        if device is not None:
            model.to(device)
        folder = path if os.path.isdir(path) else None
        mapper = cls(model, tokenizer, source_folder=folder, card_data=BertMapCardData.load(folder) if folder else None)
        if mapper.source_folder is not None:
            mapper.warn_pending_corrections()
        return mapper

    def add_labels(self, words: list[str], descriptions: Mapping[str, str] | None = None) -> list[str]:
        """Make `words` output words at once, without retraining: each is scored by how close a phrase's embedding
        is to the embedding of the word's text (see `BertForWordMapping.add_labels`): the word itself, or the
        word and its entry in `descriptions` (word -> a short definition). With `head="text"` that embedding is
        the word's real row, as for the words it was trained on.

        Words are normalised like phrases; those already in the label set are skipped. Returns the words added.
        `save_pretrained`/`push_to_hub` keep them.
        """
        if isinstance(words, str):
            raise TypeError(f"add_labels takes a list of words, got the string {words!r}; pass [{words!r}]")
        normalized = self.decoding.normalize(words, what="word")
        with self._lock:  # which words are new and adding them: one step for concurrent callers
            new = list(dict.fromkeys(word for word in normalized if word not in self.model.config.label2id))
            if new:
                self.model.add_labels(new, *self.tokenize_word_texts(self.word_texts(new, descriptions)))
        return new

    def word_texts(self, words: Sequence[str], descriptions: Mapping[str, str] | None = None) -> list[str]:
        """What the encoder reads for each output word: `"word: description"` where `descriptions` has the word,
        else the word; normalised like phrases."""
        descriptions = descriptions or {}
        return self.decoding.normalize([f"{w}: {descriptions[w]}" if descriptions.get(w) else w for w in words])

    def tokenize_word_texts(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask) of the words' texts, padded and cut to `config.label_text_length` tokens."""
        tokens = self.tokenizer(texts, padding="max_length", truncation=True,
                                max_length=self.model.config.label_text_length, return_tensors="pt")
        return tokens["input_ids"].to(self.model.device), tokens["attention_mask"].to(self.model.device)

    def set_word_texts(self, descriptions: Mapping[str, str] | None = None) -> None:
        """Give a text head (`head="text"`) its words' texts, the words alone or with their `descriptions`, and
        encode its rows from them."""
        with self._lock:
            tokens = self.tokenize_word_texts(self.word_texts(self.words, descriptions))
            self.model.set_word_texts(*tokens)
        groups: dict[tuple, list[str]] = {}
        for word, ids in zip(self.words, tokens[0].tolist()):
            groups.setdefault(tuple(ids), []).append(word)
        same = [words for words in groups.values() if len(words) > 1]
        if same:
            logger.warning(f"{len(same)} group(s) of output words have texts that are the same once cut to "
                           f"{self.model.config.label_text_length} tokens, so the same row: {same[:5]}"
                           f"{' ...' if len(same) > 5 else ''}; shorten their descriptions")

    def memorize(self, phrases: list[str], targets: list[str] | list[list[str]], weight: float | None = None,
                 replace: bool = False) -> None:
        """Store (phrase, target word(s)) pairs in the decoding step's memory, usable at once: a stored phrase gets
        only its words (ranked by the classifier), and phrases near it lean the same way (`memory_weight`).

        `targets` holds one word or a list of words per phrase, each an output word already (`add_labels` first
        for new ones). The pairs are added to the memory unless `replace`; `weight` sets `memory_weight` (a model
        without a memory weight needs one). `save_pretrained`/`push_to_hub` keep the memory.
        """
        config = self.decoding.config
        if (weight if weight is not None else config.memory_weight) <= 0:
            raise ValueError("memorize needs a memory weight > 0 (pass weight=...)")
        with self._lock:
            self._store(phrases, targets, replace)
            if weight is not None:
                self.decoding.config = dataclasses.replace(config, memory_weight=weight)

    def _store(self, phrases: list[str], targets: Sequence[str | Sequence[str]], replace: bool = False) -> None:
        """Put (phrase, target words) pairs into the memory; every target must be an output word."""
        texts = self.decoding.normalize(phrases)
        golds = []
        for i, (phrase, words) in enumerate(zip(phrases, self.gold_words(phrases, targets))):
            ids = [self.model.config.label2id.get(w) for w in words]
            if not ids or None in ids:
                raise ValueError(f"phrase {i} ({phrase!r}): targets {words} must be output words; "
                                 "add new ones with add_labels first")
            golds.append(ids)
        memory = PhraseMemory(texts, self.embed(texts, normalized=True), pad_golds(golds))
        if self.decoding.memory is not None and not replace:
            memory = self.decoding.memory.extend(memory)
        self.decoding.memory = memory

    def gold_words(self, phrases: list[str], targets: Sequence[str | Sequence[str]]) -> list[list[str]]:
        """Each phrase's gold words normalised like training targets: a bare string is one word, a list several."""
        if isinstance(targets, str) or len(targets) != len(phrases):
            count = "a single string" if isinstance(targets, str) else f"{len(targets)} targets"
            raise ValueError(f"{len(phrases)} phrases but {count}: give one word or list of words per phrase")
        return [self.decoding.normalize([gold] if isinstance(gold, str) else list(gold), what=f"phrase {i}: target")
                for i, gold in enumerate(targets)]

    def batches(self, phrases: list[str], batch_size: int = 64,
                normalized: bool = False) -> Iterator[tuple[list[str], dict[str, torch.Tensor]]]:
        """(normalised phrases, tokenised inputs on the model's device) per batch; phrases are checked and
        normalised unless `normalized`."""
        check_positive_int("batch_size", batch_size)
        texts = list(phrases) if normalized else self.decoding.normalize(phrases)
        progress = tqdm(total=len(texts), desc="Encoding", unit="phrase", disable=len(texts) < PROGRESS_FROM)
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            yield chunk, self.tokenizer(chunk, padding=True, truncation=True,
                                        max_length=self.decoding.config.max_length,
                                        return_tensors="pt").to(self.model.device)
            progress.update(len(chunk))
        progress.close()

    def iter_outputs(self, phrases: list[str], batch_size: int = 64,
                     normalized: bool = False) -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor]]:
        """(normalised phrases, logits, pooled embeddings) per batch: the model's plain outputs, before decoding."""
        return self.decode_batches(phrases, batch_size, lambda texts, logits, pooled, words: (texts, logits, pooled),
                                    normalized)

    def decode_batches(self, phrases: list[str], batch_size: int, step, normalized: bool = False) -> Iterator:
        """`step(texts, logits, pooled, words)` per batch, run with the forward under the mapper's lock, so that the
        words, head and memory it decodes with are those the logits came from."""
        for texts, inputs in self.batches(phrases, batch_size, normalized):
            with self._lock, torch.inference_mode():
                outputs = self.model(**inputs)
                result = step(texts, outputs.logits.float(), outputs.pooled_output.float(), self.words)
            yield result

    def embed(self, phrases: list[str], batch_size: int = 256, normalized: bool = False) -> torch.Tensor:
        """The pooled embeddings (n, hidden) the head and the memory see, in batches (label names, the memory,
        `add_labels`: any number of texts).

        More than `BF16_EMBEDDING_FROM` texts on a float32 model on a CPU with native bfloat16 are embedded under
        bfloat16 autocast: faster, with the float32 embeddings' directions (docs/large_vocabularies.md)."""
        texts = list(phrases) if normalized else self.decoding.normalize(phrases)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch: less padding
        was_training = self.model.training
        self.model.eval()
        pytorch = isinstance(self.model, BertForWordMapping)  # the pooled embedding alone, without the head
        fast = (pytorch and len(texts) > BF16_EMBEDDING_FROM and self.model.device.type == "cpu"
                and self.model.dtype == torch.float32 and cpu_has_native_bfloat16())
        chunks = []
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            for _, inputs in self.batches([texts[i] for i in order], batch_size, normalized=True):
                pooled = self.model.pool(**inputs) if pytorch else self.model(**inputs).pooled_output
                chunks.append(pooled.float().cpu())
        if was_training:
            self.model.train()
        if not chunks:
            return torch.empty(0, self.model.config.encoder_config.hidden_size)
        by_length = torch.cat(chunks)
        embeddings = torch.empty_like(by_length)
        embeddings[order] = by_length  # back to the callers' order
        return embeddings

    def predict_proba(self, phrases: list[str], batch_size: int = 64,
                      config: DecodingConfig | None = None) -> torch.Tensor:
        """Decoded probabilities over `self.words` (temperature and memory applied), (len(phrases), num_labels);
        `config` decodes instead of the model's own decoding settings (e.g. `dataclasses.replace(
        mapper.decoding.config, temperature=1.0)`). For many phrases over many words, `predict` keeps only the top
        words per batch."""
        chunks = list(self.decode_batches(phrases, batch_size, lambda texts, logits, pooled, words:
                                           self.decoding.probabilities(logits, pooled, texts, config=config).cpu()))
        return torch.cat(chunks) if chunks else torch.empty(0, self.model.config.num_labels)

    def predict(
        self, phrases: str | list[str], top_k: int | None = None, batch_size: int = 64, min_score: float | None = None
    ) -> list[tuple[str, float]] | list[list[tuple[str, float]]]:
        """The `top_k` (word, probability) pairs per phrase, best first. A single string gives a single list.

        A phrase whose best word has a probability below `min_score` gets an empty list (abstention). Defaults come
        from the decoding config (`top_k` 1; `min_score` as saved by `train.py`, 0.1 by default).
        """
        single = isinstance(phrases, str)
        results = [words for batch in self.iter_predict([phrases] if single else list(phrases), top_k, batch_size,
                                                        min_score) for words in batch]
        return results[0] if single else results

    def _stores(self, phrase: str, word: str) -> bool:
        """Whether the memory holds `phrase` with `word` among its stored words."""
        memory, word_id = self.decoding.memory, self.model.config.label2id.get(word)
        if memory is None or phrase not in memory.index or word_id is None:
            return False
        return word_id in memory.golds[memory.index[phrase]].tolist()

    def explain(self, phrases: str | list[str], top_k: int | None = None, neighbors: int = 5, batch_size: int = 64,
                min_score: float | None = None) -> dict | list[dict]:
        """Why each phrase gets its words (`WordMappingDecoder.explain`, from the same decoding as `predict`): its
        words with their probability and the classifier's and the memory's shares of it, whether it abstained,
        whether it is a stored phrase, and its `neighbors` nearest stored phrases with their words and similarity.
        A single string gives a single explanation."""
        single = isinstance(phrases, str)
        explained = [e for batch in self.iter_explain([phrases] if single else list(phrases), top_k, neighbors,
                                                      batch_size, min_score) for e in batch]
        return explained[0] if single else explained

    def iter_explain(self, phrases: list[str], top_k: int | None = None, neighbors: int = 5, batch_size: int = 64,
                     min_score: float | None = None) -> Iterator[list[dict]]:
        """`explain`, one batch at a time (what `bertmap predict --explain` streams)."""
        check_positive_int("neighbors", neighbors)
        return self.decode_batches(phrases, batch_size, lambda texts, logits, pooled, words:
                                    self.decoding.explain(logits, pooled, texts, words, top_k, min_score, neighbors))

    def iter_predict(self, phrases: list[str], top_k: int | None = None, batch_size: int = 64,
                     min_score: float | None = None) -> Iterator[list[list[tuple[str, float]]]]:
        """`predict`, one batch at a time (what `bertmap predict --file` streams)."""
        config = self.decoding.config
        check_decoding(config.min_score if min_score is None else min_score, config.top_k if top_k is None else top_k)
        return self.decode_batches(phrases, batch_size, lambda texts, logits, pooled, words:
                                    self.decoding.decode(logits, pooled, texts, words, top_k, min_score))

    def rank(self, phrases: list[str], k: int = 5, batch_size: int = 64,
             golds: list[list[int]] | None = None) -> Ranking:
        """Per phrase, the ids of its `k` most probable words after decoding and their probabilities, best first;
        with `golds` (each phrase's gold ids), also the rank of its best gold among all words. Only the top `k` of
        each batch are kept, so any number of phrases and words fits in memory."""
        ranked, scores, gold_ranks = [], [], [] if golds is not None else None

        def step(texts, logits, pooled, words):
            probabilities = self.decoding.probabilities(logits, pooled, texts)
            top = probabilities.topk(min(k, logits.shape[-1]), dim=-1)
            return top, probabilities

        for start, (top, probabilities) in zip(range(0, len(phrases), batch_size),
                                               self.decode_batches(phrases, batch_size, step)):
            ranked += top.indices.tolist()
            scores += top.values.tolist()
            if golds is not None:
                gold_ranks += best_gold_ranks(probabilities, golds[start : start + len(probabilities)])
        return Ranking(ranked, scores, gold_ranks)

    def evaluate(self, phrases: list[str], targets: list[list[str]], k: int | Sequence[int] = 5,
                 batch_size: int = 64, min_score: float | None = None,
                 return_ranking: bool = False) -> "dict[str, float] | Evaluation":
        """Score decoded predictions against gold words (`word_mapping_scores`: accuracy@1 and @k for each cut-off
        in `k`, macro-F1, ECE, coverage at `min_score`, default the decoding config's, and the median rank of the
        best gold among all words), in one pass. A gold that is not an output word is a miss, ranked after every
        word. With `return_ranking`, an `Evaluation`: the metrics, the ranking they came from (each phrase's top
        `max(k)` words) and whether each phrase's top word is a gold."""
        cutoffs = [k] if isinstance(k, numbers.Integral) else list(k)
        for cutoff in cutoffs or [k]:
            check_positive_int("k", cutoff)
        golds = gold_lists(self.gold_words(phrases, targets), self.model.config.label2id)
        ranked = self.rank(phrases, max(cutoffs), batch_size, golds=golds)
        min_score = self.decoding.config.min_score if min_score is None else min_score
        metrics = word_mapping_scores(ranked.ids, [row[0] for row in ranked.scores], golds, k, min_score,
                                      gold_ranks=ranked.gold_ranks)
        if not return_ranking:
            return metrics
        return Evaluation(metrics, ranked, [bool(ids) and ids[0] in gold for ids, gold in zip(ranked.ids, golds)])


def best_gold_ranks(probabilities: torch.Tensor, golds: list[list[int]]) -> list[int]:
    """Per row of `probabilities` (batch, num_labels), 1 + the number of words more probable than its most probable
    gold; a row without golds gets `num_labels + 1`."""
    num_labels = probabilities.shape[-1]
    ranks = []
    for row, ids in zip(probabilities, golds):
        if not ids:
            ranks.append(num_labels + 1)
            continue
        best = row[torch.tensor(ids, device=row.device)].max()
        ranks.append(1 + int((row > best).sum()))
    return ranks
