"""`WordMapper`: load, save and push a word mapper (model, tokenizer and decoding step); tokenise phrases and
return its top-k words with probabilities."""

import csv
import dataclasses
import glob
import numbers
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import torch
from huggingface_hub import CommitInfo, HfApi
from safetensors import safe_open
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .backbones import check_model_location
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
from .modeling_bertmap import BertForWordMapping
from .onnx_backend import ONNX_FILE, OnnxWordMapping, export_onnx
from .output_folder import apply_umask

WEIGHTS_FILE = "model.safetensors"
PICKLE_WEIGHTS_FILE = "pytorch_model.bin"
PROGRESS_FROM = 2048  # texts: a progress bar from this many on
BF16_EMBEDDING_FROM = 20_000  # texts: `embed` uses bfloat16 autocast on a CPU that has it from this many on


def check_safetensors_file(path: str) -> None:
    """Raise an error naming `path` if it is not a readable safetensors file."""
    try:
        with safe_open(path, framework="pt") as f:
            f.keys()
    except Exception as err:
        raise OSError(f"{path}: corrupt or unreadable safetensors file ({err})") from None


def check_model_folder(folder: str, allow_pickle: bool = False) -> None:
    """A clear error for a local folder that is not a loadable model: what is missing, or pickle-only weights."""
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise FileNotFoundError(f"{folder}: no config.json, so this is not a saved model folder")
    names = set(os.listdir(folder))
    if WEIGHTS_FILE in names:
        return check_safetensors_file(os.path.join(folder, WEIGHTS_FILE))
    if f"{WEIGHTS_FILE}.index.json" in names:
        return
    if PICKLE_WEIGHTS_FILE in names or f"{PICKLE_WEIGHTS_FILE}.index.json" in names:
        if allow_pickle:
            return
        raise ValueError(
            f"{folder}: only {PICKLE_WEIGHTS_FILE} (a pickle, which can run code when loaded) and no {WEIGHTS_FILE}; "
            "pass allow_pickle=True if you trust its source"
        )
    raise FileNotFoundError(f"{folder}: no weights ({WEIGHTS_FILE}) beside config.json")


CORRECTIONS_FILE = "corrections.tsv"


def read_corrections(folder: str) -> list[tuple[str, str]]:
    """The (phrase, word) pairs of `folder`'s corrections file, oldest first (none without one)."""
    from .data import read_pair_file

    path = os.path.join(folder, CORRECTIONS_FILE)
    if not os.path.isfile(path):
        return []
    rows = read_pair_file(path, ("phrase", "target"))
    return list(zip(rows["phrase"], rows["target"]))


def write_corrections(folder: str, pairs: list[tuple[str, str]], append: bool = False) -> None:
    """Write (or append) (phrase, word) pairs to `folder`'s corrections file, a pair file with a header."""
    path = os.path.join(folder, CORRECTIONS_FILE)
    new = not append or not os.path.isfile(path)
    with open(path, "w" if new else "a", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        if new:
            writer.writerow(["phrase", "target"])
        writer.writerows(pairs)


class Ranking(NamedTuple):
    """`WordMapper.rank`'s answer, per phrase: its best word ids (best first), their probabilities, and the 1-based
    rank of its best gold among all words (`None` when no golds were given)."""

    ids: list[list[int]]
    scores: list[list[float]]
    gold_ranks: list[int] | None = None


class WordMapper:
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

    def __init__(self, model: BertForWordMapping, tokenizer: PreTrainedTokenizerBase, source_folder: str | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.source_folder = source_folder  # where results, the card's inputs and corrections may be found
        self.corrections: list[tuple[str, str]] = []  # `correct`'s pairs, kept by `save_pretrained`

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
        mapper = cls(model, tokenizer, source_folder=path if os.path.isdir(path) else None)
        if mapper.source_folder is not None:
            mapper.load_corrections()
        return mapper

    def load_corrections(self) -> None:
        """Read the source folder's corrections file; pairs corrected after the model was last saved (not in its
        memory yet) are taught again, as `correct` does."""
        self.corrections = read_corrections(self.source_folder)
        missing = [(phrase, word) for phrase, word in self.corrections if not self._stores(phrase, word)]
        if missing:
            self.add_labels(list(dict.fromkeys(w for _, w in missing if w not in self.model.config.label2id)))
            self._store([phrase for phrase, _ in missing], [[word] for _, word in missing])

    def save_pretrained(self, save_directory: str | os.PathLike, repo_id: str | None = None) -> None:
        """Write the model (with its decoding step), tokenizer and `word-mapping` pipeline code; with results from
        training, also the card (rendered for `repo_id`) and the `*_results.json` files."""
        save_directory = str(save_directory)
        if isinstance(self.model, OnnxWordMapping):
            raise ValueError("save_pretrained needs the PyTorch model: load it without backend='onnx'")
        self.model.save_pretrained(save_directory)  # with the decoding step and the pipeline code
        self.tokenizer.save_pretrained(save_directory)
        if self.corrections:
            write_corrections(save_directory, self.corrections)
        for weights in glob.glob(os.path.join(save_directory, "*.safetensors")):
            apply_umask(weights)  # safetensors writes through a private temporary file (0600)
        source = self.source_folder
        if source is None or os.path.abspath(source) == os.path.abspath(save_directory):
            return
        for path in glob.glob(os.path.join(source, "*_results.json")):
            shutil.copy(path, save_directory)
        card_data = BertMapCardData.load(source)
        if card_data is not None:
            for picture in card_data.pictures:
                if os.path.isfile(os.path.join(source, picture)):
                    shutil.copy(os.path.join(source, picture), save_directory)
            card_data.save(save_directory)
            repo_id = repo_id or os.path.basename(os.path.abspath(save_directory))
            card = card_data.render(self.model.config, self.decoding.config, repo_id)
            card.save(os.path.join(save_directory, "README.md"))

    def export_onnx(self, output_dir: str | os.PathLike) -> str:
        """Save this mapper into `output_dir` and export its network to ONNX there (`model.onnx`), ready for
        `WordMapper.from_pretrained(output_dir, backend="onnx")`; returns the ONNX file's path."""
        self.save_pretrained(output_dir)
        return export_onnx(self.model, self.tokenizer, output_dir)

    def push_to_hub(self, repo_id: str, private: bool | None = None, revision: str | None = None,
                    commit_message: str = "Upload word mapper with hf_bertmap", token: str | None = None,
                    create_pr: bool = False) -> CommitInfo:
        """Upload the model, tokenizer, decoding step, pipeline code, card and results to `repo_id` in one commit.

        The repo is created if needed (`private` then applies) and so is the `revision` branch. Files that did not
        change are skipped, and a push that changes nothing makes no commit.
        """
        api = HfApi(token=token)
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder, repo_id=repo_id)
            return api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision,
                                     commit_message=commit_message, create_pr=create_pr)

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
        new = []
        for word in self.decoding.normalize(words, what="word"):
            if word not in self.model.config.label2id and word not in new:
                new.append(word)
        if not new:
            return new
        texts = self.word_texts(new, descriptions)
        if self.model.config.head == "text":
            tokens = self.tokenize_word_texts(texts)
            self.model.add_labels(new, self.model.encode_word_texts(*tokens), tokens)
        else:
            self.model.add_labels(new, self.embed(texts, normalized=True))
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
        tokens = self.tokenize_word_texts(self.word_texts(self.words, descriptions))
        self.model.classifier.set_texts(*tokens)
        self.model.encode_word_rows()

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

    def correct(self, phrase: str, word: str, add_word: bool = False) -> None:
        """Teach the model that `phrase` means `word`, at once and for good: the phrase becomes a stored phrase whose
        only word is `word` (whatever the memory weight), the pair is appended to the corrections file
        (`corrections.tsv`, a pair file `train.py --train_file` reads as is) of the model's local folder, and
        `save_pretrained` keeps both. A word that is not an output word is refused unless `add_word`, which adds it
        first (`add_labels`)."""
        (text,) = self.decoding.normalize([phrase])
        (target,) = self.decoding.normalize([word], what="word")
        if target not in self.model.config.label2id:
            if not add_word:
                raise ValueError(f"{word!r} is not an output word of this model; choose one of its words, or pass "
                                 "add_word=True to add it")
            self.add_labels([target])
        self._store([text], [[target]])
        self.corrections.append((text, target))
        if self.source_folder is not None:
            write_corrections(self.source_folder, [(text, target)], append=True)

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

    @torch.inference_mode()
    def iter_outputs(self, phrases: list[str], batch_size: int = 64,
                     normalized: bool = False) -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor]]:
        """(normalised phrases, logits, pooled embeddings) per batch: the model's plain outputs, before decoding."""
        for texts, inputs in self.batches(phrases, batch_size, normalized):
            outputs = self.model(**inputs)
            yield texts, outputs.logits.float(), outputs.pooled_output.float()

    def embed(self, phrases: list[str], batch_size: int = 256, normalized: bool = False) -> torch.Tensor:
        """The pooled embeddings (n, hidden) the head and the memory see, in batches (label names, the memory,
        `add_labels`: any number of texts).

        More than `BF16_EMBEDDING_FROM` texts on a float32 model on a CPU with native bfloat16 are embedded under
        bfloat16 autocast: 1.7x faster on 2 cores, cosine to the float32 embeddings >= 0.9999 (77,503 label names
        in about 80 s instead of 130 s)."""
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
        chunks = [self.decoding.probabilities(logits, pooled, texts, config=config).cpu()
                  for texts, logits, pooled in self.iter_outputs(phrases, batch_size)]
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
        words = self.words
        check_positive_int("neighbors", neighbors)
        for texts, logits, pooled in self.iter_outputs(phrases, batch_size):
            yield self.decoding.explain(logits, pooled, texts, words, top_k, min_score, neighbors)

    def iter_predict(self, phrases: list[str], top_k: int | None = None, batch_size: int = 64,
                     min_score: float | None = None) -> Iterator[list[list[tuple[str, float]]]]:
        """`predict`, one batch at a time (what `bertmap predict --file` streams)."""
        words = self.words
        config = self.decoding.config
        check_decoding(config.min_score if min_score is None else min_score, config.top_k if top_k is None else top_k)
        for texts, logits, pooled in self.iter_outputs(phrases, batch_size):
            yield self.decoding.decode(logits, pooled, texts, words, top_k, min_score)

    def rank(self, phrases: list[str], k: int = 5, batch_size: int = 64,
             golds: list[list[int]] | None = None) -> Ranking:
        """Per phrase, the ids of its `k` most probable words after decoding and their probabilities, best first;
        with `golds` (each phrase's gold ids), also the rank of its best gold among all words. Only the top `k` of
        each batch are kept, so any number of phrases and words fits in memory."""
        ranked, scores, gold_ranks = [], [], [] if golds is not None else None
        for start, (texts, logits, pooled) in zip(range(0, len(phrases), batch_size),
                                                  self.iter_outputs(phrases, batch_size)):
            probabilities = self.decoding.probabilities(logits, pooled, texts)
            top = probabilities.topk(min(k, logits.shape[-1]), dim=-1)
            ranked += top.indices.tolist()
            scores += top.values.tolist()
            if golds is not None:
                gold_ranks += best_gold_ranks(probabilities, golds[start : start + len(texts)])
        return Ranking(ranked, scores, gold_ranks)

    def evaluate(self, phrases: list[str], targets: list[list[str]], k: int | Sequence[int] = 5,
                 batch_size: int = 64, min_score: float | None = None,
                 ranked: Ranking | None = None) -> dict[str, float]:
        """Score decoded predictions against gold words (`word_mapping_scores`: accuracy@1 and @k for each cut-off
        in `k`, macro-F1, ECE, coverage at `min_score`, default the decoding config's, and the median rank of the
        best gold among all words). A gold that is not an output word is a miss, ranked after every word.
        `ranked` is `rank(phrases, max(k), golds=...)`'s answer when the caller already has it (no second pass)."""
        cutoffs = [k] if isinstance(k, numbers.Integral) else list(k)
        for cutoff in cutoffs or [k]:
            check_positive_int("k", cutoff)
        golds = gold_lists(self.gold_words(phrases, targets), self.model.config.label2id)
        if ranked is None or ranked.gold_ranks is None:
            ranked = self.rank(phrases, max(cutoffs), batch_size, golds=golds)
        min_score = self.decoding.config.min_score if min_score is None else min_score
        return word_mapping_scores(ranked.ids, [row[0] for row in ranked.scores], golds, k, min_score,
                                   gold_ranks=ranked.gold_ranks)


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
