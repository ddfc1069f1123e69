"""Decoding: how a word mapper's logits become words. One step, shared by `WordMapper`, the `word-mapping`
pipeline, the CLI, `train.py`'s final evaluation and the benchmarks.

`BertForWordMapping.forward` is a plain classifier; everything between its logits and the words a user sees lives
here, the way `generate()` and `generation_config.json` live beside a language model:

- the phrase is normalised (`normalize_phrase`) and truncated to `max_length` tokens, as in training;
- the logits are divided by the calibration `temperature` and soft-maxed;
- a *memory* of known phrases (their normalised text, pooled embedding and gold words) adds what is known: a
  stored phrase, matched on its text, gets only its stored words (a lexicon, ranked by the classifier); any other
  phrase mixes a vote of its `memory_neighbors` nearest stored phrases into the probabilities, with a share that
  grows with how close the nearest one is (`memory_weight`, scaled down to 0 at `memory_closeness`), so a lone
  far neighbour cannot outvote the classifier while a near-identical stored phrase still decides;
- the `top_k` best words are returned, none when the best is below `min_score` (abstention).

Settings are saved as `decoding_config.json`, the memory as `memory.safetensors`, beside the model. This file is
copied next to the weights with the pipeline code and imports nothing from `hf_bertmap` but its configuration.
"""

import json
import numbers
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch
from safetensors.torch import load_file, save_file

from .configuration_bertmap import normalize_phrase

DECODING_CONFIG_FILE = "decoding_config.json"
MEMORY_FILE = "memory.safetensors"
MAX_PHRASE_CHARACTERS = 500  # a phrase typed into the page or sent to a server (and a correction's word)
# Keyword arguments of `from_pretrained` that say where files come from; the decoding files are read with the same
# ones as the weights, so a pinned revision gives the decoding step saved with those weights.
HUB_KWARGS = ("revision", "token", "cache_dir", "local_files_only", "force_download", "proxies", "subfolder")


@dataclass
class DecodingConfig:
    r"""
    How logits become words (saved as `decoding_config.json`).

    Args:
        temperature (`float`, defaults to 1.0):
            Divides the logits before the softmax; fitted on validation after training to calibrate probabilities.
        min_score (`float`, defaults to 0.0):
            A phrase whose best word has a lower probability gets no word; 0.0 never abstains.
        top_k (`int`, defaults to 1):
            Words returned per phrase, best first.
        max_length (`int`, defaults to 32):
            Phrases are truncated to this many tokens (the training `--max_seq_length`).
        lowercase (`bool`, defaults to `True`):
            Whether phrases are lower-cased before tokenisation, as in training.
        memory_weight (`float`, defaults to 0.0):
            Share of the nearest stored phrases' vote in the probabilities of a phrase that is not stored (all of
            it when the nearest is identical; `memory_closeness` scales it down with distance).
        memory_neighbors (`int`, defaults to 30):
            Stored phrases that vote.
        memory_temperature (`float`, defaults to 0.05):
            Sharpness of the neighbors' softmax over their cosine similarities.
        memory_closeness (`float`, *optional*):
            The cosine similarity of the nearest stored phrase at which the vote stops counting: its share is
            `memory_weight * (s - memory_closeness) / (1 - memory_closeness)` for a nearest similarity `s` between
            the two, `memory_weight` at `s = 1` and 0 at or below `memory_closeness`. `None` (models saved before
            it existed): the vote always has `memory_weight`.
    """

    temperature: float = 1.0
    min_score: float = 0.0
    top_k: int = 1
    max_length: int = 32
    lowercase: bool = True
    memory_weight: float = 0.0
    memory_neighbors: int = 30
    memory_temperature: float = 0.05
    memory_closeness: float | None = None

    def __post_init__(self):
        check_decoding(self.min_score, self.top_k)
        if self.temperature <= 0:
            raise ValueError(f"DecodingConfig: temperature must be > 0, got {self.temperature}")
        check_unit_interval("DecodingConfig: memory_weight", self.memory_weight)
        if self.memory_neighbors < 1 or self.memory_temperature <= 0 or self.max_length < 1:
            raise ValueError("DecodingConfig: memory_neighbors and max_length must be >= 1, memory_temperature > 0")
        if self.memory_closeness is not None:
            check_unit_interval("DecodingConfig: memory_closeness", self.memory_closeness)
            if self.memory_closeness >= 1:
                raise ValueError("DecodingConfig: memory_closeness must be below 1 (or None)")

    def memory_share(self, closest: torch.Tensor) -> torch.Tensor:
        """The memory vote's share of each phrase's probabilities, from the cosine similarity of its nearest stored
        phrase `closest` (batch,)."""
        if self.memory_closeness is None:
            return torch.full_like(closest, self.memory_weight)
        scale = ((closest - self.memory_closeness) / (1 - self.memory_closeness)).clamp(0.0, 1.0)
        return self.memory_weight * scale

    @classmethod
    def from_dict(cls, values: dict) -> "DecodingConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    def save(self, folder: str | os.PathLike) -> None:
        with open(os.path.join(folder, DECODING_CONFIG_FILE), "w") as f:
            json.dump(asdict(self), f, indent=2, sort_keys=True)


def check_unit_interval(name: str, value) -> None:
    """Refuse anything but a number in [0, 1] for the setting `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def check_positive_int(name: str, value) -> None:
    """Refuse anything but an integer >= 1 (a bool, a float, a string...) for the argument `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def check_decoding(min_score: float, top_k: int) -> None:
    """Refuse a `min_score` outside [0, 1] or a `top_k` that is not an integer >= 1, naming the argument."""
    check_unit_interval("min_score", min_score)
    check_positive_int("top_k", top_k)


class PhraseMemory:
    """Known phrases: their normalised text, unit pooled embeddings `keys` (n, hidden) and gold ids `golds`
    (n, max_golds), -100 padded."""

    def __init__(self, phrases: list[str], keys: torch.Tensor, golds: torch.Tensor):
        if golds.dim() == 1:
            golds = golds.unsqueeze(-1)
        if not len(phrases) == keys.shape[0] == golds.shape[0]:
            raise ValueError(f"memory: {len(phrases)} phrases, {keys.shape[0]} embeddings, {golds.shape[0]} gold rows")
        self.phrases = list(phrases)
        self.keys = torch.nn.functional.normalize(keys.float(), dim=-1)
        self.golds = golds.long()
        self.index = {phrase: i for i, phrase in enumerate(self.phrases)}  # the last copy of a phrase wins

    def __len__(self) -> int:
        return len(self.phrases)

    def extend(self, other: "PhraseMemory") -> "PhraseMemory":
        width = max(self.golds.shape[1], other.golds.shape[1])

        def pad(golds: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.pad(golds, (0, width - golds.shape[1]), value=-100)

        return PhraseMemory(self.phrases + other.phrases, torch.cat([self.keys, other.keys]),
                            torch.cat([pad(self.golds), pad(other.golds)]))

    def save(self, folder: str | os.PathLike) -> None:
        save_file({"keys": self.keys.contiguous(), "golds": self.golds.contiguous()},
                  os.path.join(folder, MEMORY_FILE), metadata={"phrases": json.dumps(self.phrases)})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PhraseMemory":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                phrases = json.loads((f.metadata() or {})["phrases"])
            tensors = load_file(str(path))
            return cls(phrases, tensors["keys"], tensors["golds"])
        except (KeyError, ValueError, TypeError, OSError) as err:
            missing = f"no {err}" if isinstance(err, KeyError) else " ".join(str(err).split())
            raise ValueError(f"{path}: not a phrase memory ({missing})") from None

    def check(self, hidden_size: int, num_labels: int, path: str) -> None:
        """Refuse a memory that does not fit the model it was loaded with, naming its file."""
        if self.keys.shape[-1] != hidden_size:
            raise ValueError(f"{path}: its embeddings have {self.keys.shape[-1]} dimensions, the model's "
                             f"{hidden_size}")
        if len(self) and int(self.golds.max()) >= num_labels:
            raise ValueError(f"{path}: a stored phrase's word id {int(self.golds.max())} is not among the model's "
                             f"{num_labels} output words")


class Decomposition(NamedTuple):
    """`WordMappingDecoder.decompose`'s answer: `probabilities` (batch, num_labels), what users get, as the sum of
    `classifier` and `memory` (each word's share from the calibrated classifier and from the memory vote), per
    phrase its index in the memory when it is a stored phrase (None otherwise), and the memory vote's share of each
    phrase's probabilities `memory_share` (batch,)."""

    probabilities: torch.Tensor
    classifier: torch.Tensor
    memory: torch.Tensor
    stored: list[int | None]
    memory_share: torch.Tensor


class MemoryVote(NamedTuple):
    """`WordMappingDecoder.memory_vote`'s answer: the nearest stored phrases' vote `votes` (batch, num_labels), each
    row summing to 1, and the cosine similarity of each phrase's nearest stored phrase `closest` (batch,)."""

    votes: torch.Tensor
    closest: torch.Tensor


def pad_golds(golds: Sequence[int | Sequence[int]]) -> torch.Tensor:
    """(n, max_golds) gold ids, each row padded with -100 (at least one column): the `labels` of a batch."""
    rows = [[gold] if isinstance(gold, int) else list(gold) for gold in golds]
    width = max([1] + [len(row) for row in rows])
    return torch.tensor([row + [-100] * (width - len(row)) for row in rows], dtype=torch.long).view(-1, width)


def multi_hot(golds: torch.Tensor, num_labels: int) -> torch.Tensor:
    """(batch, num_labels) 0/1 float rows from gold ids of shape (batch,) or (batch, max_golds) padded with -100."""
    if golds.dim() == 1:
        golds = golds.unsqueeze(-1)
    return spread(torch.ones(golds.shape, device=golds.device), golds, num_labels).clamp_(max=1.0)


def spread(shares: torch.Tensor, golds: torch.Tensor, num_labels: int) -> torch.Tensor:
    """(batch, num_labels) mass from `shares` (batch, ...) placed on the gold ids `golds` (batch, ...), -100 padded
    (a padded id carries no mass)."""
    out = torch.zeros(golds.shape[0], num_labels, device=golds.device)
    shares = shares * (golds >= 0)
    return out.scatter_add_(1, golds.clamp(min=0).flatten(1), shares.flatten(1).float())


class WordMappingDecoder:
    """Turns a batch of logits (and pooled embeddings and phrases, for the memory) into probabilities and words.

    Example:

    ```python
    >>> decoder = WordMappingDecoder.from_pretrained("bertmap-attributes")
    >>> outputs = model(**inputs)
    >>> decoder.decode(outputs.logits, outputs.pooled_output, ["very chonky"], words, top_k=2)
    [[('size', 0.61), ('weight', 0.12)]]
    ```
    """

    def __init__(self, config: DecodingConfig | None = None, memory: PhraseMemory | None = None):
        self.config = config or DecodingConfig()
        self.memory = memory

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **hub_kwargs) -> "WordMappingDecoder":
        """Read `decoding_config.json` and `memory.safetensors` from a model folder or Hub repo; a model saved
        without them decodes with the defaults and no memory."""
        from transformers.utils import cached_file

        def find(filename: str) -> str | None:
            if os.path.isdir(name_or_path):
                path = os.path.join(name_or_path, hub_kwargs.get("subfolder") or "", filename)
                return path if os.path.isfile(path) else None
            return cached_file(str(name_or_path), filename, _raise_exceptions_for_missing_entries=False,
                               _raise_exceptions_for_connection_errors=False, **hub_kwargs)

        config_path, memory_path = find(DECODING_CONFIG_FILE), find(MEMORY_FILE)
        config = DecodingConfig()
        if config_path is not None:
            try:
                with open(config_path) as f:
                    values = json.load(f)
                if not isinstance(values, dict):
                    raise ValueError(f"expected an object of settings, got {type(values).__name__}")
                config = DecodingConfig.from_dict(values)
            except (ValueError, TypeError) as err:
                raise ValueError(f"{config_path}: not a decoding config ({' '.join(str(err).split())})") from None
        return cls(config, PhraseMemory.load(memory_path) if memory_path is not None else None)

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        self.config.save(folder)
        if self.memory is not None and len(self.memory):
            self.memory.save(folder)
        elif os.path.isfile(os.path.join(folder, MEMORY_FILE)):
            os.remove(os.path.join(folder, MEMORY_FILE))

    def normalize(self, phrases: list[str], what: str = "phrase") -> list[str]:
        """Check and normalise phrases (or words: `what`) as training did; an empty one is refused, naming its
        position."""
        texts = []
        for i, phrase in enumerate(phrases):
            if not isinstance(phrase, str) or not phrase.strip():
                raise ValueError(f"{what} {i}: expected a non-empty string, got {phrase!r}")
            texts.append(normalize_phrase(phrase, self.config.lowercase))
        return texts

    def probabilities(self, logits: torch.Tensor, embeddings: torch.Tensor | None = None,
                      phrases: list[str] | None = None, config: DecodingConfig | None = None,
                      vote: "MemoryVote | None" = None) -> torch.Tensor:
        """Probabilities (batch, num_labels) of normalised `phrases` from their `logits` and pooled `embeddings`.

        `config` decodes instead of `self.config`, which stays as it is (a fit passes
        `dataclasses.replace(decoding.config, temperature=...)`); `vote` is `memory_vote(embeddings, ...)` computed
        already (the same for every setting tried on validation)."""
        return self.decompose(logits, embeddings, phrases, config, vote).probabilities

    def decompose(self, logits: torch.Tensor, embeddings: torch.Tensor | None = None,
                  phrases: list[str] | None = None, config: DecodingConfig | None = None,
                  vote: "MemoryVote | None" = None) -> "Decomposition":
        """`probabilities` with where they come from: the calibrated classifier's share, the memory vote's share
        (`memory_share` of the nearest stored phrases' vote) and, per phrase, its index in the memory when it is a
        stored phrase (it then gets only its stored words, ranked by the classifier)."""
        config = self.config if config is None else config
        classifier = (logits.float() / config.temperature).softmax(dim=-1)
        memory = self.memory
        share = torch.zeros(len(classifier), device=classifier.device)
        if memory is None or not len(memory) or phrases is None:
            return Decomposition(classifier, classifier, torch.zeros_like(classifier), [None] * len(classifier), share)
        num_labels = classifier.shape[-1]
        golds = memory.golds.to(classifier.device)
        if config.memory_weight > 0 and embeddings is not None:
            vote = self.memory_vote(embeddings, num_labels, config) if vote is None else vote
            share = config.memory_share(vote.closest.to(classifier.device))
            from_classifier = (1 - share).unsqueeze(-1) * classifier
            from_memory = share.unsqueeze(-1) * vote.votes.to(classifier.device)
        else:
            from_classifier, from_memory = classifier.clone(), torch.zeros_like(classifier)
        probabilities = from_classifier + from_memory
        stored = [memory.index.get(phrase) for phrase in phrases]
        for row, i in enumerate(stored):
            if i is not None:  # a known phrase: only its stored words, ranked by the classifier
                known = multi_hot(golds[i : i + 1], num_labels)[0]
                if (known > 0).any():
                    ranked = (classifier[row] + 1e-12) * (known > 0)
                    probabilities[row] = from_classifier[row] = ranked / ranked.sum()
                    from_memory[row] = 0.0
                    share[row] = 0.0
        return Decomposition(probabilities, from_classifier, from_memory, stored, share)

    def nearest(self, embeddings: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(cosine similarities, memory indices) of each embedding's `k` nearest stored phrases, (batch, k) each."""
        keys = self.memory.keys.to(embeddings.device)
        queries = torch.nn.functional.normalize(embeddings.float(), dim=-1)
        top = (queries @ keys.T).topk(min(k, len(self.memory)), dim=-1)
        return top.values, top.indices

    def explain(self, logits: torch.Tensor, embeddings: torch.Tensor | None, phrases: list[str], words: list[str],
                top_k: int | None = None, min_score: float | None = None, neighbors: int = 5) -> list[dict]:
        """Why each phrase gets its words, from the very `decompose` that `decode` uses: per phrase its `top_k`
        words with their probability and the classifier's and the memory vote's shares of it (the words and
        probabilities `decode` gives, or, when the best is below `min_score`, the candidates it withheld), whether it
        abstained, whether the phrase is a stored one, the memory vote's share of its probabilities (scaled by how
        close its nearest stored phrase is), and its `neighbors` nearest stored phrases with their words and cosine
        similarity."""
        min_score = self.config.min_score if min_score is None else min_score
        check_decoding(min_score, self.config.top_k if top_k is None else top_k)
        parts = self.decompose(logits, embeddings, phrases)
        candidates = self.select(parts.probabilities, words, top_k, 0.0)  # `decode`'s words unless it abstains
        index = {word: i for i, word in enumerate(words)}
        near = None
        if self.memory is not None and len(self.memory) and embeddings is not None and neighbors > 0:
            near = self.nearest(embeddings, neighbors)
        explanations = []
        for row, phrase in enumerate(phrases):
            explanation = {
                "phrase": phrase,
                "words": [{"word": word, "score": score,
                           "classifier": float(parts.classifier[row, index[word]]),
                           "memory": float(parts.memory[row, index[word]])} for word, score in candidates[row]],
                "abstained": candidates[row][0][1] < min_score,  # `select`'s rule
                "stored": parts.stored[row] is not None,
                "memory_share": float(parts.memory_share[row]),
                "neighbors": [],
            }
            if near is not None:
                for similarity, i in zip(near[0][row].tolist(), near[1][row].tolist()):
                    explanation["neighbors"].append({
                        "phrase": self.memory.phrases[i], "similarity": similarity,
                        "words": [words[g] for g in self.memory.golds[i].tolist() if 0 <= g < len(words)]})
            explanations.append(explanation)
        return explanations

    def memory_vote(self, embeddings: torch.Tensor, num_labels: int,
                    config: DecodingConfig | None = None) -> MemoryVote:
        """The vote (batch, num_labels) of each phrase's `memory_neighbors` nearest stored phrases (a softmax of
        their cosine similarities over `memory_temperature`, each neighbor's share split over its words) and the
        similarity of the nearest, with `config`'s settings or else `self.config`'s."""
        config = self.config if config is None else config
        golds = self.memory.golds.to(embeddings.device)
        similarities, indices = self.nearest(embeddings, config.memory_neighbors)  # (batch, k)
        neighbors = golds[indices]  # (batch, k, max_golds)
        valid = (neighbors >= 0).float()
        split = valid / valid.sum(dim=-1, keepdim=True).clamp(min=1)  # each neighbor's words share its vote
        weights = (similarities / config.memory_temperature).softmax(dim=-1)
        return MemoryVote(spread(weights.unsqueeze(-1) * split, neighbors, num_labels), similarities[:, 0])

    def select(self, probabilities: torch.Tensor, words: list[str], top_k: int | None = None,
               min_score: float | None = None) -> list[list[tuple[str, float]]]:
        """Per row, the `top_k` (word, probability) pairs best first, or `[]` when the best is below `min_score`
        (defaults: the config's). Words of probability 0 are never listed (a stored phrase has only its words)."""
        top_k = self.config.top_k if top_k is None else top_k
        min_score = self.config.min_score if min_score is None else min_score
        check_decoding(min_score, top_k)
        scores, indices = probabilities.topk(min(top_k, probabilities.shape[-1]), dim=-1)
        return [
            [(words[i], s) for s, i in zip(row_scores.tolist(), row_indices.tolist()) if s > 0]
            if row_scores[0] >= min_score else []
            for row_scores, row_indices in zip(scores, indices)
        ]

    def decode(self, logits: torch.Tensor, embeddings: torch.Tensor | None, phrases: list[str], words: list[str],
               top_k: int | None = None, min_score: float | None = None) -> list[list[tuple[str, float]]]:
        """`probabilities` then `select`: the words for a batch of normalised phrases."""
        return self.select(self.probabilities(logits, embeddings, phrases), words, top_k, min_score)


__all__ = ["DecodingConfig", "PhraseMemory", "WordMappingDecoder", "MemoryVote", "Decomposition", "check_decoding",
           "check_positive_int", "check_unit_interval", "multi_hot", "pad_golds",
           "DECODING_CONFIG_FILE", "MAX_PHRASE_CHARACTERS",
           "MEMORY_FILE", "HUB_KWARGS"]
