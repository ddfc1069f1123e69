"""`bertmap serve`'s API (FastAPI, in process): the same words as `predict`, requests answered together, bad input
answered with a 4xx while the server goes on; and the Inference Endpoints handler saved beside every model."""

import json
import subprocess
import sys
import threading
import time

import pytest
from conftest import block_hf_bertmap_code, subprocess_env

from hf_bertmap import WordMapper
from hf_bertmap.decoding_bertmap import MAX_PHRASE_CHARACTERS
from hf_bertmap.endpoint_handler import MAX_PHRASES_PER_REQUEST

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from hf_bertmap.serving import MAX_BODY_BYTES, ServeSettings, build_app, choose_backend, load_for_serving  # noqa: E402

PHRASES = ["large", "very tall", "fishy", "quite small", "hot", "not cheap"]


@pytest.fixture
def mapper(saved_model) -> WordMapper:
    return WordMapper.from_pretrained(saved_model)


def served(mapper: WordMapper, **settings) -> TestClient:
    return TestClient(build_app(mapper, ServeSettings(**settings)))


def same_words(got: list[dict], expected: list[tuple[str, float]]) -> bool:
    return [w["word"] for w in got] == [w for w, _ in expected] and all(
        abs(w["score"] - s) <= 1e-5 for w, (_, s) in zip(got, expected))


def test_post_and_get_give_the_words_and_scores_of_predict(mapper):
    with served(mapper) as client:
        one = client.post("/predict", json={"inputs": "large", "parameters": {"top_k": 3}})
        many = client.post("/predict", json={"inputs": PHRASES, "parameters": {"top_k": 2, "min_score": 0.0}})
        url = client.get("/predict", params={"q": "very tall", "top_k": 2})
    assert one.status_code == many.status_code == url.status_code == 200
    assert same_words(one.json(), mapper.predict("large", top_k=3))
    expected = mapper.predict(PHRASES, top_k=2, min_score=0.0)
    assert all(same_words(got, words) for got, words in zip(many.json(), expected))
    assert same_words(url.json(), mapper.predict("very tall", top_k=2))


def test_requests_arriving_together_are_answered_in_one_forward_each_with_its_own_settings(mapper):
    results = {}
    with served(mapper, max_batch_size=64, max_wait_ms=200) as client:
        def ask(i: int) -> None:
            results[i] = client.post("/predict", json={"inputs": PHRASES[i], "parameters": {"top_k": 1 + i % 3}})

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(PHRASES))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        forwards = client.app.state.batcher.forwards
    assert forwards < len(PHRASES)
    for i, response in results.items():
        assert response.status_code == 200 and same_words(response.json(), mapper.predict(PHRASES[i], top_k=1 + i % 3))


def test_without_batching_each_request_is_its_own_forward(mapper):
    with served(mapper, batching=False) as client:
        for phrase in PHRASES[:3]:
            assert client.post("/predict", json={"inputs": [phrase, phrase]}).status_code == 200
        assert client.app.state.batcher.forwards == 3


@pytest.mark.parametrize("request_kwargs, status, message", [
    ({"content": b'{"inputs": ["large"', "headers": {"content-type": "application/json"}}, 422, "JSON"),
    ({"json": {"inputs": ""}}, 422, "inputs: expected a non-empty string"),
    ({"json": {"inputs": ["big", "  "]}}, 422, "inputs[1]: expected a non-empty string"),
    ({"json": {"inputs": []}}, 422, "give a phrase or a non-empty list"),
    ({"json": {"inputs": "x" * (MAX_PHRASE_CHARACTERS + 1)}}, 422, f"a phrase has at most {MAX_PHRASE_CHARACTERS}"),
    ({"json": {"inputs": ["big"] * (MAX_PHRASES_PER_REQUEST + 1)}}, 422, "a request holds at most"),
    ({"json": {"inputs": 5}}, 422, "inputs"),
    ({"json": {"inputs": ["big", 5]}}, 422, "inputs"),
    ({"json": {"phrases": ["big"]}}, 422, "inputs"),
    ({"json": {"inputs": "big", "parameters": {"top_k": "many"}}}, 422, "top_k"),
    ({"json": {"inputs": "big", "parameters": {"top_k": 0}}}, 422, "top_k must be an integer >= 1"),
    ({"json": {"inputs": "big", "parameters": {"top_k": 10_000}}}, 422, "more than the model's"),
    ({"json": {"inputs": "big", "parameters": {"min_score": 2}}}, 422, r"min_score must be a number in [0, 1]"),
    ({"json": {"inputs": "big", "parameters": {"temperature": 2}}}, 422, "temperature"),
    ({"content": b"x" * (MAX_BODY_BYTES + 1), "headers": {"content-type": "application/json"}}, 413, "at most"),
])
def test_bad_requests_get_a_4xx_naming_the_field_and_the_server_goes_on(mapper, request_kwargs, status, message):
    with served(mapper) as client:
        response = client.post("/predict", **request_kwargs)
        assert response.status_code == status and message in response.json()["error"], response.text
        assert client.post("/predict", json={"inputs": "large"}).status_code == 200


def test_a_body_streamed_without_its_length_is_bounded_too(mapper):
    def chunks():
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    with served(mapper) as client:
        response = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert client.get("/predict", params={"q": "large"}).status_code == 200


def test_a_plain_url_without_a_phrase_is_refused(mapper):
    with served(mapper) as client:
        assert client.get("/predict").status_code == 422
        assert client.get("/predict", params={"q": " "}).status_code == 422


def test_a_full_queue_answers_503_and_a_slow_answer_504(mapper):
    with served(mapper, max_queue=4) as client:
        response = client.post("/predict", json={"inputs": ["big"] * 5})
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert client.post("/predict", json={"inputs": ["big"] * 4}).status_code == 200
    with served(mapper, timeout_s=0.05) as client:
        batcher = client.app.state.batcher
        answer = batcher.answer
        batcher.answer = lambda batch: time.sleep(0.3) or answer(batch)
        assert client.post("/predict", json={"inputs": "big"}).status_code == 504
        batcher.answer = answer
        time.sleep(0.5)  # the slow answer ends; the worker is free again
        assert client.post("/predict", json={"inputs": "big"}).status_code == 200


def test_explain_gives_each_words_shares_and_the_votes_share(mapper):
    mapper.memorize(["huge", "warm"], mapper.words[:2], weight=0.5)
    with served(mapper) as client:
        explained = client.post("/predict", json={"inputs": ["very huge"], "parameters": {"explain": True}}).json()
    expected = mapper.explain(["very huge"], neighbors=5)
    assert explained[0]["words"][0]["word"] == expected[0]["words"][0]["word"]
    assert explained[0]["memory_share"] == pytest.approx(expected[0]["memory_share"], abs=1e-5)
    assert [n["phrase"] for n in explained[0]["neighbors"]] == [n["phrase"] for n in expected[0]["neighbors"]]


def test_health_and_info_describe_the_served_model(mapper):
    with served(mapper) as client:
        assert client.get("/health").json()["status"] == "ok"
        info = client.get("/info").json()
        docs = client.get("/openapi.json").json()
    assert info["words"] == mapper.words and info["num_words"] == len(mapper.words)
    assert info["limits"]["phrases_per_request"] == MAX_PHRASES_PER_REQUEST and "hf_bertmap_version" in info
    assert {"/predict", "/health", "/info", "/correct"} <= set(docs["paths"])


def test_corrections_are_refused_unless_allowed_then_saved_into_the_model(saved_model, tmp_path):
    folder = tmp_path / "served"
    WordMapper.from_pretrained(saved_model).save_pretrained(folder)
    mapper = WordMapper.from_pretrained(folder)
    correction = {"phrase": "chonky", "word": "size"}
    with served(mapper) as client:
        refused = client.post("/correct", json=correction)
    assert refused.status_code == 403 and "--allow-corrections" in refused.json()["error"]
    assert not (folder / "corrections.tsv").exists()
    with served(mapper, allow_corrections=True) as client:
        assert client.post("/correct", json={"phrase": "chonky", "word": "no such word"}).status_code == 422
        assert client.post("/correct", json=correction).status_code == 200
        assert client.get("/predict", params={"q": "chonky"}).json()[0]["word"] == "size"
    assert WordMapper.from_pretrained(folder).predict("chonky")[0][0] == "size"


def test_load_for_serving_takes_the_precision_asked_or_times_the_candidates(saved_model, monkeypatch):
    import torch

    from hf_bertmap import serving

    mapper, path = load_for_serving(str(saved_model), backend="torch", dtype="bfloat16")
    assert path == "torch bfloat16" and mapper.model.dtype == torch.bfloat16
    monkeypatch.setattr(serving, "BACKEND_TIMING_S", 0.05)
    (chosen, name), report = choose_backend(str(saved_model), None, None)
    assert name in ("torch float32", "torch bfloat16", "onnx") and report[-1] == f"serving with {name}"
    assert report[0].startswith("torch float32: ") and "agreement with float32 100.00%" in report[0]
    with pytest.raises(ValueError, match="--dtype must be auto, float32 or bfloat16"):
        load_for_serving(str(saved_model), backend="torch", dtype="half")


@pytest.mark.slow
def test_the_endpoint_handler_runs_with_transformers_alone_and_answers_like_predict(saved_model, tmp_path):
    folder = tmp_path / "model"
    WordMapper.from_pretrained(saved_model).save_pretrained(folder)
    assert (folder / "handler.py").is_file() and "transformers>=" in (folder / "requirements.txt").read_text()
    code = block_hf_bertmap_code() + (
        "import json, sys\n"
        f"sys.path.insert(0, {str(folder)!r})\n"
        "from handler import EndpointHandler\n"
        f"handler = EndpointHandler({str(folder)!r})\n"
        "answers = [handler({'inputs': ['large', 'very tall'], 'parameters': {'top_k': 2}}),\n"
        "           handler({'inputs': 'large'})]\n"
        "errors = []\n"
        "for bad in ({'inputs': ''}, {'inputs': ['x'] * 1000}, {'inputs': 'big', 'parameters': {'temp': 1}}):\n"
        "    try:\n"
        "        handler(bad)\n"
        "    except ValueError as err:\n"
        "        errors.append(str(err))\n"
        "print('RESULT ' + json.dumps([answers, errors]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env=subprocess_env(tmp_path), stdin=subprocess.DEVNULL, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    (pair, single), errors = json.loads(line[7:])
    expected = WordMapper.from_pretrained(folder)
    assert all(same_words(got, words) for got, words in zip(pair, expected.predict(["large", "very tall"], top_k=2)))
    assert same_words(single, expected.predict("large"))
    assert len(errors) == 3 and "inputs" in errors[0] and "parameters: unknown ['temp']" in errors[2]
