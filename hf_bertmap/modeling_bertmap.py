"""BertForWordMapping: encoder -> one pooled embedding -> linear projection onto output words.

This file is copied next to the weights by `save_pretrained` and must import nothing from `hf_bertmap` but its
configuration and decoding step, relatively.
"""

import inspect
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import SequenceClassifierOutput

from .configuration_bertmap import BertMapConfig
from .decoding_bertmap import HUB_KWARGS, WordMappingDecoder


def masked_mean(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of `hidden_states` (batch, seq, hidden) over the positions where `attention_mask` is 1."""
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)  # (batch, seq, 1)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def last_token(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden state of the last position where `attention_mask` is 1 (works with left or right padding)."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = (attention_mask.long() * positions).argmax(dim=1)  # (batch,)
    return hidden_states[torch.arange(hidden_states.shape[0], device=hidden_states.device), last]


def multi_hot(labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """(batch, num_labels) 0/1 float rows from gold ids of shape (batch,) or (batch, max_golds) padded with -100."""
    if labels.dim() == 1:
        labels = labels.unsqueeze(-1)
    valid = (labels >= 0).float()
    gold = torch.zeros(labels.shape[0], num_labels, device=labels.device)
    # Add (not assign): padding clamped to id 0 must not overwrite a real gold 0.
    return gold.scatter_add_(1, labels.clamp(min=0), valid).clamp_(max=1.0)


def soft_cross_entropy(logits: torch.Tensor, gold: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Cross-entropy against a multi-hot `gold` (batch, num_labels): the mass is split evenly over a row's golds.

    Rows without any gold (a target outside the label set) add nothing.
    """
    counts = gold.sum(dim=-1, keepdim=True)  # (batch, 1)
    target = gold / counts.clamp(min=1)
    if label_smoothing > 0:
        target = (1 - label_smoothing) * target + label_smoothing / logits.shape[-1]
    per_row = -(target * torch.log_softmax(logits, dim=-1)).sum(dim=-1)
    has_gold = counts.squeeze(-1) > 0
    if not has_gold.any():
        return logits.sum() * 0.0
    return per_row[has_gold].mean()


@dataclass
class WordMappingOutput(SequenceClassifierOutput):
    r"""
    pooled_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
        The pooled phrase embedding the head projected (before dropout): what the decoding step's phrase memory
        compares.
    """

    pooled_output: torch.FloatTensor | None = None


class BertMapPreTrainedModel(PreTrainedModel):
    config_class = BertMapConfig
    base_model_prefix = "bertmap"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    # The loss is a mean over the batch's phrases, not a sum to be divided by Trainer's `num_items_in_batch`.
    accepts_loss_kwargs = False

    def _init_weights(self, module: nn.Module) -> None:
        # Sub-models (the encoder) are initialised by their own `_init_weights`; this covers the head.
        if isinstance(module, BertForWordMapping) and module.logit_scale is not None:
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)
        elif isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class BertForWordMapping(BertMapPreTrainedModel):
    """Maps a short phrase to one word: `fishy -> smell`, `very chonky -> size`.

    The phrase runs through `config.encoder_config`'s encoder, `config.pooling` takes one embedding, and a linear
    layer projects it onto `config.id2label` (`head="labels"`) or onto the whole vocabulary (`head="vocab"`).
    `forward` is a plain classifier; `model.decoder` (a `WordMappingDecoder`, like a language model's
    `generation_config`) is how its logits become words, loaded and saved with the model but never used by
    `forward`.
    """

    def __init__(self, config: BertMapConfig):
        super().__init__(config)
        self.encoder = AutoModel.from_config(config.encoder_config)
        if config.pooling == "pooler":
            if getattr(self.encoder, "pooler", None) is None:
                raise ValueError(
                    f"pooling='pooler' needs an encoder with a pooler layer; {config.encoder_config.model_type!r} "
                    "has none. Use pooling='mean' or 'cls'."
                )
        elif getattr(self.encoder, "pooler", None) is not None:
            self.encoder.pooler = None  # unused: keep it out of the weights and of DDP's gradient sync
        self._encoder_takes_token_type_ids = "token_type_ids" in inspect.signature(self.encoder.forward).parameters

        hidden_size = config.encoder_config.hidden_size
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.logit_scale = None
        if config.head == "labels":
            self.vocab_transform = None
            self.classifier = nn.Linear(hidden_size, config.num_labels)
            if config.logit_scale_init_value is not None:
                self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))
        else:
            word_embeddings = self.encoder.get_input_embeddings()
            vocab_size, embedding_size = word_embeddings.weight.shape
            if config.num_labels != vocab_size:
                raise ValueError(
                    f"head='vocab' needs one label per vocabulary entry: id2label has {config.num_labels} labels, "
                    f"the encoder's vocabulary {vocab_size}."
                )
            # Encoders whose embeddings are narrower than their hidden states (ELECTRA) need a projection first.
            self.vocab_transform = nn.Linear(hidden_size, embedding_size) if embedding_size != hidden_size else None
            self.classifier = nn.Linear(embedding_size, vocab_size)
            source = next(name for name, p in self.encoder.named_parameters() if p is word_embeddings.weight)
            self._tied_weights_keys = {"classifier.weight": f"encoder.{source}"}
        self.decoder = WordMappingDecoder()
        self.post_init()

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        """The pooled phrase embedding (batch, hidden) that the head projects."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        token_type_ids = kwargs.pop("token_type_ids", None)
        if token_type_ids is not None and self._encoder_takes_token_type_ids:
            kwargs["token_type_ids"] = token_type_ids
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        hidden_states = outputs.last_hidden_state  # (batch, seq, hidden)
        if self.config.pooling == "mean":
            return masked_mean(hidden_states, attention_mask)
        if self.config.pooling == "cls":
            return hidden_states[:, 0]
        if self.config.pooling == "last":
            return last_token(hidden_states, attention_mask)
        return outputs.pooler_output

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> WordMappingOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size,)` or `(batch_size, max_golds)`, *optional*):
            The gold word's index in `config.id2label`; or, for phrases with several correct words
            (`high -> height | level`), every gold index padded with -100, the loss then splitting its mass evenly
            over them. Rows whose golds are all -100 add no loss.
        """
        kwargs.pop("num_items_in_batch", None)
        embedding = self.pool(input_ids, attention_mask, token_type_ids=token_type_ids, **kwargs)  # (batch, hidden)
        logits = self.project(self.dropout(embedding))  # (batch, num_labels)

        loss = None
        if labels is not None:
            gold = multi_hot(labels.to(logits.device), logits.shape[-1]).to(logits.dtype)
            loss = soft_cross_entropy(logits, gold, self.config.label_smoothing)
        return WordMappingOutput(loss=loss, logits=logits, pooled_output=embedding)

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        """The head: pooled embeddings (batch, hidden) -> logits (batch, num_labels)."""
        if self.vocab_transform is not None:
            pooled = self.vocab_transform(pooled)
        if self.logit_scale is None:
            return self.classifier(pooled)
        rows = nn.functional.normalize(self.classifier.weight, dim=-1)  # (num_labels, hidden)
        cosines = nn.functional.linear(nn.functional.normalize(pooled, dim=-1), rows)
        return self.logit_scale.exp() * cosines + self.classifier.bias

    def freeze_head(self) -> None:
        """Keep the head's rows and biases as they are (the label names' embeddings after `initialize_head`): only
        the encoder and a cosine head's `logit_scale` learn. With tens of thousands of output words, an optimiser
        would otherwise move every row on every step, the rows of words absent from the batch included."""
        if self.config.head != "labels":
            raise ValueError("freeze_head applies to head='labels'; the vocab head is tied to the word embeddings")
        for param in self.classifier.parameters():
            param.requires_grad = False

    def freeze_encoder_layers(self, num_layers: int) -> None:
        """Train only the encoder's layers from `num_layers` on (and the head): its embeddings, its first
        `num_layers` layers and whatever else they use (MPNet's shared relative-position bias) stop learning.
        Backward then stops at the first trained layer, which makes a large encoder affordable on a CPU."""
        layers = next((module for module in self.encoder.modules() if isinstance(module, nn.ModuleList)
                       and len(module) == self.config.encoder_config.num_hidden_layers), None)
        if layers is None:
            raise ValueError(f"freeze_encoder_layers: no list of layers in {type(self.encoder).__name__}")
        if not 0 <= num_layers <= len(layers):
            raise ValueError(f"freeze_encoder_layers: num_layers must be in [0, {len(layers)}], got {num_layers}")
        if num_layers and self.config.head == "vocab":
            raise ValueError("freeze_encoder_layers: the vocab head is tied to the word embeddings, which would freeze")
        trained = {id(p) for layer in layers[num_layers:] for p in layer.parameters()}
        if getattr(self.encoder, "pooler", None) is not None:
            trained |= {id(p) for p in self.encoder.pooler.parameters()}
        for param in self.encoder.parameters():
            param.requires_grad = num_layers == 0 or id(param) in trained

    @torch.no_grad()
    def initialize_head(self, embeddings: torch.Tensor) -> None:
        """Start each label's head row from `embeddings` (num_labels, hidden): the pooled embeddings of the label
        names, in `id2label` order, scaled to unit norm, so training starts from meaning rather than noise."""
        if self.config.head != "labels":
            raise ValueError("initialize_head only applies to head='labels'")
        if embeddings.shape[0] != self.config.num_labels:
            raise ValueError(f"expected {self.config.num_labels} label rows, got {embeddings.shape[0]}")
        weight = self.classifier.weight
        weight.copy_(nn.functional.normalize(embeddings.float(), dim=-1).to(weight.device, weight.dtype))
        self.classifier.bias.zero_()

    @torch.no_grad()
    def add_labels(self, names: list[str], embeddings: torch.Tensor) -> None:
        """Append output words without training: each new row points the way of `embeddings` (one row per name,
        the pooled embedding of the word's own text), with the mean norm of the trained rows; every new bias is the
        mean trained bias, so a new word competes on its meaning, not on a prior."""
        if self.config.head != "labels":
            raise ValueError("add_labels only applies to head='labels'; the vocabulary head has every token already")
        if embeddings.shape[0] != len(names):
            raise ValueError(f"expected {len(names)} rows of label embeddings, got {embeddings.shape[0]}")
        clashes = sorted(set(names) & set(self.config.label2id)) + sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise ValueError(f"add_labels: already output words or given twice: {clashes}")
        old = self.classifier
        rows = nn.functional.normalize(embeddings.float(), dim=-1).to(old.weight.device, old.weight.dtype)
        rows = rows * old.weight.norm(dim=-1).mean()
        self.classifier = nn.Linear(old.in_features, old.out_features + len(names), device=old.weight.device,
                                    dtype=old.weight.dtype)
        self.classifier.weight.copy_(torch.cat([old.weight, rows]))
        self.classifier.bias.copy_(torch.cat([old.bias, old.bias.mean().expand(len(names))]))
        labels = [self.config.id2label[i] for i in range(old.out_features)] + list(names)
        self.config.id2label = dict(enumerate(labels))
        self.config.label2id = {label: i for i, label in enumerate(labels)}

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, then the decoding step from the same files and revision (as
        transformers loads a `generation_config` beside a language model)."""
        loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # (model, loading info) on request
        hub_kwargs = {key: kwargs[key] for key in HUB_KWARGS if kwargs.get(key) is not None}
        model.decoder = WordMappingDecoder.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        return loaded

    def save_pretrained(self, save_directory, *args, **kwargs):
        # `register_for_auto_class` maps one Auto class; also map the sequence-classification one so that
        # `pipeline("text-classification", model=..., trust_remote_code=True)` finds the model class.
        if self._auto_class is not None:
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            auto_map["AutoModelForSequenceClassification"] = f"{self.__class__.__module__.split('.')[-1]}.{self.__class__.__name__}"
            self.config.auto_map = auto_map
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            self.decoder.save_pretrained(save_directory)
        return result


__all__ = ["BertForWordMapping", "BertMapPreTrainedModel", "WordMappingOutput"]
