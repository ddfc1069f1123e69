"""The default backbone (all-mpnet-base-v2, joined from its installed parts) on a slice of the built-in data."""

import json
import math
import subprocess
import sys

import pytest
import torch
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
    phrases = ["very chonky", "kinda huge"]  # neither is a stored phrase, so the memory only votes
    expected = mapper.predict(phrases, top_k=3, min_score=0.0)
    assert all(len(top) == 3 for top in expected)
    plain = torch.cat([logits for _, logits, _ in mapper.iter_outputs(phrases)]).topk(3, dim=-1).indices.tolist()

    # The saved folder loads with transformers alone, where hf_bertmap cannot be imported.
    code = block_hf_bertmap_code() + (
        "import json, torch\n"
        "from transformers import AutoModel, AutoTokenizer\n"
        f"path = {str(output)!r}\n"
        "model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()\n"
        "tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)\n"
        "with torch.no_grad():\n"
        "    logits = model(**tokenizer(['very chonky', 'kinda huge'], padding=True, return_tensors='pt')).logits\n"
        "print('TOP3', json.dumps(logits.topk(3, dim=-1).indices.tolist()))\n"
        "from transformers import pipeline\n"
        f"words = pipeline('word-mapping', model={str(output)!r}, trust_remote_code=True)\n"
        "print('WORDS', json.dumps([[r['word'] for r in row] for row in words(['very chonky', 'kinda huge'], "
        "top_k=3, min_score=0.0)]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env=subprocess_env(tmp_path), stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("TOP3 ")]
    assert json.loads(line[5:]) == plain  # the plain classifier, as AutoModel gives it
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("WORDS ")]
    assert json.loads(line[6:]) == [[w for w, _ in top] for top in expected]  # the decoded words, as predict
