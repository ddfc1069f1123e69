"""The real backbone (all-MiniLM-L6-v2 from site-packages) on a slice of the built-in WordNet data."""

import json
import math
import subprocess
import sys

import pytest
from conftest import block_hf_bertmap_code, subprocess_env

from hf_bertmap import WordMapper
from hf_bertmap.training import main

pytestmark = pytest.mark.slow


def test_default_backbone_trains_on_wordnet_and_loads_anywhere(tmp_path):
    output = tmp_path / "bertmap-attributes"
    results = main([
        "--output_dir", str(output), "--max_train_samples", "400", "--max_eval_samples", "150",
        "--max_predict_samples", "300", "--num_train_epochs", "2", "--learning_rate", "5e-4",
        "--disable_tqdm", "true", "--use_cpu", "true",
    ])
    config = json.loads((output / "config.json").read_text())
    num_labels = len(config["id2label"])
    assert config["pooling"] == "mean" and (output / "decoding_config.json").is_file()
    # Better than chance: the validation loss is well under log(num_labels) and the top-5 finds a gold often.
    log = json.loads((output / "trainer_state.json").read_text())["log_history"]
    assert [e["eval_loss"] for e in log if "eval_loss" in e][-1] < math.log(num_labels) - 0.5
    assert results["test_accuracy_at_5"] > 5 * 5 / num_labels

    mapper = WordMapper.from_pretrained(output)
    expected = mapper.predict(["very chonky", "large"], top_k=3, min_score=0.0)
    assert all(len(top) == 3 for top in expected)

    # The saved folder loads with transformers alone, where hf_bertmap cannot be imported.
    code = block_hf_bertmap_code() + (
        "import json, torch\n"
        "from transformers import AutoModel, AutoTokenizer\n"
        f"path = {str(output)!r}\n"
        "model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()\n"
        "tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)\n"
        "with torch.no_grad():\n"
        "    probs = model(**tokenizer(['very chonky', 'large'], padding=True, return_tensors='pt')).logits.softmax(-1)\n"
        "top = probs.topk(3, dim=-1)\n"
        "print('TOP3', json.dumps([[model.config.id2label[i] for i in row] for row in top.indices.tolist()]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env=subprocess_env(tmp_path), stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("TOP3 ")]
    assert json.loads(line[5:]) == [[w for w, _ in top] for top in expected]
