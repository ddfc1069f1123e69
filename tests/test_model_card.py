"""The model card rendered from hub_card.md: metadata the Hub accepts, real results, a card a visitor can use."""

from pathlib import Path

import pytest
import yaml
from conftest import make_model
from hub_server import validate_model_card
from huggingface_hub import ModelCard

from hf_bertmap import DecodingConfig
from hf_bertmap.model_card import (
    TEMPLATE_PATH,
    BertMapCardData,
    ModelCardCallback,
    epoch_results,
    framework_versions,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = {"test_accuracy": 0.41234, "test_accuracy_at_5": 0.70111, "test_macro_f1": 0.25}
COUNTS = {"train": {"phrases": 10, "pairs": 12, "targets": 3}, "test": {"phrases": 4, "pairs": 4, "targets": 2}}
LOG = [{"loss": 2.5, "step": 5, "epoch": 0.5}, {"loss": 1.5, "step": 10, "epoch": 1.0},
       {"eval_loss": 1.7, "eval_accuracy": 0.4, "eval_accuracy_at_5": 0.8, "step": 10, "epoch": 1.0}]


def render(decoding=None, results=RESULTS, **kwargs):
    kwargs.setdefault("base_model", "sentence-transformers/all-MiniLM-L6-v2")
    hyperparameters = {"learning_rate": 1e-4, "epochs": 3}
    card_data = BertMapCardData(results=results, data_counts=COUNTS, hyperparameters=hyperparameters, **kwargs)
    return card_data.render(make_model().config, decoding or DecodingConfig(), repo_id="someone/word-mapper")


def metadata(card) -> dict:
    return yaml.safe_load(str(card).split("---")[1])


def test_the_package_ships_the_top_level_template():
    assert TEMPLATE_PATH.read_text() == (ROOT / "hub_card.md").read_text()


def test_front_matter_has_the_hub_fields_and_a_valid_model_index():
    card = render(widget=["fishy", "very chonky"])
    data = metadata(card)
    assert data["language"] == "en" and data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "text-classification" and data["license"] == "apache-2.0"
    assert {"bertmap", "word-mapping"} <= set(data["tags"])
    assert data["base_model"] == "sentence-transformers/all-MiniLM-L6-v2" and "datasets" not in data
    assert data["widget"] == [{"text": "fishy"}, {"text": "very chonky"}]

    (index,) = data["model-index"]
    assert index["name"] == "word-mapper"
    (result,) = index["results"]
    assert result["task"]["type"] == "text-classification" and result["dataset"]["split"] == "test"
    metrics = {m["name"]: m for m in result["metrics"]}
    assert {name: m["value"] for name, m in metrics.items()} == {"Accuracy@1": 0.4123, "Accuracy@5": 0.7011,
                                                                 "Macro-F1": 0.25}
    assert len({m["type"] for m in metrics.values()}) == 3  # accuracy@1 and @5 are distinct entries
    parsed = ModelCard(str(card)).data
    assert [round(r.metric_value, 4) for r in parsed.eval_results] == [0.4123, 0.7011, 0.25]
    assert validate_model_card(str(card)) == []


def test_local_paths_never_reach_the_metadata_and_the_hub_would_refuse_them(tmp_path):
    data = metadata(render(base_model=str(tmp_path), dataset_name=str(tmp_path / "pairs.csv")))
    assert "base_model" not in data and "datasets" not in data
    assert metadata(render(dataset_name="someone/adjectives"))["datasets"] == ["someone/adjectives"]
    refused = str(render()).replace("base_model: sentence-transformers/all-MiniLM-L6-v2", f"base_model: {tmp_path}")
    assert validate_model_card(refused) == [f'"base_model" must hold Hub repo ids, got {str(tmp_path)!r}']
    assert validate_model_card(str(render(license="wordnet"))) == [
        "\"license\" must be one of the Hub's license identifiers, got 'wordnet'"]


def test_licence_and_language_come_from_the_arguments():
    data = metadata(render(license="mit", language="fr"))
    assert (data["license"], data["language"]) == ("mit", "fr")


def test_body_shows_results_epochs_decoding_versions_and_usage():
    decoding = DecodingConfig(temperature=1.7, min_score=0.1, memory_weight=0.3)
    text = str(render(decoding, training_results=epoch_results(LOG), framework_versions=framework_versions(),
                      decoding_results={"memory_size": 4290, "eval_ece_before_calibration": 0.07,
                                        "eval_ece_after_calibration": 0.05},
                      pictures=["training_curve.png"], widget=["fishy", "large"]))
    assert "| accuracy@1 | 0.4123 |" in text and "| macro-F1 | 0.2500 |" in text
    assert "| train | 10 | 12 | 3 |" in text
    assert "| 1.0 | 10 | 1.5000 | 1.7000 | 0.4000 | 0.8000 |" in text
    assert "temperature 1.700" in text and "memory of 4290 training phrases, mixed in with weight 0.3" in text
    assert "0.0700 → 0.0500" in text and "probability of 0.1" in text
    assert "![training curve](training_curve.png)" in text
    assert 'pipeline("word-mapping", model="someone/word-mapper", trust_remote_code=True)' in text
    assert 'mapper(["fishy", "large"], top_k=3)' in text and "pip install hf_bertmap" not in text
    assert "transformers ≥ 5.24" in text and "- torch " in text
    assert "WordNet License" in text and "{{" not in text


def test_user_data_gets_its_own_description_and_no_wordnet_limitations():
    text = str(render(dataset_description="User data: `pairs.csv`.", data_license="", limitations=[]))
    assert "User data: `pairs.csv`." in text and "WordNet" not in text


def test_missing_results_are_refused():
    with pytest.raises(ValueError, match=r"results lack \['test_macro_f1'\]"):
        render(results={"test_accuracy": 0.1, "test_accuracy_at_5": 0.2})


def test_calibration_error_and_coverage_are_reported_when_measured():
    assert "expected calibration error" not in str(render())
    card = render(DecodingConfig(min_score=0.1), results=dict(RESULTS, test_ece=0.04321, test_coverage=0.97))
    assert "| expected calibration error (top word's probability) | 0.0432 |" in str(card)
    assert "| share of phrases answered at `min_score` 0.1 | 0.9700 |" in str(card)


def test_the_card_data_is_saved_beside_the_model_and_renders_the_same_card_again(tmp_path):
    card_data = BertMapCardData(results=RESULTS, data_counts=COUNTS, hyperparameters={"seed": 42}, widget=["large"],
                                training_results=epoch_results(LOG), pictures=["training_curve.png"])
    card_data.save(tmp_path)
    again = BertMapCardData.load(tmp_path)
    assert again == card_data and BertMapCardData.load(tmp_path / "nowhere") is None
    config, decoding = make_model().config, DecodingConfig()
    assert str(again.render(config, decoding, "a/b")) == str(card_data.render(config, decoding, "a/b"))
    assert card_data.model_name is None  # rendering for a repo id leaves the data as it was


def test_the_callback_fills_hyperparameters_when_training_begins_and_a_row_per_evaluation():
    from transformers import TrainerControl, TrainerState, TrainingArguments

    card_data = BertMapCardData(hyperparameters={"pooling": "mean"})
    callback = ModelCardCallback(card_data)
    args = TrainingArguments(output_dir="unused", learning_rate=3e-4, num_train_epochs=2,
                             per_device_train_batch_size=8, seed=7, report_to=[])
    state, control = TrainerState(log_history=LOG[:1]), TrainerControl()
    callback.on_train_begin(args, state, control)
    assert card_data.hyperparameters == {"pooling": "mean", "learning_rate": 3e-4, "head_learning_rate": 3e-4,
                                         "epochs": 2, "train_batch_size": 8, "seed": 7, "mixed_precision": "no"}
    assert card_data.training_results == [] and "torch" in card_data.framework_versions
    callback.on_log(args, state, control, logs={"loss": 1.25})
    state.epoch, state.global_step = 1.0, 10
    callback.on_evaluate(args, state, control, metrics={"eval_loss": 1.5, "eval_accuracy": 0.5,
                                                        "eval_accuracy_at_5": 0.9})
    assert card_data.training_results == [{"epoch": 1.0, "step": 10, "training_loss": 1.25, "validation_loss": 1.5,
                                           "accuracy": 0.5, "accuracy_at_k": 0.9, "k": 5}]


def test_the_k_of_accuracy_at_k_comes_from_the_results():
    results = {"test_accuracy": 0.4, "test_accuracy_at_10": 0.8, "test_macro_f1": 0.3}
    card = render(results=results, training_results=epoch_results(
        [{"eval_loss": 1.7, "eval_accuracy": 0.4, "eval_accuracy_at_10": 0.85, "step": 10, "epoch": 1.0}]))
    text = str(card)
    assert "| accuracy@10 | 0.8000 |" in text and "accuracy@5" not in text
    assert "| 1.0 | 10 | – | 1.7000 | 0.4000 | 0.8500 |" in text
    assert metadata(card)["model-index"][0]["results"][0]["metrics"][1]["name"] == "Accuracy@10"


@pytest.mark.parametrize(("kwargs", "says"), [({}, "by a linear layer (`labels` head)"),
                                              ({"head_scoring": "cosine"}, "by a learned scale times its cosine"),
                                              ({"head": "vocab"}, "by the vocabulary\nhead")])
def test_the_card_says_how_the_head_scores_the_words(kwargs, says):
    card_data = BertMapCardData(results=RESULTS, data_counts=COUNTS)
    assert says in str(card_data.render(make_model(**kwargs).config, DecodingConfig(), "a/b"))


def test_the_hyperparameter_table_lists_the_arguments_that_differ_from_the_defaults(pair_files):
    from hf_bertmap.training import parse_args

    model_args, data_args, _ = parse_args(["--train_file", str(pair_files["train"]), "--slang", "0.2",
                                           "--augment_copies", "3", "--token", "hf_SECRET", "--head", "text"])
    plan = model_args.head_plan(2, "text", 3)
    splits = {"test": {"phrase": ["large"]}}
    card_data = BertMapCardData.for_run(model_args, data_args, make_model(head="text").config, {}, splits, plan)
    listed = card_data.hyperparameters
    assert {key: listed[key] for key in ("--slang", "--augment_copies")} == {"--slang": 0.2, "--augment_copies": 3}
    assert listed["head"] == "text" and listed["frozen encoder layers"] == 0
    assert not {"--train_file", "--token", "--lowercase", "--max_seq_length", "--head"} & set(listed)
    assert "hf_SECRET" not in str(listed) and str(pair_files["train"]) not in str(listed)
