"""Render the model card (`hub_card.md`, a Jinja template) with the real results of a training run.

What a card needs besides the model's config and decoding settings (results, per-epoch log, data counts,
hyperparameters, base model, data description, licence, language, widget phrases, pictures) is saved beside the
model as `bertmap_card.json`, so the card can be rendered again for another repo id when the model is pushed.
The metadata holds only what the Hub accepts: `base_model` and `datasets` only as Hub repo ids.
"""

import json
import os
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from .configuration_bertmap import BertMapConfig
from .decoding_bertmap import DecodingConfig

TEMPLATE_PATH = Path(__file__).parent / "hub_card.md"
CARD_CONTEXT_FILE = "bertmap_card.json"
# The transformers release the modeling, decoding and pipeline code saved with a model needs.
MIN_TRANSFORMERS = "5.24"
BUILTIN_DATASET_DESCRIPTION = (
    "WordNet 3.0's adjective → attribute relation (`large → size`, `hot → temperature`, `expensive → price`): "
    "adjectives with an attribute pointer, satellites inheriting their head adjective's attribute, adjectives "
    "whose derived noun or gloss names an attribute; and a hand-written table of about 600 everyday adjectives "
    "with the word a person would answer (`chubby → weight | size`, `garlicky → smell | taste`), which replaces "
    "WordNet's pairs for those adjectives. Each attribute is written as its everyday word (`smell`, not "
    "`olfactory property`). Split by adjective, so test adjectives are unseen in training; the training split also "
    "holds copies with modifiers (`very X`, `not very X`), comparatives and typos."
)
BUILTIN_LIMITATIONS = [
    "Trained on WordNet's and everyday adjectives: those and their modifiers are covered; slang, made-up words "
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


def render_model_card(
    config: BertMapConfig,
    decoding: DecodingConfig,
    results: dict[str, float],
    data_counts: dict[str, dict[str, int]],
    hyperparameters: dict[str, object],
    base_model: str | None,
    repo_id: str,
    dataset_name: str | None = None,
    dataset_description: str = BUILTIN_DATASET_DESCRIPTION,
    data_license: str = WORDNET_LICENSE,
    limitations: list[str] | None = None,
    license: str = "apache-2.0",
    language: str = "en",
    widget: list[str] | None = None,
    training_results: list[dict] | None = None,
    framework_versions: dict[str, str] | None = None,
    decoding_results: dict[str, float] | None = None,
    pictures: list[str] | None = None,
    template_path: str | Path = TEMPLATE_PATH,
) -> ModelCard:
    """The card for a trained model. `results` holds the run's `test_accuracy`, `test_accuracy_at_5` and
    `test_macro_f1` (and `test_ece`, `test_coverage` when measured); they become both the card's table and its
    `model-index`. `dataset_name` is a Hub dataset id or None (the data is then described in the body only)."""
    missing = [key for key in ("test_accuracy", "test_accuracy_at_5", "test_macro_f1") if key not in results]
    if missing:
        raise ValueError(f"render_model_card: results lack {missing}; evaluate on the test split first")
    model_name = repo_id.split("/")[-1]
    dataset_id = hub_repo_id(dataset_name)
    metrics = (("accuracy", "Accuracy@1", "test_accuracy", None),
               ("top_k_accuracy", "Accuracy@5", "test_accuracy_at_5", {"k": 5}),
               ("f1", "Macro-F1", "test_macro_f1", {"average": "macro"}))
    eval_results = [
        EvalResult(
            task_type="text-classification",
            task_name="Word mapping",
            dataset_type=dataset_id or "custom",
            dataset_name=dataset_id or "word-mapping pairs (see the card)",
            dataset_split="test",
            metric_type=metric_type,
            metric_name=metric_name,
            metric_value=round(float(results[key]), 4),
            metric_args=args,
        )
        for metric_type, metric_name, key, args in metrics
    ]
    widget = widget or []
    card_data = ModelCardData(
        language=language,
        license=license,
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=["bertmap", "word-mapping", "hf_bertmap", "text-classification"],
        base_model=hub_repo_id(base_model),
        datasets=[dataset_id] if dataset_id else None,
        metrics=["accuracy", "f1"],
        model_name=model_name,
        eval_results=eval_results,
        widget=[{"text": phrase} for phrase in widget] or None,
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        repo_id=repo_id,
        base_model=hub_repo_id(base_model),
        encoder_type=config.encoder_config.model_type,
        pooling=config.pooling,
        head=config.head,
        lowercase=decoding.lowercase,
        num_labels=config.num_labels,
        dataset_description=dataset_description,
        data_license=data_license,
        limitations=BUILTIN_LIMITATIONS if limitations is None else limitations,
        data_counts=data_counts,
        hyperparameters=hyperparameters,
        examples=widget[:2] or ["very chonky", "scentless"],
        test_phrases=data_counts.get("test", {}).get("phrases", 0),
        test_accuracy=results["test_accuracy"],
        test_accuracy_at_5=results["test_accuracy_at_5"],
        test_macro_f1=results["test_macro_f1"],
        test_ece=results.get("test_ece"),
        test_coverage=results.get("test_coverage"),
        decoding=decoding,
        decoding_results=decoding_results or {},
        training_results=training_results or [],
        framework_versions=framework_versions or {},
        min_transformers=MIN_TRANSFORMERS,
        pictures=pictures or [],
    )


def epoch_results(log_history: list[dict]) -> list[dict]:
    """One row per evaluation in Trainer's `log_history` (Trainer's own card table): epoch, step, the last
    training loss logged before it, validation loss, accuracy@1 and @5."""
    rows, last_loss = [], None
    for entry in log_history:
        if "loss" in entry:
            last_loss = entry["loss"]
        if "eval_accuracy" in entry:
            rows.append({"epoch": entry.get("epoch"), "step": entry.get("step"), "training_loss": last_loss,
                         "validation_loss": entry.get("eval_loss"), "accuracy": entry["eval_accuracy"],
                         "accuracy_at_5": entry.get("eval_accuracy_at_5")})
    return rows


def framework_versions() -> dict[str, str]:
    """The versions of the libraries a run used (Trainer's card lists the same)."""
    import datasets
    import tokenizers
    import torch
    import transformers

    from . import __version__

    return {"hf_bertmap": __version__, "transformers": transformers.__version__, "torch": torch.__version__,
            "datasets": datasets.__version__, "tokenizers": tokenizers.__version__}


def save_card_context(folder: str | os.PathLike, **context) -> None:
    """Keep the card's inputs (all but the configs and repo id) beside the model."""
    with open(os.path.join(folder, CARD_CONTEXT_FILE), "w") as f:
        json.dump(context, f, indent=2)


def load_card_context(folder: str | os.PathLike) -> dict | None:
    path = os.path.join(folder, CARD_CONTEXT_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)
