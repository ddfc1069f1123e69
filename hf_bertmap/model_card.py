"""The model card: `BertMapCardData` holds what a card shows besides the model's config and decoding settings,
`ModelCardCallback` fills it while `Trainer` runs, and `BertMapCardData.render` renders `hub_card.md` (a Jinja
template) with `ModelCard.from_template`, the one place a card is made.

The card data is saved beside the model as `bertmap_card.json`, so the card can be rendered again for another repo
id when the model is pushed. The metadata holds only what the Hub accepts: `base_model` and `datasets` only as Hub
repo ids.
"""

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import CardData, EvalResult, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers import TrainerCallback

from .backbones import hub_id
from .configuration_bertmap import BertMapConfig
from .data import is_builtin
from .decoding_bertmap import DecodingConfig

if TYPE_CHECKING:
    from datasets import DatasetDict

    from .arguments import DataArguments, HeadPlan, ModelArguments

TEMPLATE_PATH = Path(__file__).parent / "hub_card.md"
EXAMPLE_PHRASES = ["fishy", "valuable", "large", "very chonky"]  # the task's examples: the built-in data's widget
CARD_CONTEXT_FILE = "bertmap_card.json"
# The fields `render` fills from the model and the repo id, not saved with the card data.
RENDERED = ("model_name", "repo_id", "encoder_type", "pooling", "head", "head_scoring", "num_labels", "decoding")
# The transformers release the modeling, decoding and pipeline code saved with a model needs.
MIN_TRANSFORMERS = "5.24"
BUILTIN_DATASET_DESCRIPTION = (
    "A hand-written table of about 14,000 everyday phrases with the word a person would answer: plain words "
    "(`chubby → weight | size`), slang and regional words (`skint → wealth`), respellings, intensified, hedged and "
    "negated forms, comparatives, similes, idioms and descriptions (`costs an arm and a leg → price`, `could hear "
    "a pin drop → volume`), over 222 of the 285 words; and WordNet 3.0's adjective → attribute relation (`large → "
    "size`, `hot → temperature`) for the other adjectives. Each attribute is written as its everyday word "
    "(`smell`, not `olfactory property`). The split is grouped: no test phrase shares a head word (`very big`, "
    "`big`) or a WordNet adjective synset (`big`, `large`) with a training phrase, and the everyday phrases have "
    "their own test split; the training split also holds comparatives and typos of its phrases."
)
BUILTIN_LIMITATIONS = [
    "Trained on everyday phrases and WordNet's adjectives: those and their modifiers are covered; made-up words "
    "(`chonky`), rare misspellings and whole sentences are outside that data and get less reliable words.",
    "WordNet gives many adjectives several attributes (`high → height | level`), so top-1 accuracy has a ceiling "
    "well below 100%.",
]
WORDNET_LICENSE = (
    "WordNet 3.0 is © 2006 Princeton University and used under the "
    "[WordNet License](https://wordnet.princeton.edu/license-and-commercial-use), which allows use, copying and "
    "distribution with its copyright notice."
)


def hub_repo_id(value: str | None) -> str | None:
    """`value` if the Hub would accept it as a repo id in card metadata; None for a local path or anything else."""
    if not value or value.startswith((".", "/", "~")) or os.path.isdir(value):
        return None
    try:
        validate_repo_id(value)
    except HFValidationError:
        return None
    return value


@dataclass
class BertMapCardData(CardData):
    r"""
    What a bertmap model card shows besides the model's config and decoding settings, as SetFit's and
    sentence-transformers' card data: filled while training (`ModelCardCallback`: the training arguments and one
    row per evaluation; `train.py`: the data, the test results and the decoding fit), saved beside the model as
    `bertmap_card.json`, and rendered in one place, `render`, for whichever repo id the model is pushed to.
    `to_dict` gives the Hub metadata (the card's YAML front matter): `base_model` and `datasets` only as Hub repo ids.

    Args:
        results (`dict[str, float]`):
            The test split's `test_accuracy`, `test_accuracy_at_5`, `test_macro_f1` (and `test_ece`,
            `test_coverage` when measured): the card's results table and its `model-index`.
        decoding_results (`dict[str, float]`):
            What fitting the decoding step measured (validation ECE before/after, memory size...).
        data_counts (`dict[str, dict[str, int]]`):
            Phrases, pairs and distinct words per split.
        hyperparameters (`dict[str, object]`):
            The hyperparameter table.
        base_model (`str`, *optional*):
            The Hub id trained from; a local path is left out of the metadata.
        dataset_name (`str`, *optional*):
            A Hub dataset id, or None (the data is then described in the body only).
        training_results (`list[dict]`):
            One row per evaluation: epoch, step, training loss, validation loss, accuracy@1 and @5.
        pictures (`list[str]`):
            Picture files beside the card (training curve, reliability diagram).
    """

    results: dict[str, float] = field(default_factory=dict)
    decoding_results: dict[str, float] = field(default_factory=dict)
    data_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    hyperparameters: dict[str, object] = field(default_factory=dict)
    base_model: str | None = None
    license: str = "apache-2.0"
    language: str = "en"
    dataset_name: str | None = None
    dataset_description: str = BUILTIN_DATASET_DESCRIPTION
    data_license: str = WORDNET_LICENSE
    limitations: list[str] | None = None
    widget: list[str] = field(default_factory=list)
    training_results: list[dict] = field(default_factory=list)
    framework_versions: dict[str, str] = field(default_factory=dict)
    pictures: list[str] = field(default_factory=list)
    # What `render` takes from the model it is rendered for and the repo it goes to.
    model_name: str | None = None
    repo_id: str | None = None
    encoder_type: str | None = None
    pooling: str | None = None
    head: str | None = None
    head_scoring: str | None = None
    num_labels: int | None = None
    decoding: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        """The k of the accuracy@k in `results` (`test_accuracy_at_K`)."""
        return top_k_of(self.results, "test_accuracy_at_") or 5

    def to_dict(self) -> dict:
        """Every field, and what the template derives from them: the template's context (as SetFit's card data)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values.update(
            base_model=hub_repo_id(self.base_model), k=self.k, min_transformers=MIN_TRANSFORMERS,
            limitations=BUILTIN_LIMITATIONS if self.limitations is None else self.limitations,
            examples=self.widget[:2] or ["very chonky", "scentless"],
            test_phrases=self.data_counts.get("test", {}).get("phrases", 0),
            test_everyday_phrases=self.data_counts.get("test_everyday", {}).get("phrases", 0),
        )
        return values

    def to_yaml(self, line_break=None, original_order=None) -> str:
        """The Hub metadata (the card's YAML front matter): language, licence, library, pipeline tag, tags, base
        model, datasets, metrics, the widget and a `model-index` of distinct accuracy@1, accuracy@k and macro-F1
        entries."""
        dataset_id = hub_repo_id(self.dataset_name)
        metrics = (("accuracy", "Accuracy@1", "test_accuracy", None),
                   ("top_k_accuracy", f"Accuracy@{self.k}", f"test_accuracy_at_{self.k}", {"k": self.k}),
                   ("f1", "Macro-F1", "test_macro_f1", {"average": "macro"}))
        eval_results = [
            EvalResult(task_type="text-classification", task_name="Word mapping",
                       dataset_type=dataset_id or "custom",
                       dataset_name=dataset_id or "word-mapping pairs (see the card)", dataset_split=split,
                       metric_type=metric_type, metric_name=metric_name,
                       metric_value=round(float(self.results[key.replace("test_", f"{split}_", 1)]), 4),
                       metric_args=args)
            for split in ("test", "test_everyday")
            for metric_type, metric_name, key, args in metrics if key.replace("test_", f"{split}_", 1) in self.results
        ]
        return ModelCardData(
            language=self.language, license=self.license, library_name="transformers",
            pipeline_tag="text-classification", tags=["bertmap", "word-mapping", "hf_bertmap", "text-classification"],
            base_model=hub_repo_id(self.base_model), datasets=[dataset_id] if dataset_id else None,
            metrics=["accuracy", "f1"], model_name=self.model_name, eval_results=eval_results or None,
            widget=[{"text": phrase} for phrase in self.widget] or None,
        ).to_yaml(line_break=line_break, original_order=original_order)

    def render(self, config: BertMapConfig, decoding: DecodingConfig, repo_id: str,
               template_path: str | Path = TEMPLATE_PATH) -> ModelCard:
        """The card for `repo_id` from `hub_card.md`, with the model's `config` and `decoding` settings."""
        missing = [key for key in ("test_accuracy", f"test_accuracy_at_{self.k}", "test_macro_f1")
                   if key not in self.results]
        if missing:
            raise ValueError(f"render: results lack {missing}; evaluate on the test split first")
        card_data = dataclasses.replace(
            self, model_name=repo_id.split("/")[-1], repo_id=repo_id, encoder_type=config.encoder_config.model_type,
            pooling=config.pooling, head=config.head, head_scoring=config.head_scoring, num_labels=config.num_labels,
            decoding=dataclasses.asdict(decoding))
        return ModelCard.from_template(card_data, template_path=str(template_path))

    def write(self, folder: str | os.PathLike, config: BertMapConfig, decoding: DecodingConfig, repo_id: str) -> None:
        """Save the card data (`save`) and the card rendered for `repo_id` (`README.md`) into `folder`."""
        self.save(folder)
        self.render(config, decoding, repo_id).save(os.path.join(folder, "README.md"))

    def save(self, folder: str | os.PathLike) -> None:
        """Keep the card's inputs beside the model (`bertmap_card.json`), to render it again for another repo id."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in RENDERED}
        with open(os.path.join(folder, CARD_CONTEXT_FILE), "w") as f:
            json.dump(fields, f, indent=2)

    @classmethod
    def for_run(cls, model_args: "ModelArguments", data_args: "DataArguments", config: BertMapConfig,
                data_counts: dict, splits: "DatasetDict", plan: "HeadPlan") -> "BertMapCardData":
        """The card data known before training: the model's and the data's settings, the data counts, and the data's
        description and widget; `ModelCardCallback` adds the training arguments and the per-epoch results."""
        name = model_args.model_name_or_path
        base_model = base_model_of(name)
        hyperparameters = {
            "backbone": base_model or os.path.basename(os.path.normpath(name)),  # a Hub id, never a local path
            "pooling": config.pooling, "head": config.head, "head scoring": config.head_scoring,
            "frozen encoder layers": plan.freeze_layers, "head rows fixed": plan.freeze_head,
            "head initialised from label names": model_args.init_head_from_label_names,
            **non_default_arguments(model_args, data_args),
        }
        if config.head == "text":
            hyperparameters["word rows encoded anew every"] = f"{config.label_refresh_steps} steps"
            hyperparameters["wrong words encoded with gradients per step"] = config.label_hard_negatives
            hyperparameters["training softmax over"] = f"{config.label_training_softmax} words"
        if data_args.label_descriptions:  # a file's name, never its path
            hyperparameters["word descriptions"] = os.path.basename(data_args.label_descriptions)
        card_data = cls(data_counts=data_counts, hyperparameters=hyperparameters, base_model=base_model,
                        license=model_args.license, language=model_args.language, widget=list(EXAMPLE_PHRASES))
        if not is_builtin(data_args):
            source = next(name for name in (data_args.dataset_name, data_args.train_file, data_args.validation_file,
                                            data_args.test_file) if name)
            examples = splits["test"] if len(splits["test"]) else splits["validation"]
            card_data = dataclasses.replace(card_data, dataset_name=data_args.dataset_name,
                                            dataset_description=f"User data: `{os.path.basename(source)}`.",
                                            data_license="", limitations=[], widget=list(examples["phrase"][:3]))
        return card_data

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "BertMapCardData | None":
        """The card data saved in `folder`, or None."""
        path = os.path.join(folder, CARD_CONTEXT_FILE)
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


class ModelCardCallback(TrainerCallback):
    """Fills a `BertMapCardData` as `Trainer` runs: the training arguments' hyperparameters and the framework
    versions when training begins (with the rows of a resumed run's earlier evaluations), one results row per
    evaluation, with the last training loss logged before it."""

    def __init__(self, card_data: BertMapCardData):
        self.card_data = card_data
        self.training_loss: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.card_data.hyperparameters.update({
            "learning_rate": args.learning_rate,
            "head_learning_rate": getattr(args, "head_learning_rate", None) or args.learning_rate,
            "epochs": args.num_train_epochs,
            "train_batch_size": args.per_device_train_batch_size * max(1, args.world_size),
            "seed": args.seed,
            "mixed_precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "no",
        })
        self.card_data.framework_versions = framework_versions()
        self.card_data.training_results = epoch_results(state.log_history)
        self.training_loss = next((entry["loss"] for entry in reversed(state.log_history) if "loss" in entry), None)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.training_loss = logs["loss"]

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_accuracy" in metrics:
            self.card_data.training_results.append(
                epoch_row(dict(metrics, epoch=state.epoch, step=state.global_step), self.training_loss))


# Arguments a card never lists: paths, tokens and Hub settings (a card is public), and those the table shows resolved.
UNLISTED_ARGUMENTS = {
    "model_name_or_path", "tokenizer_name", "cache_dir", "token", "model_revision", "trust_remote_code", "license",
    "language", "train_file", "validation_file", "test_file", "label_file", "label_descriptions", "dataset_name",
    "dataset_config_name", "overwrite_cache", "preprocessing_num_workers", "pooling", "head", "head_scoring",
    "freeze_layers", "freeze_head", "init_head_from_label_names", "label_refresh_steps", "label_hard_negatives",
    "label_training_softmax",
}


def non_default_arguments(*arguments) -> dict[str, object]:
    """The fields of these argument dataclasses that differ from their defaults, by flag name (as
    sentence-transformers' card lists its `non_default_hyperparameters`); `UNLISTED_ARGUMENTS` are left out."""
    values = {}
    for args in arguments:
        for f in dataclasses.fields(args):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if f.name not in UNLISTED_ARGUMENTS and getattr(args, f.name) != default:
                values[f"--{f.name}"] = getattr(args, f.name)
    return values


def base_model_of(name: str) -> str | None:
    """The Hub id a card's `base_model` may name: a packaged backbone's Hub id, a Hub id as given, a bertmap
    checkpoint's own base model; None for a local folder with none."""
    card_data = BertMapCardData.load(name) if os.path.isdir(name) else None
    if card_data is not None:
        return card_data.base_model
    return hub_id(name)


def epoch_results(log_history: list[dict]) -> list[dict]:
    """One row per evaluation in Trainer's `log_history` (Trainer's own card table): epoch, step, the last
    training loss logged before it, validation loss, accuracy@1 and @5."""
    rows, last_loss = [], None
    for entry in log_history:
        if "loss" in entry:
            last_loss = entry["loss"]
        if "eval_accuracy" in entry:
            rows.append(epoch_row(entry, last_loss))
    return rows


def epoch_row(metrics: dict, training_loss: float | None) -> dict:
    """The card's row for one evaluation (`eval_*` metrics with its epoch and step): epoch, step, the last training
    loss logged before it, validation loss, accuracy@1 and accuracy@k."""
    k = top_k_of(metrics, "eval_accuracy_at_")
    return {"epoch": metrics.get("epoch"), "step": metrics.get("step"), "training_loss": training_loss,
            "validation_loss": metrics.get("eval_loss"), "accuracy": metrics["eval_accuracy"],
            "accuracy_at_k": metrics.get(f"eval_accuracy_at_{k}"), "k": k}


def top_k_of(metrics: dict, prefix: str) -> int | None:
    """The k of the `{prefix}K` metric among `metrics` (the largest if several), or None."""
    ks = [int(key[len(prefix):]) for key in metrics if key.startswith(prefix) and key[len(prefix):].isdigit()]
    return max(ks, default=None)


def framework_versions() -> dict[str, str]:
    """The versions of the libraries a run used (Trainer's card lists the same)."""
    import datasets
    import tokenizers
    import torch
    import transformers

    from . import __version__

    return {"hf_bertmap": __version__, "transformers": transformers.__version__, "torch": torch.__version__,
            "datasets": datasets.__version__, "tokenizers": tokenizers.__version__}


__all__ = ["BertMapCardData", "ModelCardCallback", "epoch_results", "framework_versions", "hub_repo_id"]
