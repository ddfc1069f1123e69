"""The `"word-mapping"` pipeline: phrase(s) in, `[{"word": ..., "score": ...}, ...]` out, best first.

Saved next to the weights (with `configuration_bertmap.py`, its one relative import), so
`pipeline("word-mapping", model=repo_id, trust_remote_code=True)` works where hf_bertmap is not installed.
"""

from transformers import Pipeline

from .configuration_bertmap import normalize_phrase


class WordMappingPipeline(Pipeline):
    """Maps each phrase to its `top_k` most likely words.

    Example:

    ```python
    >>> from transformers import pipeline
    >>> mapper = pipeline("word-mapping", model="bertmap-attributes", trust_remote_code=True)
    >>> mapper(["very chonky", "large"], top_k=2)
    [[{'word': 'size', 'score': 0.41}, {'word': 'weight', 'score': 0.08}], [{'word': 'size', ...}, ...]]
    >>> mapper("very chonky", min_score=0.3)  # no word when the best one is less likely than that
    []
    ```
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def _sanitize_parameters(self, top_k: int | None = None, max_length: int | None = None,
                             min_score: float | None = None, **kwargs):
        preprocess, postprocess = {}, {}
        if min_score is not None:
            postprocess["min_score"] = min_score
        if max_length is not None:
            preprocess["max_length"] = max_length
        if top_k is not None:
            if top_k < 1:
                raise ValueError(f"top_k must be >= 1, got {top_k}")
            postprocess["top_k"] = top_k
        return preprocess, {}, postprocess

    def preprocess(self, phrase: str, max_length: int = 32):
        if not isinstance(phrase, str) or not phrase.strip():
            raise ValueError(f"expected a non-empty phrase, got {phrase!r}")
        text = normalize_phrase(phrase, getattr(self.model.config, "lowercase", True))
        return self.tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")

    def _forward(self, model_inputs):
        return {"logits": self.model(**model_inputs).logits}

    def postprocess(self, model_outputs, top_k: int = 5, min_score: float | None = None):
        """The `top_k` words best first, or none when the best is below `min_score` (default: the config's)."""
        if min_score is None:
            min_score = getattr(self.model.config, "min_score", 0.0)
        probabilities = model_outputs["logits"][0].float().softmax(dim=-1)
        scores, indices = probabilities.topk(min(top_k, probabilities.shape[-1]))
        if scores[0] < min_score:
            return []
        id2label = self.model.config.id2label
        return [{"word": id2label[i], "score": s} for s, i in zip(scores.tolist(), indices.tolist())]
