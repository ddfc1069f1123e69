"""The model card rendered from hub_card.md: Hub-valid YAML metadata and real results."""

from pathlib import Path

import pytest
import yaml
from conftest import make_model
from huggingface_hub import ModelCard

from hf_bertmap.model_card import TEMPLATE_PATH, render_model_card

ROOT = Path(__file__).resolve().parents[1]
RESULTS = {"test_accuracy": 0.41234, "test_accuracy_at_5": 0.70111, "test_macro_f1": 0.25}
COUNTS = {"train": {"phrases": 10, "pairs": 12, "targets": 3}, "test": {"phrases": 4, "pairs": 4, "targets": 2}}


def render(**kwargs):
    return render_model_card(make_model().config, RESULTS, COUNTS, {"learning_rate": 1e-4, "epochs": 3},
                             base_model="sentence-transformers/all-MiniLM-L6-v2", repo_id="someone/word-mapper",
                             **kwargs)


def test_the_package_ships_the_top_level_template():
    assert TEMPLATE_PATH.read_text() == (ROOT / "hub_card.md").read_text()


def test_front_matter_has_the_hub_fields_and_a_valid_model_index():
    card = render()
    metadata = yaml.safe_load(str(card).split("---")[1])
    assert metadata["language"] == "en" and metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "text-classification" and metadata["license"] == "apache-2.0"
    assert {"bertmap", "word-mapping"} <= set(metadata["tags"])
    assert metadata["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert metadata["datasets"] == ["wordnet-attributes"] and metadata["metrics"] == ["accuracy", "f1"]

    (index,) = metadata["model-index"]
    assert index["name"] == "word-mapper"
    (result,) = index["results"]
    assert result["task"]["type"] == "text-classification"
    assert result["dataset"]["split"] == "test" and result["dataset"]["type"] == "wordnet-attributes"
    metrics = {m["name"]: m for m in result["metrics"]}
    assert {name: m["value"] for name, m in metrics.items()} == {"Accuracy@1": 0.4123, "Accuracy@5": 0.7011,
                                                                 "Macro-F1": 0.25}
    assert all(set(m) >= {"type", "value"} for m in metrics.values())
    # huggingface_hub parses the model-index back into the same results
    parsed = ModelCard(str(card)).data
    assert [round(r.metric_value, 4) for r in parsed.eval_results] == [0.4123, 0.7011, 0.25]


def test_body_shows_results_counts_usage_and_the_wordnet_licence():
    text = str(render())
    assert "| accuracy@1 | 0.4123 |" in text and "| macro-F1 | 0.2500 |" in text
    assert "| train | 10 | 12 | 3 |" in text
    assert 'AutoModel.from_pretrained("someone/word-mapper", trust_remote_code=True)' in text
    assert "WordNet License" in text and "{{" not in text


def test_missing_results_are_refused():
    with pytest.raises(ValueError, match=r"results lack \['test_macro_f1'\]"):
        render_model_card(make_model().config, {"test_accuracy": 0.1, "test_accuracy_at_5": 0.2}, COUNTS, {},
                          base_model="x", repo_id="y")


def test_calibration_error_is_reported_when_the_run_measured_it():
    assert "expected calibration error" not in str(render())
    card = render_model_card(make_model(temperature=1.7).config, dict(RESULTS, test_ece=0.04321), COUNTS, {},
                             base_model="b", repo_id="someone/word-mapper")
    assert "| expected calibration error (top word's probability, temperature 1.700) | 0.0432 |" in str(card)
