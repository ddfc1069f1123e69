"""BertForWordMapping: encoder -> one pooled embedding -> linear projection onto output words.

This file is copied next to the weights by `save_pretrained` and must import nothing from `hf_bertmap` but its
configuration, relatively.
"""

import inspect
import math

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import SequenceClassifierOutput

from .configuration_bertmap import BertMapConfig


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
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, BertForWordMapping) and module.log_logit_scale is not None:
            init.constant_(module.log_logit_scale, math.log(self.config.logit_scale))


class BertForWordMapping(BertMapPreTrainedModel):
    """Maps a short phrase to one word: `fishy -> smell`, `very chonky -> size`.

    The phrase runs through `config.encoder_config`'s encoder, `config.pooling` takes one embedding, and a linear
    layer projects it onto `config.id2label` (`head="labels"`) or onto the whole vocabulary (`head="vocab"`).
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
        if config.head == "labels":
            self.vocab_transform = None
            self.classifier = nn.Linear(hidden_size, config.num_labels)
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
        # Cosine scoring: log of the learned scale (log-parametrised so it stays positive).
        self.log_logit_scale = nn.Parameter(torch.zeros(())) if config.scoring == "cosine" else None
        # The memory of training phrases: unit pooled embeddings and their gold ids (-100 padded).
        has_memory = config.memory_size > 0
        self.register_buffer("memory_keys", torch.zeros(config.memory_size, hidden_size) if has_memory else None)
        self.register_buffer(
            "memory_golds", torch.full((config.memory_size, config.memory_golds), -100) if has_memory else None
        )
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
    ) -> SequenceClassifierOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size,)` or `(batch_size, max_golds)`, *optional*):
            The gold word's index in `config.id2label`; or, for phrases with several correct words
            (`high -> height | pitch`), every gold index padded with -100, the loss then splitting its mass evenly
            over them. Rows whose golds are all -100 add no loss.
        """
        kwargs.pop("num_items_in_batch", None)
        embedding = self.pool(input_ids, attention_mask, token_type_ids=token_type_ids, **kwargs)
        pooled = self.dropout(embedding)
        if self.vocab_transform is not None:
            pooled = self.vocab_transform(pooled)
        logits = self.score(pooled) / self.config.temperature  # (batch, num_labels)
        if self.config.memory_weight > 0 and self.config.memory_size > 0 and not self.training:
            vote, stored_words, is_stored = self.read_memory(embedding)
            probabilities = logits.float().softmax(dim=-1)
            weight = self.config.memory_weight
            mixture = (1 - weight) * probabilities + weight * vote
            # A stored phrase gets only its stored words, ranked by the classifier.
            known = (probabilities + 1e-12) * stored_words
            known = known / known.sum(dim=-1, keepdim=True)
            mixture = torch.where(is_stored.unsqueeze(-1), known, mixture)
            logits = mixture.clamp(min=1e-12).log().to(logits.dtype)

        loss = None
        if labels is not None:
            loss = soft_cross_entropy(logits, multi_hot(labels.to(logits.device), logits.shape[-1]).to(logits.dtype),
                                      self.config.label_smoothing)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def score(self, pooled: torch.Tensor) -> torch.Tensor:
        """Uncalibrated logits (batch, num_labels) of a pooled (and, for the vocabulary head, projected) batch."""
        if self.config.scoring == "linear":
            return self.classifier(pooled)
        cosine = nn.functional.linear(
            nn.functional.normalize(pooled, dim=-1), nn.functional.normalize(self.classifier.weight, dim=-1)
        )
        scale = self.log_logit_scale.clamp(max=math.log(100.0)).exp()
        return scale * cosine + self.classifier.bias

    def read_memory(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Consult the stored phrases for a batch of pooled embeddings. Returns

        - the neighbours' vote (batch, num_labels): a softmax over the cosine similarities of the
          `memory_neighbors` nearest stored phrases, each neighbour's share split evenly over its gold words;
        - the nearest stored phrase's gold words as a 0/1 mask (batch, num_labels);
        - whether that nearest phrase is the phrase itself (batch,): cosine similarity within 1e-4 of 1.
        """
        similarity = nn.functional.normalize(embedding.float(), dim=-1) @ self.memory_keys.T  # (batch, size)
        top, index = similarity.topk(min(self.config.memory_neighbors, self.config.memory_size), dim=-1)
        golds = self.memory_golds[index]  # (batch, k, memory_golds)
        valid = (golds >= 0).float()
        split = valid / valid.sum(dim=-1, keepdim=True).clamp(min=1)  # each neighbour's words, evenly

        def spread(shares: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
            out = torch.zeros(embedding.shape[0], self.config.num_labels, device=embedding.device)
            return out.scatter_add_(1, ids.clamp(min=0).flatten(1), shares.flatten(1))

        weights = (top / self.config.memory_temperature).softmax(dim=-1)  # (batch, k)
        vote = spread(weights.unsqueeze(-1) * split, golds)
        return vote, spread(valid[:, 0], golds[:, 0]).clamp(max=1.0), top[:, 0] >= 1 - 1e-4

    @torch.no_grad()
    def write_memory(self, embeddings: torch.Tensor, golds: torch.Tensor, weight: float | None = None) -> None:
        """Store phrases' pooled `embeddings` (n, hidden) with their gold ids `golds` (n, max_golds), -100 padded;
        `weight` sets `config.memory_weight`. An empty `embeddings` removes the memory."""
        if self.config.head != "labels":
            raise ValueError("a memory needs head='labels'")
        if golds.dim() == 1:
            golds = golds.unsqueeze(-1)
        if embeddings.shape[0] != golds.shape[0]:
            raise ValueError(f"{embeddings.shape[0]} embeddings but {golds.shape[0]} gold rows")
        if golds.numel() and int(golds.max()) >= self.config.num_labels:
            raise ValueError(f"gold id {int(golds.max())} is outside the {self.config.num_labels} labels")
        if embeddings.shape[0] == 0:
            self.memory_keys = self.memory_golds = None
        else:
            self.memory_keys = nn.functional.normalize(embeddings.float(), dim=-1).to(self.device)
            self.memory_golds = golds.long().to(self.device)
        self.config.memory_size, self.config.memory_golds = golds.shape[0], max(1, golds.shape[1])
        if weight is not None:
            self.config.memory_weight = weight

    @torch.no_grad()
    def embed_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled embeddings without dropout (eval mode), leaving the model's train/eval mode as it was."""
        was_training = self.training
        self.eval()
        embeddings = self.pool(input_ids.to(self.device), attention_mask.to(self.device))
        self.train(was_training)
        return embeddings

    @torch.no_grad()
    def initialize_head_from_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Start each label's head row from the pooled embedding of the label's own text.

        `input_ids`/`attention_mask` hold the tokenised label names, one row per label in `id2label` order. The
        rows are scaled to unit norm, so training starts from meaning rather than noise.
        """
        if self.config.head != "labels":
            raise ValueError("initialize_head_from_inputs only applies to head='labels'")
        if input_ids.shape[0] != self.config.num_labels:
            raise ValueError(f"expected {self.config.num_labels} label rows, got {input_ids.shape[0]}")
        embeddings = self.embed_inputs(input_ids, attention_mask)
        self.classifier.weight.copy_(nn.functional.normalize(embeddings, dim=-1))
        self.classifier.bias.zero_()

    @torch.no_grad()
    def add_labels(self, names: list[str], input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Append output words without training: each new row points the way of the pooled embedding of the word's
        own text (`input_ids`/`attention_mask`, one row per name).

        With linear scoring the new rows get the mean norm of the trained rows; every new bias is the mean trained
        bias, so a new word competes on its meaning, not on a prior.
        """
        if self.config.head != "labels":
            raise ValueError("add_labels only applies to head='labels'; the vocabulary head has every token already")
        if input_ids.shape[0] != len(names):
            raise ValueError(f"expected {len(names)} rows of label inputs, got {input_ids.shape[0]}")
        clashes = sorted(set(names) & set(self.config.label2id)) + sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise ValueError(f"add_labels: already output words or given twice: {clashes}")
        embeddings = self.embed_inputs(input_ids, attention_mask)
        old = self.classifier
        rows = nn.functional.normalize(embeddings, dim=-1).to(old.weight.dtype) * old.weight.norm(dim=-1).mean()
        self.classifier = nn.Linear(old.in_features, old.out_features + len(names), device=old.weight.device,
                                    dtype=old.weight.dtype)
        self.classifier.weight.copy_(torch.cat([old.weight, rows]))
        self.classifier.bias.copy_(torch.cat([old.bias, old.bias.mean().expand(len(names))]))
        labels = [self.config.id2label[i] for i in range(old.out_features)] + list(names)
        self.config.id2label = dict(enumerate(labels))
        self.config.label2id = {label: i for i, label in enumerate(labels)}

    def save_pretrained(self, save_directory, *args, **kwargs):
        # `register_for_auto_class` maps one Auto class; also map the sequence-classification one so that
        # `pipeline("text-classification", model=..., trust_remote_code=True)` finds the model class.
        if self._auto_class is not None:
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            auto_map["AutoModelForSequenceClassification"] = f"{self.__class__.__module__.split('.')[-1]}.{self.__class__.__name__}"
            self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)


__all__ = ["BertForWordMapping", "BertMapPreTrainedModel"]
