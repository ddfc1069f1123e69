"""`WordMapper`: load, save and push a word mapper; tokenise phrases and return its top-k words with probabilities."""

import glob
import os
import shutil
import tempfile

import torch
from huggingface_hub import CommitInfo, HfApi
from safetensors import safe_open
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .configuration_bertmap import normalize_phrase
from .model_card import CARD_CONTEXT_FILE, load_card_context, render_model_card
from .modeling_bertmap import BertForWordMapping
from .pipeline_bertmap import WordMappingPipeline

WEIGHTS_FILE = "model.safetensors"
PICKLE_WEIGHTS_FILE = "pytorch_model.bin"


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


class WordMapper:
    """A trained `BertForWordMapping` with its tokenizer.

    Example:

    ```python
    >>> mapper = WordMapper.from_pretrained("bertmap-attributes")
    >>> mapper.predict(["very chonky", "fishy"], top_k=2)
    [[('size', 0.83), ('weight', 0.05)], [('smell', 0.61), ('taste', 0.12)]]
    >>> mapper.predict("very chonky", min_score=0.3)  # no word when the best one is less likely than that
    []
    >>> mapper.add_labels(["flavor"])  # a new output word, usable at once
    ['flavor']
    ```
    """

    def __init__(self, model: BertForWordMapping, tokenizer: PreTrainedTokenizerBase, max_length: int = 32,
                 source_folder: str | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        self.source_folder = source_folder  # where results and the card's inputs may be found

    @classmethod
    def from_pretrained(cls, model_name_or_path: str | os.PathLike, device: str | None = None,
                        allow_pickle: bool = False, **kwargs) -> "WordMapper":
        """Load a saved or pushed word mapper (folder or Hub id, `revision=` pins a branch or commit).

        Only safetensors weights are loaded unless `allow_pickle=True`. `kwargs` go to both `from_pretrained`.
        """
        path = str(model_name_or_path)
        if os.path.isdir(path):
            check_model_folder(path, allow_pickle)
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        model = BertForWordMapping.from_pretrained(path, use_safetensors=None if allow_pickle else True, **kwargs)
        if device is not None:
            model.to(device)
        return cls(model, tokenizer, source_folder=path if os.path.isdir(path) else None)

    def save_pretrained(self, save_directory: str | os.PathLike, repo_id: str | None = None) -> None:
        """Write the model, tokenizer and `word-mapping` pipeline code; with results from training, also the card
        (rendered for `repo_id`) and the `*_results.json` files."""
        save_directory = str(save_directory)
        WordMappingPipeline(model=self.model, tokenizer=self.tokenizer).save_pretrained(save_directory)
        source = self.source_folder
        if source is None or os.path.abspath(source) == os.path.abspath(save_directory):
            return
        for path in glob.glob(os.path.join(source, "*_results.json")) + [os.path.join(source, CARD_CONTEXT_FILE)]:
            if os.path.isfile(path):
                shutil.copy(path, save_directory)
        context = load_card_context(source)
        if context is not None:
            repo_id = repo_id or os.path.basename(os.path.abspath(save_directory))
            card = render_model_card(self.model.config, repo_id=repo_id, **context)
            card.save(os.path.join(save_directory, "README.md"))

    def push_to_hub(self, repo_id: str, private: bool | None = None, revision: str | None = None,
                    commit_message: str = "Upload word mapper with hf_bertmap", token: str | None = None,
                    create_pr: bool = False) -> CommitInfo:
        """Upload the model, tokenizer, pipeline code, card and results to `repo_id` in one commit.

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

    def add_labels(self, words: list[str]) -> list[str]:
        """Make `words` output words at once, without retraining: each is scored by how close a phrase's embedding
        is to the embedding of the word itself (see `BertForWordMapping.add_labels`).

        Words are normalised like phrases; those already in the label set are skipped. Returns the words added.
        `save_pretrained`/`push_to_hub` keep them.
        """
        lowercase = self.model.config.lowercase
        new = []
        for i, word in enumerate(words):
            if not isinstance(word, str) or not word.strip():
                raise ValueError(f"word {i}: expected a non-empty string, got {word!r}")
            word = normalize_phrase(word, lowercase)
            if word not in self.model.config.label2id and word not in new:
                new.append(word)
        if new:
            inputs = self.tokenizer(new, padding=True, truncation=True, max_length=self.max_length,
                                    return_tensors="pt")
            self.model.add_labels(new, inputs["input_ids"], inputs["attention_mask"])
            self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        return new

    def memorize(self, phrases: list[str], targets: list[str] | list[list[str]], weight: float | None = None,
                 replace: bool = False) -> None:
        """Store (phrase, target word(s)) pairs in the model's memory, usable at once: a stored phrase gets only
        its words (ranked by the classifier), and phrases near it lean the same way (`BertMapConfig.memory_weight`).

        `targets` holds one word or a list of words per phrase, each an output word already (`add_labels` first
        for new ones). The pairs are added to the memory unless `replace`; `weight` sets `memory_weight` (a model
        without a memory weight needs one). `save_pretrained`/`push_to_hub` keep the memory.
        """
        if len(phrases) != len(targets):
            raise ValueError(f"{len(phrases)} phrases but {len(targets)} targets")
        config = self.model.config
        lowercase = config.lowercase
        golds = []
        for i, (phrase, words) in enumerate(zip(phrases, targets)):
            if not isinstance(phrase, str) or not phrase.strip():
                raise ValueError(f"phrase {i}: expected a non-empty string, got {phrase!r}")
            words = [words] if isinstance(words, str) else list(words)
            ids = [config.label2id.get(normalize_phrase(w, lowercase)) for w in words]
            if not ids or None in ids:
                raise ValueError(f"phrase {i} ({phrase!r}): targets {words} must be output words; "
                                 "add new ones with add_labels first")
            golds.append(ids)
        if (weight if weight is not None else config.memory_weight) <= 0:
            raise ValueError("memorize needs a memory weight > 0 (pass weight=...)")
        embeddings = self.embed(phrases)
        width = max([len(ids) for ids in golds] + [config.memory_golds if not replace else 1])
        rows = torch.tensor([ids + [-100] * (width - len(ids)) for ids in golds], dtype=torch.long)
        if config.memory_size > 0 and not replace:
            old = self.model.memory_golds.cpu()
            old = torch.cat([old, torch.full((old.shape[0], width - old.shape[1]), -100)], dim=1)
            embeddings = torch.cat([self.model.memory_keys.cpu(), embeddings])
            rows = torch.cat([old, rows])
        self.model.write_memory(embeddings, rows, weight=weight)

    def _batches(self, phrases: list[str], batch_size: int):
        """Normalised, tokenised batches of `phrases` on the model's device."""
        lowercase = getattr(self.model.config, "lowercase", True)
        texts = [normalize_phrase(phrase, lowercase) for phrase in phrases]
        for start in range(0, len(texts), batch_size):
            yield self.tokenizer(texts[start : start + batch_size], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt").to(self.model.device)

    @torch.inference_mode()
    def embed(self, phrases: list[str], batch_size: int = 64) -> torch.Tensor:
        """The pooled embeddings (n, hidden) the head and the memory see, for normalised `phrases`."""
        chunks = [self.model.embed_inputs(inputs["input_ids"], inputs["attention_mask"]).float().cpu()
                  for inputs in self._batches(phrases, batch_size)]
        return torch.cat(chunks) if chunks else torch.empty(0, self.model.config.encoder_config.hidden_size)

    @torch.inference_mode()
    def predict_proba(self, phrases: list[str], batch_size: int = 64) -> torch.Tensor:
        """Probabilities over `self.labels`, shape (len(phrases), num_labels)."""
        chunks = [self.model(**inputs).logits.float().softmax(dim=-1) for inputs in self._batches(phrases, batch_size)]
        return torch.cat(chunks) if chunks else torch.empty(0, len(self.labels))

    def predict(
        self, phrases: str | list[str], top_k: int = 1, batch_size: int = 64, min_score: float | None = None
    ) -> list[tuple[str, float]] | list[list[tuple[str, float]]]:
        """The `top_k` (word, probability) pairs per phrase, best first. A single string gives a single list.

        A phrase whose best word has a probability below `min_score` gets an empty list (abstention); the default
        is the model's `config.min_score` (`train.py` saves 0.1; a config built by hand has 0.0, never abstain).
        """
        if min_score is None:
            min_score = self.model.config.min_score
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score}")
        single = isinstance(phrases, str)
        batch = [phrases] if single else list(phrases)
        for i, phrase in enumerate(batch):
            if not isinstance(phrase, str) or not phrase.strip():
                raise ValueError(f"phrase {i}: expected a non-empty string, got {phrase!r}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        probabilities = self.predict_proba(batch, batch_size=batch_size)
        scores, indices = probabilities.topk(min(top_k, len(self.labels)), dim=-1)
        results = [
            [(self.labels[i], float(s)) for s, i in zip(row_scores.tolist(), row_indices.tolist())]
            if row_scores[0] >= min_score else []
            for row_scores, row_indices in zip(scores, indices)
        ]
        return results[0] if single else results
