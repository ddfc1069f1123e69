"""BertMap configuration: an encoder sub-config plus the pooling, head and label mapping of the word mapper.

This file is copied next to the weights by `save_pretrained` and must import nothing from `hf_bertmap`.
"""

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

POOLINGS = ("mean", "cls", "pooler", "last")
HEADS = ("labels", "vocab")


class BertMapConfig(PreTrainedConfig):
    r"""
    Configuration of a [`BertForWordMapping`]: a phrase goes through `encoder_config`'s encoder, one pooled
    embedding is projected onto the output words, and the argmax picks the word. It holds what rebuilds the
    network; how logits become words (temperature, memory, abstention) is the `DecodingConfig` beside it.

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
        logit_scale_init_value (`float`, *optional*):
            `None`: the `labels` head is a plain linear layer. A value: a cosine head, as CLIP scores text against
            images: the logits are `exp(logit_scale)` times the cosine between the pooled embedding and each head
            row, plus the row's bias, with `logit_scale` learned from this initial value (log(20) ~ 3.0: a
            softmax temperature of 0.05). Suits tens of thousands of output words whose rows stay at the
            embeddings of their names.
        classifier_dropout (`float`, defaults to 0.1):
            Dropout on the pooled embedding before the head.
        label_smoothing (`float`, defaults to 0.0):
            Label smoothing of the cross-entropy loss.
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
    logit_scale_init_value: float | None = None
    classifier_dropout: float = 0.1
    label_smoothing: float = 0.0
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.pooling not in POOLINGS:
            raise ValueError(f"BertMapConfig: unknown pooling {self.pooling!r}; choose one of {', '.join(POOLINGS)}")
        if self.head not in HEADS:
            raise ValueError(f"BertMapConfig: unknown head {self.head!r}; choose one of {', '.join(HEADS)}")
        if self.logit_scale_init_value is not None and self.head != "labels":
            raise ValueError("BertMapConfig: logit_scale_init_value (a cosine head) applies to head='labels' only")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"BertMapConfig: label_smoothing must be in [0, 1), got {self.label_smoothing}")
        # The vocabulary head reuses the input word embeddings as its projection.
        self.tie_word_embeddings = self.head == "vocab"
        # transformers leaves `label2id` empty when only `id2label` is given; keep both, consistent.
        if self.id2label is not None:
            self.label2id = {label: int(i) for i, label in self.id2label.items()}


def normalize_phrase(text: str, lowercase: bool = True) -> str:
    """How phrases (and target words) are written before tokenisation: whitespace and `_` collapsed to one space,
    byte order marks dropped, lower-cased when `lowercase`. Training and every inference path share it."""
    text = " ".join(text.replace("_", " ").replace("\ufeff", "").split())
    return text.lower() if lowercase else text


__all__ = ["BertMapConfig", "normalize_phrase"]
