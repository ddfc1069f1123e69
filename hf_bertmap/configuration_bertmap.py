"""BertMap configuration: an encoder sub-config plus the pooling, head and label mapping of the word mapper.

This file is copied next to the weights by `save_pretrained` and must import nothing from `hf_bertmap`.
"""

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

POOLINGS = ("mean", "cls", "pooler")
HEADS = ("labels", "text", "vocab")
HEAD_SCORINGS = ("linear", "cosine")
TRAINING_SOFTMAXES = ("all", "encoded")  # a text head's words in a training step's softmax
LOGIT_SCALE_INIT = 3.0  # log(20): a softmax temperature of 0.05 over cosines
LABEL_TEXT_LENGTH = 32  # tokens of a word's text (the word, or the word and its description) the text head encodes
LABEL_REFRESH_STEPS = 50


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Refuse a `value` of the setting `name` that is not one of `choices`, listing them."""
    if value not in choices:
        raise ValueError(f"{name}: unknown value {value!r}; choose one of {', '.join(choices)}")


def check_head_scoring(head: str, head_scoring: str | None, where: str) -> None:
    """Refuse a head and scoring that do not go together (`where` names the caller in the message); a scoring of
    None (not chosen yet) goes with any head."""
    if head_scoring == "cosine" and head == "vocab":
        raise ValueError(f"{where}: head_scoring='cosine' applies to head='labels' or 'text' only")
    if head == "text" and head_scoring not in (None, "cosine"):
        raise ValueError(f"{where}: head='text' scores by cosine (head_scoring='cosine')")


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
            `"labels"`: a `LabelHead`, one row and bias per word of the closed set in `id2label`. `"text"`: a
            `TextHead`, whose row for each word of `id2label` is the encoder's own pooled embedding of the word's
            text (the word, or the word and a short description), scored by cosine: a rare, held-out or added word
            is scored by its meaning. `"vocab"`: a `VocabHead`, logits over the encoder's whole vocabulary, its rows
            tied to the input word embeddings (`id2label` is the tokenizer's vocabulary).
        head_scoring (`str`, defaults to `"linear"`):
            How the `labels` head scores a word: `"linear"`, the row times the pooled embedding plus the bias;
            `"cosine"`, as CLIP scores text against images, `exp(logit_scale)` times the cosine between the pooled
            embedding and the row, plus the bias. Cosine scoring suits tens of thousands of output words whose rows
            stay at the embeddings of their names. Configs saved before this field existed say cosine by a
            `logit_scale_init_value`.
        logit_scale_init_value (`float`, *optional*):
            With `head_scoring="cosine"` (always with `head="text"`), the initial `logit_scale`, learned from
            there (default log(20) ~ 3.0: a softmax temperature of 0.05); `None` with linear scoring.
        label_text_length (`int`, defaults to 32):
            With `head="text"`, the tokens kept of each word's text.
        label_refresh_steps (`int`, defaults to 50):
            With `head="text"`, every this many training steps all rows are encoded anew from the words' texts
            (the batch's gold words are encoded with gradients at every step); 0 encodes them anew only before the
            model is next evaluated or saved, for tens of thousands of words.
        label_gradient_words (`int`, *optional*):
            With `head="text"`, how many of a training batch's gold words are encoded with gradients (drawn at
            random; the others score with their stored rows); `None`, every one of them; 0, none: the rows then
            follow the encoder only when encoded anew.
        label_hard_negatives (`int`, defaults to 0):
            With `head="text"`, how many wrong words a training batch also encodes with gradients: those scoring
            highest against any of its phrases by the stored rows (the model's current confusions), so the
            encoder learns to tell them from the gold words; 0, none.
        label_training_softmax (`str`, defaults to `"all"`):
            With `head="text"`, the words a training step's softmax runs over: `"all"`, every word (the stored rows
            of those not encoded in the step); `"encoded"`, only the words encoded with gradients in the step (the
            batch's gold words and its hard negatives), as dual encoders train on in-batch and hard negatives.
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
    label_text_length: int = LABEL_TEXT_LENGTH
    label_refresh_steps: int | None = LABEL_REFRESH_STEPS
    label_gradient_words: int | None = None
    label_hard_negatives: int = 0
    label_training_softmax: str = "all"
    classifier_dropout: float = 0.1
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        check_choice("BertMapConfig: pooling", self.pooling, POOLINGS)
        check_choice("BertMapConfig: head", self.head, HEADS)
        check_choice("BertMapConfig: label_training_softmax", self.label_training_softmax, TRAINING_SOFTMAXES)
        if self.head == "text" and self.head_scoring is None:  # the text head's rows are embeddings: cosine
            self.head_scoring = "cosine"
        if self.head_scoring is None:  # a config saved before `head_scoring`: a logit scale meant cosine scoring
            self.head_scoring = "linear" if self.logit_scale_init_value is None else "cosine"
        check_choice("BertMapConfig: head_scoring", self.head_scoring, HEAD_SCORINGS)
        check_head_scoring(self.head, self.head_scoring, "BertMapConfig")
        if self.label_refresh_steps is None:
            self.label_refresh_steps = LABEL_REFRESH_STEPS
        counts = (self.label_refresh_steps, self.label_gradient_words or 0, self.label_hard_negatives)
        if self.label_text_length < 1 or min(counts) < 0:
            raise ValueError("BertMapConfig: label_text_length must be >= 1, label_refresh_steps, "
                             f"label_gradient_words and label_hard_negatives >= 0; got {self.label_text_length}, "
                             f"{self.label_refresh_steps}, {self.label_gradient_words} and {self.label_hard_negatives}")
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
