"""Push to and pull from a Hub with the real huggingface_hub client, against the local Hub server in hub_server.py.

Every client runs in a fresh subprocess whose HF_ENDPOINT points at the server, with its own cache.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import block_hf_bertmap_code, make_model, write_tiny_pairs
from hub_server import LocalHub

from hf_bertmap import WordMapper
from hf_bertmap.training import parse_args

ROOT = Path(__file__).resolve().parents[1]
REPO = "test-user/tiny-mapper"
PHRASES = ["large", "very hot", "fishy"]


def hub_env(hub: LocalHub, home: Path, token: bool = True, **extra) -> dict[str, str]:
    # The hub tests set what they need themselves: no HF_* or TRANSFORMERS_OFFLINE setting of the caller leaks in.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HF_") and k not in ("PYTHONPATH", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1",
               HF_MODULES_CACHE=str(home / "modules"), TOKENIZERS_PARALLELISM="false")
    if token:
        env["HF_TOKEN"] = hub.token
    env.update(extra)
    return env


def run(code: str, env: dict, cwd: Path, block: bool = False) -> subprocess.CompletedProcess:
    source = (block_hf_bertmap_code() if block else "") + code
    result = subprocess.run([sys.executable, "-c", source], env=env, cwd=cwd, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=300)
    return result


def last_json(result: subprocess.CompletedProcess):
    assert result.returncode == 0, result.stderr[-4000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line[len("RESULT "):])


LOAD_EVERYTHING = """
import json
from transformers import AutoModel, AutoModelForSequenceClassification, pipeline
kwargs = {kwargs}
model = AutoModel.from_pretrained("{repo}", trust_remote_code=True, **kwargs)
classifier_model = AutoModelForSequenceClassification.from_pretrained("{repo}", trust_remote_code=True, **kwargs)
assert type(model).__name__ == type(classifier_model).__name__ == "BertForWordMapping"
assert not type(model).__module__.startswith("hf_bertmap")
text = pipeline("text-classification", model="{repo}", trust_remote_code=True, top_k=3, **kwargs)
words = pipeline("word-mapping", model="{repo}", trust_remote_code=True, **kwargs)
phrases = {phrases}
out = {{
    "text-classification": [[r["label"] for r in rows] for rows in text(phrases)],
    "word-mapping": [[r["word"] for r in rows] for rows in words(phrases, top_k=3, batch_size=2)],
    "single": words(phrases[0], top_k=2),
    "module": type(model).__module__,
}}
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with LocalHub(tmp_path_factory.mktemp("hub")) as server:
        yield server
    assert not server.unhandled, f"routes the local hub does not serve: {server.unhandled}"


@pytest.fixture(scope="module")
def pushed(hub, tiny_backbone, tmp_path_factory):
    """`python train.py ... --push_to_hub` of a tiny model into a private repo; returns the local output folder."""
    work = tmp_path_factory.mktemp("push")
    files = write_tiny_pairs(work)
    output = work / "out"
    command = [
        sys.executable, str(ROOT / "train.py"), "--model_name_or_path", str(tiny_backbone),
        "--train_file", str(files["train"]), "--validation_file", str(files["validation"]),
        "--test_file", str(files["test"]), "--output_dir", str(output), "--num_train_epochs", "3",
        "--learning_rate", "3e-3", "--disable_tqdm", "true", "--use_cpu", "true",
        "--push_to_hub", "--hub_model_id", REPO, "--hub_private_repo", "true",
    ]
    result = subprocess.run(command, env=hub_env(hub, work / "home"), cwd=work, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return output


def local_top3(folder: Path) -> list[list[str]]:
    return [[w for w, _ in top] for top in WordMapper.from_pretrained(folder).predict(PHRASES, top_k=3)]


def local_plain_top3(folder: Path) -> list[list[str]]:
    """The plain classifier's top 3 (what `text-classification` shows: logits, no decoding step)."""
    mapper = WordMapper.from_pretrained(folder)
    logits = torch.cat([batch for _, batch, _ in mapper.iter_outputs(PHRASES)])
    return [[mapper.words[i] for i in row] for row in logits.topk(3, dim=-1).indices.tolist()]


@pytest.mark.slow  # a push to the local Hub server, end to end
def test_train_py_pushes_model_code_tokenizer_card_and_results(hub, pushed):
    _, files = hub.store.files(REPO, "main")
    assert {"config.json", "configuration_bertmap.py", "modeling_bertmap.py", "pipeline_bertmap.py",
            "decoding_bertmap.py", "decoding_config.json", "memory.safetensors", "model.safetensors",
            "tokenizer.json", "tokenizer_config.json", "README.md", "all_results.json"} <= set(files)
    assert not any(path.startswith("checkpoint-") for path in files)
    config = json.loads(hub.store.blob(files["config.json"]))
    assert config["auto_map"]["AutoModel"] == "modeling_bertmap.BertForWordMapping"
    assert config["custom_pipelines"]["word-mapping"]["impl"] == "pipeline_bertmap.WordMappingPipeline"

    results = json.loads((pushed / "all_results.json").read_text())
    card = hub.store.blob(files["README.md"]).decode()
    metadata = yaml.safe_load(card.split("---")[1])
    metrics = {m["name"]: m["value"] for m in metadata["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"Accuracy@1": round(results["test_accuracy"], 4),
                       "Accuracy@5": round(results["test_accuracy_at_5"], 4),
                       "Macro-F1": round(results["test_macro_f1"], 4)}
    assert metadata["model-index"][0]["name"] == "tiny-mapper"
    assert f'AutoModel.from_pretrained("{REPO}", trust_remote_code=True)' in card
    assert hub.store.meta(REPO)["private"] is True


@pytest.mark.slow  # a push to the local Hub server, end to end
def test_private_repo_is_hidden_without_a_token(hub, pushed, tmp_path):
    result = run(f"from huggingface_hub import HfApi\nHfApi().model_info({REPO!r})\n",
                 hub_env(hub, tmp_path / "home", token=False), tmp_path)
    assert result.returncode != 0 and "RepositoryNotFoundError" in result.stderr


@pytest.mark.slow  # a push to the local Hub server, end to end
def test_pushed_model_loads_anywhere_and_gives_the_local_top_k(hub, pushed, tmp_path):
    code = LOAD_EVERYTHING.format(repo=REPO, kwargs="{}", phrases=PHRASES)
    out = last_json(run(code, hub_env(hub, tmp_path / "home"), tmp_path, block=True))
    expected = local_top3(pushed)
    assert out["text-classification"] == local_plain_top3(pushed)
    assert out["word-mapping"] == expected
    assert [r["word"] for r in out["single"]] == expected[0][:2]
    assert "modeling_bertmap" in out["module"]


@pytest.mark.slow  # a push to the local Hub server, end to end
def test_second_load_hits_the_cache_and_offline_mode_still_loads(hub, pushed, tmp_path):
    env = hub_env(hub, tmp_path / "home")
    code = LOAD_EVERYTHING.format(repo=REPO, kwargs="{}", phrases=PHRASES)
    first = last_json(run(code, env, tmp_path, block=True))
    downloads = len(hub.downloads)
    second = last_json(run(code, env, tmp_path, block=True))
    assert len(hub.downloads) == downloads, hub.downloads[downloads:]
    requests = len(hub.requests)
    offline = last_json(run(code, dict(env, HF_HUB_OFFLINE="1"), tmp_path, block=True))
    assert len(hub.requests) == requests
    assert first["word-mapping"] == second["word-mapping"] == offline["word-mapping"]


@pytest.mark.slow  # a push to the local Hub server, end to end
def test_word_mapper_push_to_a_branch_skips_unchanged_files_and_a_revision_can_be_pinned(hub, pushed, tmp_path):
    repo = "test-user/mapper-branches"
    push = (
        "import json\nfrom hf_bertmap import WordMapper\n"
        f"mapper = WordMapper.from_pretrained({str(pushed)!r})\n"
        f"info = mapper.push_to_hub({repo!r}, revision='v1')\n"
        f"again = mapper.push_to_hub({repo!r}, revision='v1')\n"
        "print('RESULT ' + json.dumps([info.oid, again.oid]))\n"
    )
    env = hub_env(hub, tmp_path / "home")
    first_oid, second_oid = last_json(run(push, env, tmp_path))
    assert first_oid == second_oid, "re-pushing an unchanged model must not make a commit"
    assert [c for c in hub.commits if c[0] == repo] == [(repo, "v1", first_oid)]
    _, on_main = hub.store.files(repo, "main")
    _, on_v1 = hub.store.files(repo, "v1")
    assert set(on_main) == {".gitattributes"} and "model.safetensors" in on_v1
    card = hub.store.blob(on_v1["README.md"]).decode()
    assert f'pipeline("word-mapping", model="{repo}", trust_remote_code=True)' in card

    for revision in ("v1", first_oid):
        code = LOAD_EVERYTHING.format(repo=repo, kwargs={"revision": revision}, phrases=PHRASES)
        out = last_json(run(code, hub_env(hub, tmp_path / f"home-{revision}"), tmp_path, block=True))
        assert out["word-mapping"] == local_top3(pushed)
    result = run(f"from transformers import AutoModel\nAutoModel.from_pretrained({repo!r}, trust_remote_code=True)\n",
                 hub_env(hub, tmp_path / "home-main"), tmp_path, block=True)
    assert result.returncode != 0 and "config.json" in result.stderr  # main holds no model


@pytest.mark.slow  # a push to the local Hub server, end to end
def test_word_mapper_and_cli_load_from_the_hub(hub, pushed, tmp_path):
    env = hub_env(hub, tmp_path / "home")
    code = (
        "import json\nfrom hf_bertmap import WordMapper\n"
        f"mapper = WordMapper.from_pretrained({REPO!r})\n"
        f"print('RESULT ' + json.dumps([[w for w, _ in top] for top in mapper.predict({PHRASES!r}, top_k=3)]))\n"
    )
    assert last_json(run(code, env, tmp_path)) == local_top3(pushed)
    result = subprocess.run([sys.executable, "-m", "hf_bertmap.cli", "predict", REPO, *PHRASES, "--json",
                             "--top-k", "3"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [[p["word"] for p in r["predictions"]] for r in records] == local_top3(pushed)


@pytest.mark.slow  # a push to the local Hub server, end to end
def test_the_hub_refuses_a_card_whose_base_model_is_a_local_path(hub, tmp_path):
    card = tmp_path / "README.md"
    card.write_text(f"---\nbase_model: {tmp_path}\nlicense: apache-2.0\n---\n# a model\n")
    code = ("from huggingface_hub import HfApi\napi = HfApi()\napi.create_repo('test-user/bad-card', exist_ok=True)\n"
            f"api.upload_file(path_or_fileobj={str(card)!r}, path_in_repo='README.md', repo_id='test-user/bad-card')\n")
    result = run(code, hub_env(hub, tmp_path / "home"), tmp_path)
    assert result.returncode != 0 and "Invalid metadata in README.md" in result.stderr
    assert '"base_model" must hold Hub repo ids' in result.stderr


@pytest.mark.slow  # a push to the local Hub server, end to end
def test_model_push_to_hub_uploads_weights_config_and_code(hub, saved_model, tmp_path):
    repo = "test-user/bare-model"
    push = ("from hf_bertmap import BertForWordMapping\n"
            f"BertForWordMapping.from_pretrained({str(saved_model)!r}).push_to_hub({repo!r})\n")
    result = run(push, hub_env(hub, tmp_path / "home"), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    _, files = hub.store.files(repo, "main")
    assert {"config.json", "model.safetensors", "configuration_bertmap.py", "modeling_bertmap.py"} <= set(files)
    assert json.loads(hub.store.blob(files["config.json"]))["auto_map"]["AutoModel"] == (
        "modeling_bertmap.BertForWordMapping")


@pytest.mark.slow  # a push to the local Hub server, end to end
def test_train_py_honours_hub_revision(hub, tiny_backbone, tmp_path):
    repo, files = "test-user/branch-trained", write_tiny_pairs(tmp_path)
    command = [sys.executable, str(ROOT / "train.py"), "--model_name_or_path", str(tiny_backbone),
               "--train_file", str(files["train"]), "--validation_file", str(files["validation"]),
               "--test_file", str(files["test"]), "--output_dir", str(tmp_path / "out"), "--num_train_epochs", "1",
               "--use_cpu", "true", "--disable_tqdm", "true",
               "--push_to_hub", "--hub_model_id", repo, "--hub_revision", "experiment"]
    result = subprocess.run(command, env=hub_env(hub, tmp_path / "home"), cwd=tmp_path, capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    _, on_branch = hub.store.files(repo, "experiment")
    _, on_main = hub.store.files(repo, "main")
    assert {"model.safetensors", "README.md", "all_results.json"} <= set(on_branch)
    assert "model.safetensors" not in on_main


@pytest.mark.slow  # a push to the local Hub server, end to end
def test_push_without_a_token_fails_before_training_with_a_clear_error(hub, tiny_backbone, tmp_path):
    command = [sys.executable, str(ROOT / "train.py"), "--model_name_or_path", str(tiny_backbone),
               "--train_file", str(write_tiny_pairs(tmp_path)["train"]), "--output_dir", str(tmp_path / "out"),
               "--push_to_hub", "--hub_model_id", "test-user/no-token", "--use_cpu", "true"]
    result = subprocess.run(command, env=hub_env(hub, tmp_path / "home", token=False), cwd=tmp_path,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert result.returncode != 0
    assert "--push_to_hub needs a Hub token" in result.stderr
    assert not (tmp_path / "out").exists()

    model_dir = tmp_path / "model"
    make_model().save_pretrained(model_dir)
    push = (f"from hf_bertmap import WordMapper\nfrom transformers import AutoTokenizer\n"
            f"from hf_bertmap import BertForWordMapping\n"
            f"m = WordMapper(BertForWordMapping.from_pretrained({str(model_dir)!r}), "
            f"AutoTokenizer.from_pretrained({str(tiny_backbone)!r}))\n"
            "m.push_to_hub('test-user/no-token')\n")
    result = run(push, hub_env(hub, tmp_path / "home", token=False), tmp_path)
    assert result.returncode != 0 and "401" in result.stderr and "Invalid credentials" in result.stderr


@pytest.mark.parametrize("repo_id", ["bad repo", "user/name/extra", "user/--bad", "a" * 97])
def test_an_invalid_repo_id_is_refused_when_arguments_are_parsed(repo_id):
    with pytest.raises(ValueError, match="--hub_model_id"):
        parse_args(["--push_to_hub", "--hub_model_id", repo_id])


def test_a_model_folder_missing_files_gets_an_error_naming_them(saved_model, tmp_path):
    no_config = tmp_path / "no-config"
    no_config.mkdir()
    (no_config / "model.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no-config: no config.json"):
        WordMapper.from_pretrained(no_config)
    (saved_model / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"tiny-mapper: no weights \(model.safetensors\)"):
        WordMapper.from_pretrained(saved_model)


def test_a_pickle_checkpoint_is_refused_unless_allowed(tmp_path, tokenizer):
    folder = tmp_path / "pickled"
    model = make_model()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match="only pytorch_model.bin .* pass allow_pickle=True"):
        WordMapper.from_pretrained(folder)
    mapper = WordMapper.from_pretrained(folder, allow_pickle=True)
    ids = torch.tensor([[2, 10, 3]])
    assert torch.allclose(mapper.model(input_ids=ids).logits, model.eval()(input_ids=ids).logits)


def contents(data: bytes) -> list[bytes]:
    """A file's bytes, and each member of it if it is a zip archive (torch.save's format)."""
    import io
    import zipfile

    if not zipfile.is_zipfile(io.BytesIO(data)):
        return [data]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [data] + [archive.read(name) for name in archive.namelist()]


@pytest.mark.slow  # a push to the local Hub server, end to end
def test_a_push_with_hub_token_writes_the_token_nowhere_and_no_local_path(hub, tiny_backbone, tmp_path):
    repo, files = "test-user/token-push", write_tiny_pairs(tmp_path)
    output = tmp_path / "out"
    command = [sys.executable, str(ROOT / "train.py"), "--model_name_or_path", str(tiny_backbone),
               "--train_file", str(files["train"]), "--validation_file", str(files["validation"]),
               "--test_file", str(files["test"]), "--output_dir", str(output), "--num_train_epochs", "2",
               "--use_cpu", "true", "--disable_tqdm", "true", "--report_to", "tensorboard",
               "--push_to_hub", "--hub_model_id", repo, "--hub_token", hub.token]
    result = subprocess.run(command, env=hub_env(hub, tmp_path / "home", token=False), cwd=tmp_path,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    _, pushed = hub.store.files(repo, "main")
    assert {"training_args.bin", "trainer_state.json", "README.md", "bertmap_card.json"} <= set(pushed)
    token, local = hub.token.encode(), str(tmp_path).encode()
    for path, sha in pushed.items():
        for data in contents(hub.store.blob(sha)):
            assert token not in data, f"the token is in the pushed {path}"
            assert local not in data, f"a local path is in the pushed {path}"
    saved = [p for p in output.rglob("*") if p.is_file()]
    assert any(p.name == "training_args.bin" for p in saved) and any("checkpoint-" in str(p) for p in saved)
    for path in saved:
        assert not any(token in data for data in contents(path.read_bytes())), f"the token is in {path}"
    assert hub.token not in result.stdout + result.stderr


@pytest.mark.slow  # a push to the local Hub server, end to end
def test_checkpoint_pushes_under_hub_strategy_then_the_final_model_with_its_card(hub, tiny_backbone, tmp_path):
    repo, files = "test-user/checkpoint-pushes", write_tiny_pairs(tmp_path)
    command = [sys.executable, str(ROOT / "train.py"), "--model_name_or_path", str(tiny_backbone),
               "--train_file", str(files["train"]), "--validation_file", str(files["validation"]),
               "--test_file", str(files["test"]), "--output_dir", str(tmp_path / "out"), "--num_train_epochs", "2",
               "--use_cpu", "true", "--disable_tqdm", "true", "--push_to_hub", "--hub_model_id", repo,
               "--hub_strategy", "checkpoint"]
    result = subprocess.run(command, env=hub_env(hub, tmp_path / "home"), cwd=tmp_path, capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    messages = [hub.store.commit(name, oid)["message"] for name, _, oid in hub.commits if name == repo]
    assert "Training in progress, epoch 1, checkpoint" in messages
    assert messages[-1] == "Train word mapper with hf_bertmap"
    _, pushed = hub.store.files(repo, "main")
    assert {"last-checkpoint/model.safetensors", "last-checkpoint/optimizer.pt"} <= set(pushed)
    card = hub.store.blob(pushed["README.md"]).decode()
    assert "model-index" in card and f'pipeline("word-mapping", model="{repo}", trust_remote_code=True)' in card
    local = (tmp_path / "out" / "model.safetensors").read_bytes()
    assert hub.store.blob(pushed["model.safetensors"]) == local  # the final model, not a checkpoint's
