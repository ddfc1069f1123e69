"""BertForWordMapping: encoder -> one pooled embedding -> a head scoring the output words (`LabelHead` over a
closed set of words, `TextHead` over words known by the encoder's embedding of their text, `VocabHead` over the
encoder's vocabulary).

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
from .decoding_bertmap import HUB_KWARGS, WordMappingDecoder, multi_hot
from .pipeline_bertmap import WordMappingPipeline


def masked_mean(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of `hidden_states` (batch, seq, hidden) over the positions where `attention_mask` is 1."""
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)  # (batch, seq, 1)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def soft_cross_entropy(logits: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a multi-hot `gold` (batch, num_labels): the mass is split evenly over a row's golds.

    Rows without any gold (a target outside the label set) add nothing.
    """
    counts = gold.sum(dim=-1, keepdim=True)  # (batch, 1)
    target = gold / counts.clamp(min=1)
    per_row = -(target * torch.log_softmax(logits, dim=-1)).sum(dim=-1)
    has_gold = counts.squeeze(-1) > 0
    if not has_gold.any():
        return logits.sum() * 0.0
    return per_row[has_gold].mean()


def cosine_logits(pooled: torch.Tensor, rows: torch.Tensor, logit_scale: torch.Tensor,
                  bias: torch.Tensor) -> torch.Tensor:
    """exp(logit_scale) * cos(pooled, row) + bias, as CLIP scores text against images: (batch, hidden) pooled
    embeddings and (num_labels, hidden) rows -> (batch, num_labels) logits."""
    cosines = nn.functional.linear(nn.functional.normalize(pooled, dim=-1), nn.functional.normalize(rows, dim=-1))
    return logit_scale.exp() * cosines + bias


def trim_padding(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) cut to the longest row's length (at least one token)."""
    length = max(int(attention_mask.sum(dim=-1).max()), 1) if len(attention_mask) else 1
    return input_ids[:, :length], attention_mask[:, :length]


class WordHead(nn.Module):
    """What every head is: `forward(pooled, labels=None, encoder=None)` -> (batch, num_labels) logits, where
    `labels` are the batch's gold ids and `encoder` the model (`pool` encodes texts with gradients,
    `encode_word_texts` in eval mode); a head whose rows follow the encoder (`TextHead`) uses them, the others ignore
    them. The row operations a head does not have are refused with what its rows are."""

    kind = ""  # its `config.head`
    rows_are = ""  # what its rows are, for the refusals

    def refresh(self, encoder: "BertForWordMapping") -> None:
        """Encode rows that follow the encoder anew, if stale (a `TextHead`'s); the other heads' rows are weights."""

    def initialize_from(self, embeddings: torch.Tensor) -> None:
        raise self.refusal("starting rows from the words' embeddings", "head='labels'")

    def freeze(self) -> None:
        raise self.refusal("keeping the rows fixed", "head='labels' or 'text'")

    def append_rows(self, embeddings: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        raise self.refusal("adding words (add_labels)", "head='labels' or 'text'")

    def set_texts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        raise self.refusal("words' texts", "head='text'")

    def refusal(self, what: str, heads: str) -> ValueError:
        return ValueError(f"{what} applies to {heads} only; the rows of head={self.kind!r} {self.rows_are}")


class LabelHead(WordHead):
    """The output layer over a closed set of words (`head="labels"`): one row and one bias per word of
    `config.id2label`.

    `config.head_scoring="linear"`: logits = rows @ pooled + bias. `"cosine"`: as CLIP scores text against images,
    logits = exp(logit_scale) * cos(pooled, row) + bias, the scale learned from `config.logit_scale_init_value`;
    suits rows that stay at the words' embeddings (`freeze`). The head owns what only it can do: start its rows
    from the words' embeddings (`initialize_from`), keep them fixed (`freeze`) and grow new ones (`append_rows`).
    """

    kind, rows_are = "labels", "are learned weights"

    def __init__(self, config: BertMapConfig):
        super().__init__()
        hidden_size = config.encoder_config.hidden_size
        self.weight = nn.Parameter(torch.empty(config.num_labels, hidden_size))  # (num_labels, hidden)
        self.bias = nn.Parameter(torch.empty(config.num_labels))
        cosine = config.head_scoring == "cosine"
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value))) if cosine else None

    def forward(self, pooled: torch.Tensor, labels: torch.Tensor | None = None,
                encoder: "BertForWordMapping | None" = None) -> torch.Tensor:
        """(batch, hidden) pooled embeddings -> (batch, num_labels) logits."""
        if self.logit_scale is None:
            return nn.functional.linear(pooled, self.weight, self.bias)
        return cosine_logits(pooled, self.weight, self.logit_scale, self.bias)

    @torch.no_grad()
    def initialize_from(self, embeddings: torch.Tensor) -> None:
        """Start each row from `embeddings` (num_labels, hidden), the pooled embeddings of the words' own text in
        `id2label` order, scaled to unit norm, and every bias at 0: training starts from meaning rather than noise."""
        if embeddings.shape[0] != self.weight.shape[0]:
            raise ValueError(f"expected {self.weight.shape[0]} label rows, got {embeddings.shape[0]}")
        self.weight.copy_(nn.functional.normalize(embeddings.float(), dim=-1).to(self.weight.device, self.weight.dtype))
        self.bias.zero_()

    def freeze(self) -> None:
        """Keep the rows and biases as they are: only the encoder and a cosine head's `logit_scale` learn. With tens
        of thousands of words, an optimiser would otherwise move every row on every step, the rows of words absent
        from the batch included."""
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)

    @torch.no_grad()
    def append_rows(self, embeddings: torch.Tensor, input_ids: torch.Tensor | None = None,
                    attention_mask: torch.Tensor | None = None) -> None:
        """Add one row per new word, without training: each points the way of its row of `embeddings` (the pooled
        embedding of the word's own text; the tokenised text itself is not kept) with the mean norm of the existing
        rows; each bias is the mean existing bias, so a new word competes on its meaning, not on a prior."""
        weight, bias = self.weight, self.bias
        rows = nn.functional.normalize(embeddings.float(), dim=-1).to(weight.device, weight.dtype)
        rows = rows * weight.norm(dim=-1).mean()
        self.weight = nn.Parameter(torch.cat([weight, rows]), requires_grad=weight.requires_grad)
        self.bias = nn.Parameter(torch.cat([bias, bias.mean().expand(len(rows))]), requires_grad=bias.requires_grad)


UNSCORED = -1e4  # the training logit of a word left out of the softmax: no probability, no gradient, no NaN


class TextHead(WordHead):
    """The output layer over words known by their text (`head="text"`): each word's row is the encoder's own pooled
    embedding of its text (the word, or the word and a short description: `"smell: any property detected by the
    olfactory system"`), scored by cosine with a learned scale; plus, as a `LabelHead` scores, a learned row
    (`weight`, zero at the start) times the pooled embedding and a bias per word:

        logits = exp(logit_scale) * cos(pooled, rows) + pooled @ weight.T + bias

    A word's score starts from its meaning as the encoder reads it, and its learned row adds what its examples
    teach beyond it: a word with few or no training phrases, or one added later (its learned row zero), is scored by
    what it means. `freeze` keeps the learned rows at zero: words scored by their text alone. The words' tokenised texts
    (`text_ids`, `text_mask`) and their current rows (`rows`) are saved with the model, so serving scores against
    the stored rows at the cost of a `LabelHead`, and ONNX exports them as constants. The head keeps its rows in
    step with the encoder it is given: in a training step it encodes the batch's gold words with gradients (at most
    `config.label_gradient_words` of them) and all words anew every `config.label_refresh_steps` steps; outside
    training, and before the model is saved, it encodes all words anew if training moved the encoder since. With
    `config.label_training_softmax="encoded"` the training softmax runs over the words encoded in the step only
    (the batch's gold words and its `config.label_hard_negatives`): no stored row, encoded by an earlier encoder,
    competes with rows of the current one.
    """

    kind, rows_are = "text", "are the encoder's embeddings of the words' texts"

    def __init__(self, config: BertMapConfig):
        super().__init__()
        self.config = config  # the refresh schedule, read at each step
        num_labels, hidden_size = config.num_labels, config.encoder_config.hidden_size
        self.register_buffer("text_ids", torch.zeros(num_labels, config.label_text_length, dtype=torch.long))
        self.register_buffer("text_mask", torch.zeros(num_labels, config.label_text_length, dtype=torch.long))
        self.register_buffer("rows", torch.zeros(num_labels, hidden_size))  # (num_labels, hidden)
        self.weight = nn.Parameter(torch.zeros(num_labels, hidden_size))  # learned on top of the text's row
        self.bias = nn.Parameter(torch.empty(num_labels))
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))
        self.stale = False  # whether training moved the encoder since the rows were encoded
        self.steps_since_refresh = 0

    def forward(self, pooled: torch.Tensor, labels: torch.Tensor | None = None,
                encoder: "BertForWordMapping" = None) -> torch.Tensor:
        """(batch, hidden) pooled embeddings -> (batch, num_labels) logits. Outside training, against the stored
        rows (encoded anew first by `encoder` if training moved it since). In a training step, the batch's gold
        words' rows are encoded with gradients, so the encoder learns to place a word's text where its phrases are,
        and all rows are encoded anew every `config.label_refresh_steps` steps."""
        if not self.training:
            self.refresh(encoder)
            return self.score(pooled, self.rows)
        refresh_steps = self.config.label_refresh_steps
        if refresh_steps and self.steps_since_refresh >= refresh_steps:
            self.encode_rows(encoder, in_step=True)
        self.stale, self.steps_since_refresh = True, self.steps_since_refresh + 1
        logits = self.score(pooled, self.rows)  # the stored rows are constants of the step
        if labels is not None and torch.is_grad_enabled():
            gold = labels[labels >= 0].unique().to(logits.device)
            limit = self.config.label_gradient_words
            if limit is not None and len(gold) > limit:
                gold = gold[torch.randperm(len(gold), device=gold.device)[:limit]]
            words = torch.cat([gold, self.hard_negatives(logits, labels)])
            if len(words):  # their columns scored against their texts encoded with gradients
                fresh = self.score(pooled, encoder.pool(*self.texts(words)), words).to(logits.dtype)
                if self.config.label_training_softmax == "encoded":
                    logits = torch.full_like(logits, UNSCORED)
                logits = logits.index_copy(1, words, fresh)
        return logits

    @torch.no_grad()
    def hard_negatives(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The `config.label_hard_negatives` words, gold words aside, that score highest against any phrase of the
        batch by the stored rows (`logits`): the wrong words the model now finds most alike, encoded with gradients
        too so that the encoder learns to tell them apart (the other rows are constants until encoded anew)."""
        count = min(self.config.label_hard_negatives or 0, logits.shape[-1])
        if not count:
            return labels.new_zeros(0).to(logits.device)
        best = logits.float().amax(dim=0)
        best[labels[labels >= 0].to(logits.device)] = float("-inf")
        best = best.topk(count)
        return best.indices[best.values > float("-inf")]

    def score(self, pooled: torch.Tensor, rows: torch.Tensor, words: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (batch, words) of `rows`, the rows of `words` (default: every word)."""
        bias, weight = (self.bias, self.weight) if words is None else (self.bias[words], self.weight[words])
        return cosine_logits(pooled, rows, self.logit_scale, bias) + nn.functional.linear(pooled, weight)

    def refresh(self, encoder: "BertForWordMapping") -> None:
        """`encode_rows` if training moved the encoder since the rows were encoded (or the texts changed)."""
        if self.stale:
            self.encode_rows(encoder)

    def encode_rows(self, encoder: "BertForWordMapping", in_step: bool = False) -> None:
        """Encode every row anew from its word's text with `encoder` (in eval mode); `in_step`, inside a training
        step, under the step's own mixed precision (bfloat16 where training uses it: the rows are constants of the
        step), else in the model's dtype (the rows that are evaluated, saved and served)."""
        self.rows.copy_(encoder.encode_word_texts(self.text_ids, self.text_mask, keep_autocast=in_step))
        self.stale, self.steps_since_refresh = False, 0

    def freeze(self) -> None:
        """Keep the learned rows and the biases as they are (zero, from the start): words are scored by their text
        alone, and only the encoder and the scale learn."""
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)

    def texts(self, ids: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokenised texts of the words `ids`, (input_ids, attention_mask), cut to their longest."""
        return trim_padding(self.text_ids[ids], self.text_mask[ids])

    def _fit(self, tokens: torch.Tensor) -> torch.Tensor:
        """`tokens` (n, length) padded with 0 or cut to `text_ids`' length."""
        length = self.text_ids.shape[1]
        tokens = tokens[:, :length].to(self.text_ids.device, torch.long)
        return nn.functional.pad(tokens, (0, length - tokens.shape[1]))

    @torch.no_grad()
    def set_texts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Store the words' tokenised texts (num_labels, length), in `id2label` order; `stale` until encoded."""
        if input_ids.shape[0] != self.text_ids.shape[0]:
            raise ValueError(f"expected {self.text_ids.shape[0]} word texts, got {input_ids.shape[0]}")
        self.text_ids.copy_(self._fit(input_ids))
        self.text_mask.copy_(self._fit(attention_mask))
        self.stale = True

    @torch.no_grad()
    def append_rows(self, embeddings: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Add one word per row of `embeddings` (the pooled embedding of its text: its real row) with its tokenised
        text and a zero learned row; each bias is the mean existing bias, so a new word competes on its meaning, not
        on a prior."""
        self.text_ids = torch.cat([self.text_ids, self._fit(input_ids)])
        self.text_mask = torch.cat([self.text_mask, self._fit(attention_mask)])
        self.rows = torch.cat([self.rows, embeddings.to(self.rows.device, self.rows.dtype)])
        weight = self.weight
        self.weight = nn.Parameter(torch.cat([weight, weight.new_zeros(len(embeddings), weight.shape[1])]),
                                   requires_grad=weight.requires_grad)
        bias = self.bias
        self.bias = nn.Parameter(torch.cat([bias, bias.mean().expand(len(embeddings))]),
                                 requires_grad=bias.requires_grad)


class VocabHead(WordHead):
    """The output layer over the encoder's whole vocabulary (`head="vocab"`), as `BertLMPredictionHead` scores
    tokens: its rows are the encoder's input word embeddings (`BertForWordMapping` ties them), plus a bias per
    token. Encoders whose embeddings are narrower than their hidden states (ELECTRA) get a projection first."""

    kind, rows_are = "vocab", "are the encoder's word embeddings, tied"

    def __init__(self, config: BertMapConfig, embedding_size: int):
        super().__init__()
        hidden_size = config.encoder_config.hidden_size
        self.transform = nn.Linear(hidden_size, embedding_size) if embedding_size != hidden_size else None
        self.weight = nn.Parameter(torch.empty(config.num_labels, embedding_size))  # tied to the word embeddings
        self.bias = nn.Parameter(torch.empty(config.num_labels))

    def forward(self, pooled: torch.Tensor, labels: torch.Tensor | None = None,
                encoder: "BertForWordMapping | None" = None) -> torch.Tensor:
        """(batch, hidden) pooled embeddings -> (batch, vocab_size) logits."""
        if self.transform is not None:
            pooled = self.transform(pooled)
        return nn.functional.linear(pooled, self.weight, self.bias)


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

    # Names of the weights saved before the heads were modules, and their names now (see `from_pretrained`).
    _legacy_key_mapping = {r"^logit_scale$": "classifier.logit_scale", r"^vocab_transform\.": "classifier.transform."}

    def _init_weights(self, module: nn.Module) -> None:
        # Sub-models (the encoder) are initialised by their own `_init_weights`; this covers the heads.
        if isinstance(module, TextHead):
            init.zeros_(module.weight)
            init.zeros_(module.bias)
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)
        elif isinstance(module, (LabelHead, VocabHead)):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            init.zeros_(module.bias)
            if getattr(module, "logit_scale", None) is not None:
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

    The phrase runs through `config.encoder_config`'s encoder, `config.pooling` takes one embedding, and the head
    (`self.classifier`) scores it against `config.id2label` (`LabelHead`, `head="labels"`; `TextHead`,
    `head="text"`, rows encoded from the words' texts by the same encoder) or the whole vocabulary (`VocabHead`,
    `head="vocab"`).
    `forward` is a plain classifier; `model.decoding` (a `WordMappingDecoder`, like a language model's
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

        self.dropout = nn.Dropout(config.classifier_dropout)
        if config.head == "labels":
            self.classifier = LabelHead(config)
        elif config.head == "text":
            self.classifier = TextHead(config)
        else:
            word_embeddings = self.encoder.get_input_embeddings()
            vocab_size, embedding_size = word_embeddings.weight.shape
            if config.num_labels != vocab_size:
                raise ValueError(
                    f"head='vocab' needs one label per vocabulary entry: id2label has {config.num_labels} labels, "
                    f"the encoder's vocabulary {vocab_size}."
                )
            self.classifier = VocabHead(config, embedding_size)
            source = next(name for name, p in self.encoder.named_parameters() if p is word_embeddings.weight)
            self._tied_weights_keys = {"classifier.weight": f"encoder.{source}"}
        self.decoding = WordMappingDecoder()
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
        logits = self.classifier(self.dropout(embedding), labels=labels, encoder=self)  # (batch, num_labels)

        loss = None
        if labels is not None:
            gold = multi_hot(labels.to(logits.device), logits.shape[-1]).to(logits.dtype)
            loss = soft_cross_entropy(logits, gold)
        return WordMappingOutput(loss=loss, logits=logits, pooled_output=embedding)

    @torch.no_grad()
    def encode_word_texts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, batch_size: int = 256,
                          keep_autocast: bool = False) -> torch.Tensor:
        """The pooled embeddings (n, hidden) of tokenised word texts (n, length) with the current encoder in eval
        mode, in batches of similar length each cut to its longest text: a `TextHead`'s rows. In the model's own
        dtype even under mixed-precision autocast (training with --bf16): the rows are saved and served like
        weights; `keep_autocast` encodes them under the autocast in force instead (a refresh inside a step)."""
        was_training = self.training
        self.eval()
        order = attention_mask.sum(dim=-1).argsort()
        with torch.autocast(self.device.type, enabled=torch.is_autocast_enabled(self.device.type) and keep_autocast):
            chunks = [self.pool(*trim_padding(input_ids[batch], attention_mask[batch])).float()
                      for batch in order.split(batch_size)]
        self.train(was_training)
        if not chunks:
            return input_ids.new_zeros(0, self.config.encoder_config.hidden_size).float()
        return torch.cat(chunks)[order.argsort().to(chunks[0].device)].to(self.dtype)

    def set_word_texts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Give a `TextHead` its words' tokenised texts (num_labels, length), in `id2label` order, and encode its
        rows from them."""
        self.classifier.set_texts(input_ids, attention_mask)
        self.classifier.refresh(self)

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

    def add_labels(self, names: list[str], input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Append output words `names` without training and write them into `id2label`/`label2id`. Each word's text
        (tokenised: `input_ids`, `attention_mask`, one row per name) is encoded by the current encoder
        (`encode_word_texts`); the head takes that embedding as the word's row (`TextHead`, which keeps the text
        to encode it anew after training) or points a new row that way (`LabelHead`)."""
        if input_ids.shape[0] != len(names):
            raise ValueError(f"expected {len(names)} tokenised word texts, got {input_ids.shape[0]}")
        clashes = sorted(set(names) & set(self.config.label2id)) + sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise ValueError(f"add_labels: already output words or given twice: {clashes}")
        self.classifier.append_rows(self.encode_word_texts(input_ids, attention_mask), input_ids, attention_mask)
        labels = [self.config.id2label[i] for i in range(self.config.num_labels)] + list(names)
        self.config.id2label = dict(enumerate(labels))
        self.config.label2id = {label: i for i, label in enumerate(labels)}

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, then the decoding step from the same files and revision (as
        transformers loads a `generation_config` beside a language model). Weights saved before the heads were
        modules (`logit_scale`, `vocab_transform.*`) load under their current names."""
        kwargs.setdefault("key_mapping", cls._legacy_key_mapping)
        loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # (model, loading info) on request
        # transformers reverses a load's renamings when saving; the legacy names are for loading only.
        model._weight_conversions = [
            conversion for conversion in getattr(model, "_weight_conversions", None) or []
            if not set(getattr(conversion, "source_patterns", ())) & set(cls._legacy_key_mapping)]
        hub_kwargs = {key: kwargs[key] for key in HUB_KWARGS if kwargs.get(key) is not None}
        model.decoding = WordMappingDecoder.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        if model.decoding.memory is not None:
            model.decoding.memory.check(model.config.encoder_config.hidden_size, model.config.num_labels,
                                        f"{pretrained_model_name_or_path}/memory.safetensors")
        return loaded

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, plus the decoding step; a model registered for remote code also
        writes the `word-mapping` pipeline (`custom_pipelines`, its code copied beside this file's), so any save, a
        checkpoint's too, is a folder that `pipeline("word-mapping", ...)` loads."""
        # `register_for_auto_class` maps one Auto class; also map the sequence-classification one so that
        # `pipeline("text-classification", model=..., trust_remote_code=True)` finds the model class.
        if self._auto_class is not None:
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            module = self.__class__.__module__.split(".")[-1]
            auto_map["AutoModelForSequenceClassification"] = f"{module}.{self.__class__.__name__}"
            self.config.auto_map = auto_map
            pipeline_module = WordMappingPipeline.__module__.split(".")[-1]
            self.config.custom_pipelines = {"word-mapping": {
                "impl": f"{pipeline_module}.{WordMappingPipeline.__name__}", "pt": ["AutoModel"], "type": "text"}}
        self.classifier.refresh(self)  # a text head's saved rows are those of the saved encoder
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            self.decoding.save_pretrained(save_directory)
        return result


__all__ = ["BertForWordMapping", "BertMapPreTrainedModel", "LabelHead", "TextHead", "VocabHead", "WordHead",
           "WordMappingOutput"]
