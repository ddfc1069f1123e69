"""The `"word-mapping"` pipeline: phrase(s) in, `[{"word": ..., "score": ...}, ...]` out, best first.

Saved next to the weights (with `configuration_bertmap.py` and `decoding_bertmap.py`, its relative imports), so
`pipeline("word-mapping", model=repo_id, trust_remote_code=True)` works where hf_bertmap is not installed, and
decodes exactly as `WordMapper.predict` does: with the model's own `WordMappingDecoder` (`model.decoding`, loaded
with the weights from the same revision).
"""

from transformers import Pipeline

from .decoding_bertmap import WordMappingDecoder


class WordMappingPipeline(Pipeline):
    """Maps each phrase to its `top_k` most likely words (defaults from the model's `decoding_config.json`).

    Example:

    ```python
    >>> from transformers import pipeline
    >>> mapper = pipeline("word-mapping", model="bertmap-attributes", trust_remote_code=True)
    >>> mapper(["very chonky", "large"], top_k=2)
    [[{'word': 'size', 'score': 0.61}, {'word': 'weight', 'score': 0.12}], [{'word': 'size', ...}, ...]]
    >>> mapper("very chonky", min_score=0.9)  # no word when the best one is less likely than that
    []
    ```
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    @property
    def decoding(self) -> WordMappingDecoder:
        return self.model.decoding

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, (list, tuple)) and not inputs:
            return []  # no phrases, no answers (the base class fails on an empty batch)
        return super().__call__(inputs, *args, **kwargs)

    def _sanitize_parameters(self, top_k: int | None = None, min_score: float | None = None, **kwargs):
        postprocess = {key: value for key, value in (("top_k", top_k), ("min_score", min_score)) if value is not None}
        return {}, {}, postprocess

    def preprocess(self, phrase: str):
        text = self.decoding.normalize([phrase])[0]
        inputs = self.tokenizer(text, truncation=True, max_length=self.decoding.config.max_length, return_tensors="pt")
        return {"phrase": text, **inputs}

    def _forward(self, model_inputs):
        phrase = model_inputs.pop("phrase")
        outputs = self.model(**model_inputs)
        return {"phrase": phrase, "logits": outputs.logits, "pooled_output": outputs.pooled_output}

    def postprocess(self, model_outputs, top_k: int | None = None, min_score: float | None = None):
        """The `top_k` words best first, or none when the best is below `min_score`."""
        words = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        top = self.decoding.decode(model_outputs["logits"], model_outputs["pooled_output"],
                                   [model_outputs["phrase"]], words, top_k, min_score)[0]
        return [{"word": word, "score": score} for word, score in top]
