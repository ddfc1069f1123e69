"""Render the model card (`hub_card.md`, a Jinja template) with the real results of a training run.

What a card needs besides the model's config (results, data counts, hyperparameters, base model, data
description) is saved beside the model as `bertmap_card.json`, so the card can be rendered again for another
repo id when the model is pushed.
"""

import json
import os
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .configuration_bertmap import BertMapConfig

TEMPLATE_PATH = Path(__file__).parent / "hub_card.md"
CARD_CONTEXT_FILE = "bertmap_card.json"
BUILTIN_DATASET_DESCRIPTION = (
    "WordNet 3.0's adjective → attribute relation (`large → size`, `hot → temperature`): every adjective lemma "
    "with an attribute pointer, plus satellite adjectives inheriting their head adjective's attribute. Each "
    "attribute synset is named by its most frequent lemma. Split by adjective, so test adjectives are unseen in "
    "training; the training split also holds copies with modifiers (`very X`, `not very X`)."
)
WORDNET_LICENSE = (
    "WordNet 3.0 is © 2006 Princeton University and used under the "
    "[WordNet License](https://wordnet.princeton.edu/license-and-commercial-use), which allows use, copying and "
    "distribution with its copyright notice."
)


def render_model_card(
    config: BertMapConfig,
    results: dict[str, float],
    data_counts: dict[str, dict[str, int]],
    hyperparameters: dict[str, object],
    base_model: str,
    repo_id: str,
    dataset_name: str = "wordnet-attributes",
    dataset_description: str = BUILTIN_DATASET_DESCRIPTION,
    data_license: str = WORDNET_LICENSE,
    license: str = "apache-2.0",
    template_path: str | Path = TEMPLATE_PATH,
) -> ModelCard:
    """The card for a trained model. `results` holds the run's `test_accuracy`, `test_accuracy_at_5` and
    `test_macro_f1`; they become both the card's table and its `model-index`."""
    missing = [key for key in ("test_accuracy", "test_accuracy_at_5", "test_macro_f1") if key not in results]
    if missing:
        raise ValueError(f"render_model_card: results lack {missing}; evaluate on the test split first")
    model_name = repo_id.split("/")[-1]
    metrics = (("accuracy", "Accuracy@1", "test_accuracy"), ("accuracy", "Accuracy@5", "test_accuracy_at_5"),
               ("f1", "Macro-F1", "test_macro_f1"))
    eval_results = [
        EvalResult(
            task_type="text-classification",
            task_name="Word mapping",
            dataset_type=dataset_name,
            dataset_name=dataset_name,
            dataset_split="test",
            metric_type=metric_type,
            metric_name=metric_name,
            metric_value=round(float(results[key]), 4),
            metric_args={"k": 5} if key.endswith("at_5") else None,
        )
        for metric_type, metric_name, key in metrics
    ]
    card_data = ModelCardData(
        language="en",
        license=license,
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=["bertmap", "word-mapping", "hf_bertmap", "text-classification"],
        base_model=base_model,
        datasets=[dataset_name],
        metrics=["accuracy", "f1"],
        model_name=model_name,
        eval_results=eval_results,
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        repo_id=repo_id,
        encoder_type=config.encoder_config.model_type,
        pooling=config.pooling,
        head=config.head,
        lowercase=config.lowercase,
        num_labels=config.num_labels,
        dataset_description=dataset_description,
        data_license=data_license,
        data_counts=data_counts,
        hyperparameters=hyperparameters,
        test_phrases=data_counts.get("test", {}).get("phrases", 0),
        test_accuracy=results["test_accuracy"],
        test_accuracy_at_5=results["test_accuracy_at_5"],
        test_macro_f1=results["test_macro_f1"],
        test_ece=results.get("test_ece"),
        temperature=config.temperature,
    )


def save_card_context(folder: str | os.PathLike, **context) -> None:
    """Keep the card's inputs (all but the config and repo id) beside the model."""
    with open(os.path.join(folder, CARD_CONTEXT_FILE), "w") as f:
        json.dump(context, f, indent=2)


def load_card_context(folder: str | os.PathLike) -> dict | None:
    path = os.path.join(folder, CARD_CONTEXT_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)
