"""BertMap configuration: an encoder sub-config plus the pooling, head and label mapping of the word mapper.

This file is copied next to the weights by `save_pretrained` and must import nothing from `hf_bertmap`.
"""

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

POOLINGS = ("mean", "cls", "pooler")
HEADS = ("labels", "vocab")
HEAD_SCORINGS = ("linear", "cosine")
LOGIT_SCALE_INIT = 3.0  # log(20): a softmax temperature of 0.05 over cosines


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Refuse a `value` of the setting `name` that is not one of `choices`, listing them."""
    if value not in choices:
        raise ValueError(f"{name}: unknown value {value!r}; choose one of {', '.join(choices)}")


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
            `"cls"` (the first token) or `"pooler"` (the encoder's `pooler_output`; BERT-style encoders only).
        head (`str`, defaults to `"labels"`):
            `"labels"`: a `LabelHead`, one row and bias per word of the closed set in `id2label`. `"vocab"`: a
            `VocabHead`, logits over the encoder's whole vocabulary, its rows tied to the input word embeddings
            (`id2label` is the tokenizer's vocabulary).
        head_scoring (`str`, defaults to `"linear"`):
            How the `labels` head scores a word: `"linear"`, the row times the pooled embedding plus the bias;
            `"cosine"`, as CLIP scores text against images, `exp(logit_scale)` times the cosine between the pooled
            embedding and the row, plus the bias. Cosine scoring suits tens of thousands of output words whose rows
            stay at the embeddings of their names. Configs saved before this field existed say cosine by a
            `logit_scale_init_value`.
        logit_scale_init_value (`float`, *optional*):
            With `head_scoring="cosine"`, the initial `logit_scale`, learned from there (default log(20) ~ 3.0: a
            softmax temperature of 0.05); `None` with linear scoring.
        classifier_dropout (`float`, defaults to 0.1):
            Dropout on the pooled embedding before the head.
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
    head_scoring: str | None = None
    logit_scale_init_value: float | None = None
    classifier_dropout: float = 0.1
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        check_choice("BertMapConfig: pooling", self.pooling, POOLINGS)
        check_choice("BertMapConfig: head", self.head, HEADS)
        if self.head_scoring is None:  # a config saved before `head_scoring`: a logit scale meant cosine scoring
            self.head_scoring = "linear" if self.logit_scale_init_value is None else "cosine"
        check_choice("BertMapConfig: head_scoring", self.head_scoring, HEAD_SCORINGS)
        if self.head_scoring == "cosine" and self.head != "labels":
            raise ValueError("BertMapConfig: head_scoring='cosine' applies to head='labels' only")
        if self.head_scoring == "cosine" and self.logit_scale_init_value is None:
            self.logit_scale_init_value = LOGIT_SCALE_INIT
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


__all__ = ["BertMapConfig", "normalize_phrase", "check_choice", "POOLINGS", "HEADS", "HEAD_SCORINGS"]
