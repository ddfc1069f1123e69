"""The Inference Endpoints handler written beside every saved or pushed model (`handler.py`, with its
`requirements.txt`): a Hugging Face Inference Endpoint of the model's repository runs it as it is, with the model's
own `word-mapping` pipeline, so hf_bertmap need not be installed there. `bertmap serve` (`serving.py`) is the server
to run elsewhere; both take the same requests and refuse the same bad ones."""

import os

from .decoding_bertmap import MAX_PHRASE_CHARACTERS
from .model_card import MIN_TRANSFORMERS

MAX_PHRASES_PER_REQUEST = 256
HANDLER_FILE = "handler.py"

ENDPOINT_HANDLER = '''"""A Hugging Face Inference Endpoints handler for this word mapper: its own `word-mapping`
pipeline (the code travels with the model, so hf_bertmap need not be installed).

Request: {{"inputs": "phrase" or ["phrase", ...], "parameters": {{"top_k": 3, "min_score": 0.1}}}}
Answer: [{{"word": ..., "score": ...}}, ...] for a phrase, one such list per phrase for a list.
"""

from transformers import pipeline

MAX_PHRASES = {max_phrases}
MAX_CHARACTERS = {max_characters}


class EndpointHandler:
    def __init__(self, path=""):
        self.pipeline = pipeline("word-mapping", model=path or ".", trust_remote_code=True)

    def __call__(self, data):
        inputs = data.get("inputs", data) if isinstance(data, dict) else data
        parameters = (data.get("parameters") if isinstance(data, dict) else None) or {{}}
        phrases = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(phrases, list) or not phrases or len(phrases) > MAX_PHRASES:
            raise ValueError(f"inputs: give a phrase or a list of 1 to {{MAX_PHRASES}} phrases")
        for i, phrase in enumerate(phrases):
            if not isinstance(phrase, str) or not phrase.strip() or len(phrase) > MAX_CHARACTERS:
                raise ValueError(f"inputs[{{i}}]: expected a non-empty string of at most {{MAX_CHARACTERS}} characters")
        unknown = sorted(set(parameters) - {{"top_k", "min_score"}})
        if unknown:
            raise ValueError(f"parameters: unknown {{unknown}}; use top_k and min_score")
        return self.pipeline(inputs, **parameters)
'''


def write_endpoint_handler(folder: str) -> None:
    """Write `handler.py` and its `requirements.txt` into a model folder, for Inference Endpoints."""
    with open(os.path.join(folder, HANDLER_FILE), "w", encoding="utf-8") as f:
        f.write(ENDPOINT_HANDLER.format(max_phrases=MAX_PHRASES_PER_REQUEST, max_characters=MAX_PHRASE_CHARACTERS))
    with open(os.path.join(folder, "requirements.txt"), "w", encoding="utf-8") as f:
        f.write(f"transformers>={MIN_TRANSFORMERS}\nsafetensors\n")


__all__ = ["write_endpoint_handler", "ENDPOINT_HANDLER", "HANDLER_FILE", "MAX_PHRASES_PER_REQUEST"]
