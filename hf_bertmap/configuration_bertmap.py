"""BertMap configuration: an encoder sub-config plus the pooling, head and label mapping of the word mapper.

This file is copied next to the weights by `save_pretrained` and must import nothing from `hf_bertmap`.
"""

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

POOLINGS = ("mean", "cls", "pooler", "last")
HEADS = ("labels", "vocab")
SCORINGS = ("linear", "cosine")


class BertMapConfig(PreTrainedConfig):
    r"""
    Configuration of a [`BertForWordMapping`]: a phrase goes through `encoder_config`'s encoder, one pooled
    embedding is projected onto the output words, and the argmax picks the word.

    Args:
        encoder_config (`dict` or `PreTrainedConfig`, *optional*):
            Config of the encoder, any model `AutoModel` builds from a config (BERT, RoBERTa, DistilBERT,
            ELECTRA, ...). Defaults to a `bert` config.
        pooling (`str`, defaults to `"mean"`):
            How one embedding is taken from the encoder's last hidden states: `"mean"` (attention-masked mean),
            `"cls"` (the first token), `"pooler"` (the encoder's `pooler_output`; BERT-style encoders only) or
            `"last"` (the last non-padding token, e.g. a `[CLS]` appended at the end of the phrase).
        head (`str`, defaults to `"labels"`):
            `"labels"`: a linear layer onto the closed set of target words in `id2label`. `"vocab"`: logits over
            the encoder's whole vocabulary, the projection tied to its input word embeddings (`id2label` is the
            tokenizer's vocabulary).
        scoring (`str`, defaults to `"linear"`):
            How the head scores a word: `"linear"` (a dot product with the word's row plus a bias) or `"cosine"`
            (cosine similarity between the pooled embedding and the word's row, times a learned scale, plus a
            bias). Cosine rows live in the encoder's embedding space, so a word added by name
            (`WordMapper.add_labels`) is scored on the same footing as trained ones.
        logit_scale (`float`, defaults to 20.0):
            Initial scale of the cosine scores (learned in training); unused by `"linear"`.
        classifier_dropout (`float`, defaults to 0.1):
            Dropout on the pooled embedding before the head.
        label_smoothing (`float`, defaults to 0.0):
            Label smoothing of the cross-entropy loss.
        temperature (`float`, defaults to 1.0):
            Divides the logits; fitted on validation data to calibrate probabilities (1.0 = uncalibrated).
        memory_size (`int`, defaults to 0):
            How many training phrases the model stores (their pooled embeddings and gold ids, written by
            `BertForWordMapping.write_memory`); 0: no memory.
        memory_golds (`int`, defaults to 1):
            Width of the stored gold-id rows (the most golds a stored phrase has).
        memory_weight (`float`, defaults to 0.0):
            At inference, the predicted distribution is `(1 - memory_weight) * softmax(logits) + memory_weight *
            vote`, where `vote` spreads a softmax over the `memory_neighbors` most similar stored phrases
            (cosine / `memory_temperature`) onto their gold words: an unseen phrase borrows from its neighbours.
            A stored phrase itself gets only its stored words, ranked by the classifier, like a lexicon. The
            output `logits` are then the log of those probabilities.
        memory_neighbors (`int`, defaults to 30):
            Stored phrases consulted per prediction.
        memory_temperature (`float`, defaults to 0.05):
            Sharpness of the neighbours' softmax over their cosine similarities.
        min_score (`float`, defaults to 0.0):
            Default abstention threshold of `WordMapper.predict` and the `word-mapping` pipeline: a phrase whose best
            word has a lower probability gets no word. 0.0 never abstains.
        lowercase (`bool`, defaults to `True`):
            Whether phrases were lower-cased (and whitespace collapsed) before tokenisation in training; inference
            does the same.
        initializer_range (`float`, defaults to 0.02):
            Standard deviation of the normal init of the head.

    Example:

    ```python
    >>> from transformers import BertConfig
    >>> from hf_bertmap import BertMapConfig, BertForWordMapping

    >>> config = BertMapConfig(encoder_config=BertConfig().to_dict(), id2label={0: "size", 1: "smell"})
    >>> model = BertForWordMapping(config)
    ```"""

    model_type = "bertmap"
    sub_configs_defaults = {"encoder_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    encoder_config: dict | PreTrainedConfig | None = None
    pooling: str = "mean"
    head: str = "labels"
    scoring: str = "linear"
    logit_scale: float = 20.0
    classifier_dropout: float = 0.1
    label_smoothing: float = 0.0
    temperature: float = 1.0
    min_score: float = 0.0
    memory_size: int = 0
    memory_golds: int = 1
    memory_weight: float = 0.0
    memory_neighbors: int = 30
    memory_temperature: float = 0.05
    lowercase: bool = True
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.pooling not in POOLINGS:
            raise ValueError(f"BertMapConfig: unknown pooling {self.pooling!r}; choose one of {', '.join(POOLINGS)}")
        if self.head not in HEADS:
            raise ValueError(f"BertMapConfig: unknown head {self.head!r}; choose one of {', '.join(HEADS)}")
        if self.scoring not in SCORINGS:
            raise ValueError(f"BertMapConfig: unknown scoring {self.scoring!r}; choose one of {', '.join(SCORINGS)}")
        if self.logit_scale <= 0:
            raise ValueError(f"BertMapConfig: logit_scale must be > 0, got {self.logit_scale}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"BertMapConfig: label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.temperature <= 0:
            raise ValueError(f"BertMapConfig: temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.memory_weight <= 1.0:
            raise ValueError(f"BertMapConfig: memory_weight must be in [0, 1], got {self.memory_weight}")
        if self.memory_neighbors < 1 or self.memory_temperature <= 0 or self.memory_size < 0:
            raise ValueError("BertMapConfig: memory_neighbors must be >= 1, memory_temperature > 0, memory_size >= 0")
        if self.memory_size > 0 and self.head != "labels":
            raise ValueError("BertMapConfig: a memory needs head='labels'")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"BertMapConfig: min_score must be in [0, 1], got {self.min_score}")
        # The vocabulary head reuses the input word embeddings as its projection.
        self.tie_word_embeddings = self.head == "vocab"
        # transformers leaves `label2id` empty when only `id2label` is given; keep both, consistent.
        if self.id2label is not None:
            self.label2id = {label: int(i) for i, label in self.id2label.items()}


def normalize_phrase(text: str, lowercase: bool = True) -> str:
    """How phrases (and target words) are written before tokenisation: whitespace and `_` collapsed to one space,
    lower-cased when `lowercase`. Training and every inference path share it."""
    text = " ".join(text.replace("_", " ").split())
    return text.lower() if lowercase else text


__all__ = ["BertMapConfig", "normalize_phrase"]
