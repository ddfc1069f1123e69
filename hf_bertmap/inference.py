"""`WordMapper`: tokenise phrases and return the model's top-k words with probabilities."""

import os

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .data import normalize_text
from .modeling_bertmap import BertForWordMapping


class WordMapper:
    """A trained `BertForWordMapping` with its tokenizer.

    Example:

    ```python
    >>> mapper = WordMapper.from_pretrained("bertmap-attributes")
    >>> mapper.predict(["very chonky", "fishy"], top_k=2)
    [[('size', 0.83), ('weight', 0.05)], [('smell', 0.61), ('taste', 0.12)]]
    ```
    """

    def __init__(self, model: BertForWordMapping, tokenizer: PreTrainedTokenizerBase, max_length: int = 32):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

    @classmethod
    def from_pretrained(cls, model_name_or_path: str | os.PathLike, device: str | None = None, **kwargs) -> "WordMapper":
        """Load a saved or pushed word mapper (folder or Hub id); `kwargs` go to both `from_pretrained` calls."""
        tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, **kwargs)
        model = BertForWordMapping.from_pretrained(model_name_or_path, **kwargs)
        if device is not None:
            model.to(device)
        return cls(model, tokenizer)

    @torch.inference_mode()
    def predict_proba(self, phrases: list[str], batch_size: int = 64) -> torch.Tensor:
        """Probabilities over `self.labels`, shape (len(phrases), num_labels)."""
        lowercase = getattr(self.model.config, "lowercase", True)
        texts = [normalize_text(phrase, lowercase) for phrase in phrases]
        chunks = []
        for start in range(0, len(texts), batch_size):
            inputs = self.tokenizer(
                texts[start : start + batch_size], padding=True, truncation=True, max_length=self.max_length,
                return_tensors="pt",
            ).to(self.model.device)
            chunks.append(self.model(**inputs).logits.float().softmax(dim=-1))
        if not chunks:
            return torch.empty(0, len(self.labels))
        return torch.cat(chunks)

    def predict(
        self, phrases: str | list[str], top_k: int = 1, batch_size: int = 64
    ) -> list[tuple[str, float]] | list[list[tuple[str, float]]]:
        """The `top_k` (word, probability) pairs per phrase, best first. A single string gives a single list."""
        single = isinstance(phrases, str)
        batch = [phrases] if single else list(phrases)
        for i, phrase in enumerate(batch):
            if not isinstance(phrase, str) or not phrase.strip():
                raise ValueError(f"phrase {i}: expected a non-empty string, got {phrase!r}")
        probabilities = self.predict_proba(batch, batch_size=batch_size)
        k = min(top_k, len(self.labels))
        if k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        scores, indices = probabilities.topk(k, dim=-1) if len(batch) else (probabilities, probabilities)
        results = [
            [(self.labels[i], float(s)) for s, i in zip(row_scores.tolist(), row_indices.tolist())]
            for row_scores, row_indices in zip(scores, indices)
        ]
        return results[0] if single else results
