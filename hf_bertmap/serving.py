"""Serving a word mapper to other programs: `bertmap serve MODEL`, an HTTP API on FastAPI and uvicorn (the `serve`
extra); the Inference Endpoints handler saved beside every model is `endpoint_handler.py`'s.

    bertmap serve bertmap-attributes --port 8000
    curl -s localhost:8000/predict -H 'Content-Type: application/json' -d '{"inputs": ["very chonky", "fishy"]}'
    curl -s 'localhost:8000/predict?q=very+chonky'

Requests that arrive together are answered in one forward (*dynamic batching*: `Batcher` collects up to
`max_batch_size` phrases or waits `max_wait_ms`), so concurrency raises throughput instead of latency; each request
keeps its own `top_k`, `min_score` and `explain`, and gets the words and scores `WordMapper.predict` gives. Bad
input never takes the server down: an empty or over-long phrase, too many phrases, malformed JSON or a wrong type
is a 4xx with a message naming the field; a body over `MAX_BODY_BYTES` a 413; a full queue a 503 (retry later) and
a request not answered within `timeout_s` a 504. No request reads or writes a file, unless the server was started
with `--allow-corrections` (`POST /correct`, saved into the model folder as `WordMapper.correct` saves).
"""

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence
from typing import Annotated, Any

import torch

from . import __version__
from .decoding_bertmap import MAX_PHRASE_CHARACTERS, check_decoding
from .endpoint_handler import MAX_PHRASES_PER_REQUEST
from .hardware import cpu_has_native_bfloat16
from .inference import WordMapper

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_QUEUED_PHRASES = 4096  # waiting to be answered, all requests together; more gets 503
NEIGHBORS = 5  # stored phrases an explanation lists
# `choose_backend`: how long each candidate is timed, and the top-1 agreement with float32 it must keep.
BACKEND_TIMING_S = 2.0
MIN_AGREEMENT = 0.99


@dataclasses.dataclass
class ServeSettings:
    """How `build_app` serves: dynamic batching (`batching`, up to `max_batch_size` phrases, waiting at most
    `max_wait_ms` for more after the first), the queue's bound, a request's time limit, and whether `POST /correct`
    may change the model folder."""

    batching: bool = True
    max_batch_size: int = 64
    max_wait_ms: float = 5.0
    max_queue: int = MAX_QUEUED_PHRASES
    timeout_s: float = 30.0
    allow_corrections: bool = False


class RequestError(ValueError):
    """A request the server refuses: its HTTP status and a message naming the field."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def check_request(phrases: Any, top_k: Any = None, min_score: Any = None, explain: Any = False,
                  num_words: int | None = None) -> tuple[list[str], bool]:
    """The phrases of a request and whether it is a single string, or a `RequestError` (422) naming what is wrong:
    no phrase, more than `MAX_PHRASES_PER_REQUEST`, a phrase that is not a non-empty string of at most
    `MAX_PHRASE_CHARACTERS`, a `top_k` that is not an integer in 1..`num_words`, a `min_score` outside [0, 1]."""
    single = isinstance(phrases, str)
    phrases = [phrases] if single else phrases
    if not isinstance(phrases, list) or not phrases:
        raise RequestError(422, "inputs: give a phrase or a non-empty list of phrases")
    if len(phrases) > MAX_PHRASES_PER_REQUEST:
        raise RequestError(422, f"inputs: {len(phrases):,} phrases; a request holds at most "
                                f"{MAX_PHRASES_PER_REQUEST} (send several requests)")
    for i, phrase in enumerate(phrases):
        where = "inputs" if single else f"inputs[{i}]"
        if not isinstance(phrase, str) or not phrase.strip():
            raise RequestError(422, f"{where}: expected a non-empty string, got {phrase!r:.60}")
        if len(phrase) > MAX_PHRASE_CHARACTERS:
            raise RequestError(422, f"{where}: {len(phrase):,} characters; a phrase has at most "
                                    f"{MAX_PHRASE_CHARACTERS}")
    if not isinstance(explain, bool):
        raise RequestError(422, f"parameters.explain: expected true or false, got {explain!r:.60}")
    try:
        check_decoding(0.0 if min_score is None else min_score, 1 if top_k is None else top_k)
    except ValueError as err:
        raise RequestError(422, f"parameters.{err}") from None
    if top_k is not None and num_words is not None and top_k > num_words:
        raise RequestError(422, f"parameters.top_k: {top_k} is more than the model's {num_words} words")
    return phrases, single


@dataclasses.dataclass
class _Request:
    texts: list[str]
    top_k: int | None
    min_score: float | None
    explain: bool
    future: asyncio.Future


class Batcher:
    """Answers requests with `mapper`, in one forward for the requests that arrive together.

    `submit` queues a request's (normalised) phrases; one task takes the first waiting request, then more until
    `max_batch_size` phrases or `max_wait_ms` have passed, and runs them in one forward on one worker thread (torch
    uses the cores within it). Without `batching`, each request is its own forward, one at a time."""

    def __init__(self, mapper: WordMapper, settings: ServeSettings):
        self.mapper, self.settings = mapper, settings
        self.queue: asyncio.Queue[_Request] | None = None
        self.queued = 0  # phrases waiting or being answered
        self.forwards = 0
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bertmap-forward")
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._worker.shutdown(wait=False, cancel_futures=True)

    async def submit(self, phrases: list[str], top_k: int | None, min_score: float | None, explain: bool) -> list:
        """The answers to one request's phrases (each phrase's `[(word, score), ...]`, or its explanation)."""
        if self.queued + len(phrases) > self.settings.max_queue:
            raise RequestError(503, f"the server is busy ({self.queued} phrases waiting); retry in a moment")
        texts = self.mapper.decoding.normalize(phrases)
        request = _Request(texts, top_k, min_score, explain, asyncio.get_running_loop().create_future())
        self.queued += len(texts)
        try:
            await self.queue.put(request)
            return await asyncio.wait_for(asyncio.shield(request.future), self.settings.timeout_s)
        except asyncio.TimeoutError:
            raise RequestError(504, f"no answer within {self.settings.timeout_s:g} s; retry later") from None
        finally:
            self.queued -= len(texts)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            size = len(batch[0].texts)
            if self.settings.batching:
                deadline = loop.time() + self.settings.max_wait_ms / 1000
                while size < self.settings.max_batch_size:
                    try:
                        request = await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time()))
                    except asyncio.TimeoutError:
                        break
                    batch.append(request)
                    size += len(request.texts)
            try:
                answers = await loop.run_in_executor(self._worker, self.answer, batch)
            except Exception as err:  # a bug or a broken model: each waiting request gets a 500, the server lives
                logger.exception("answering a batch failed")
                answers = [err] * len(batch)
            for request, answer in zip(batch, answers):
                if request.future.done():  # its client gave up
                    continue
                if isinstance(answer, Exception):
                    request.future.set_exception(answer)
                else:
                    request.future.set_result(answer)

    def answer(self, batch: Sequence[_Request]) -> list:
        """One forward over every phrase of `batch`, then each request decoded with its own settings."""
        texts = [text for request in batch for text in request.texts]

        def step(texts, logits, pooled, words):
            answers, start = [], 0
            decoding = self.mapper.decoding
            for request in batch:
                rows = slice(start, start + len(request.texts))
                start = rows.stop
                try:
                    if request.explain:
                        answers.append(decoding.explain(logits[rows], pooled[rows], request.texts, words,
                                                        request.top_k, request.min_score, NEIGHBORS))
                    else:
                        answers.append(decoding.decode(logits[rows], pooled[rows], request.texts, words,
                                                       request.top_k, request.min_score))
                except ValueError as err:  # a top_k or min_score the decoding refuses: this request only
                    answers.append(RequestError(422, f"parameters.{err}"))
            return answers

        self.forwards += 1
        return next(self.mapper.decode_batches(texts, len(texts), step, normalized=True))


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets a 413, whether it says its length or streams."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self.refuse(send, length.decode("latin-1"))
        received, started = 0, False

        async def limited_receive():
            from starlette.exceptions import HTTPException

            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:  # the route's body parsing passes an HTTPException on as it is
                    raise HTTPException(413, f"the body has over {self.limit:,} bytes; a request has at most "
                                             f"{self.limit:,}")
            return message

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except Exception as err:  # the body read outside a route: refused here unless an answer has begun
            if getattr(err, "status_code", None) != 413 or started:
                raise
            await self.refuse(send, f"over {self.limit:,}")

    async def refuse(self, send, length: str) -> None:
        body = json.dumps({"error": f"the body has {length} bytes; a request has at most {self.limit:,}"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def predictions(answer: list, single: bool, explain: bool) -> list:
    """A request's answers as JSON: per phrase `[{"word", "score"}, ...]` (the `word-mapping` pipeline's shape),
    or its explanation; one phrase's alone for a single-string request."""
    rows = answer if explain else [[{"word": word, "score": score} for word, score in words] for words in answer]
    return rows[0] if single else rows


def model_info(mapper: WordMapper, backend: str, settings: ServeSettings) -> dict:
    """What `GET /info` says: the words, the backbone, the test results of its card, versions and settings."""
    config = mapper.model.config
    card = mapper.card_data
    return {
        "words": mapper.words, "num_words": len(mapper.words),
        "backbone": getattr(config, "base_model_name_or_path", None) or (card.base_model if card else None),
        "head": config.head, "pooling": config.pooling, "backend": backend,
        "metrics": dict(card.results) if card is not None else {},
        "decoding": dataclasses.asdict(mapper.decoding.config),
        "hf_bertmap_version": __version__, "torch_version": torch.__version__,
        "batching": dataclasses.asdict(settings),
        "limits": {"phrases_per_request": MAX_PHRASES_PER_REQUEST, "phrase_characters": MAX_PHRASE_CHARACTERS,
                   "body_bytes": MAX_BODY_BYTES},
    }


def build_app(mapper: WordMapper, settings: ServeSettings | None = None, backend: str = "torch"):
    """The FastAPI application serving `mapper` (OpenAPI docs at `/docs`)."""
    from fastapi import Body, FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.exceptions import HTTPException as StarletteHTTPException

    settings = settings or ServeSettings()
    batcher = Batcher(mapper, settings)

    class Parameters(BaseModel):
        model_config = ConfigDict(extra="forbid")
        top_k: int | None = Field(None, description="words per phrase, best first (default: the model's)")
        min_score: float | None = Field(None, description="no word when the best is less likely (default: the "
                                                          "model's)")
        explain: bool = Field(False, description="each word's shares from the classifier and the memory, and the "
                                                 "nearest stored phrases")

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        inputs: str | list[str] = Field(..., description="a phrase, or a list of phrases",
                                        examples=["very chonky", ["fishy", "very chonky"]])
        parameters: Parameters = Field(default_factory=Parameters)

    class Correction(BaseModel):
        model_config = ConfigDict(extra="forbid")
        phrase: str
        word: str
        add_word: bool = False

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="hf_bertmap word mapper", version=__version__, lifespan=lifespan,
                  description="Maps a short phrase to one word (`very chonky → size`).")
    app.state.batcher = batcher
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(RequestError)
    async def refused(request: Request, err: RequestError):
        headers = {"Retry-After": "1"} if err.status == 503 else None
        return JSONResponse({"error": str(err)}, status_code=err.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        problems = []
        for error in err.errors()[:5]:
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return JSONResponse({"error": "; ".join(problems)}, status_code=422)

    async def answer(inputs, top_k, min_score, explain) -> list:
        phrases, single = check_request(inputs, top_k, min_score, explain, len(mapper.words))
        return predictions(await batcher.submit(phrases, top_k, min_score, explain), single, explain)

    @app.post("/predict", summary="Words for a phrase or a list of phrases")
    async def predict(request: Annotated[PredictRequest, Body()]):
        p = request.parameters
        return await answer(request.inputs, p.top_k, p.min_score, p.explain)

    @app.get("/predict", summary="Words for one phrase, as a plain URL: /predict?q=very+chonky")
    async def predict_url(q: Annotated[str, Query(description="the phrase")],
                          top_k: int | None = None, min_score: float | None = None, explain: bool = False):
        return await answer(q, top_k, min_score, explain)

    @app.get("/health", summary="Whether the server answers")
    async def health() -> dict:
        return {"status": "ok", "queued_phrases": batcher.queued}

    @app.get("/info", summary="The model: its words, backbone, test results, versions and settings")
    async def info() -> dict:
        return model_info(mapper, backend, settings)

    @app.post("/correct", summary="Teach the model a phrase's word (only with --allow-corrections)")
    async def correct(correction: Correction) -> dict:
        if not settings.allow_corrections:
            raise RequestError(403, "corrections are off on this server; start it with --allow-corrections")
        phrase, _ = check_request(correction.phrase)
        word, _ = check_request(correction.word)
        loop = asyncio.get_running_loop()
        try:
            path = await loop.run_in_executor(batcher._worker, lambda: mapper.correct(
                phrase[0], word[0], add_word=correction.add_word))
        except ValueError as err:
            raise RequestError(422, str(err)) from None
        return {"phrase": phrase[0], "word": word[0], "saved_in": path}

    return app


def load_for_serving(model: str, backend: str = "auto", dtype: str = "auto", device: str | None = None,
                     revision: str | None = None) -> tuple[WordMapper, str]:
    """The mapper to serve and a description of the path chosen (`torch float32`, `torch bfloat16`, `onnx`).

    `backend="auto"` times the candidates on this machine (`choose_backend`); `dtype="auto"` serves the torch
    backend in bfloat16 where the device runs it natively (a CUDA GPU, or a CPU with AVX-512 BF16, AMX or Arm BF16)
    and its top-1 words agree with float32's on at least `MIN_AGREEMENT` of a sample, else in float32."""
    if backend == "onnx":
        return WordMapper.from_pretrained(model, backend="onnx", device=device), "onnx"
    if backend not in ("torch", "auto"):
        raise ValueError(f"--backend must be torch, onnx or auto, got {backend!r}")
    if dtype not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"--dtype must be auto, float32 or bfloat16, got {dtype!r}")
    kwargs = {"device": device, "revision": revision} if revision else {"device": device}
    if backend == "torch" and dtype != "auto":
        return (WordMapper.from_pretrained(model, dtype=getattr(torch, dtype), **kwargs), f"torch {dtype}")
    chosen, report = choose_backend(model, device, revision, onnx=backend == "auto",
                                    bfloat16=dtype in ("auto", "bfloat16"))
    for line in report:
        logger.warning(line)
    return chosen


def sample_phrases(mapper: WordMapper, count: int = 64) -> list[str]:
    """Phrases to time and compare the candidates on: the model's stored phrases, else its words."""
    memory = mapper.decoding.memory
    phrases = list(memory.phrases[:count]) if memory is not None and len(memory) else []
    return (phrases + [f"very {word}" for word in mapper.words])[:count]


def time_predict(mapper: WordMapper, phrases: list[str], seconds: float) -> float:
    """Phrases per second of `predict` over a mix of single phrases and batches of `phrases`, for about `seconds`."""
    mapper.predict(phrases[:8])  # warm up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for phrase in phrases[:4]:
            mapper.predict(phrase)
        mapper.predict(phrases)
        done += 4 + len(phrases)
    return done / (time.perf_counter() - start)


def choose_backend(model: str, device: str | None, revision: str | None, onnx: bool = True,
                   bfloat16: bool = True) -> tuple[tuple[WordMapper, str], list[str]]:
    """Time torch float32, torch bfloat16 (where native) and ONNX Runtime (where installed and the folder holds
    `model.onnx`) for `BACKEND_TIMING_S` each on this machine; keep the fastest whose top-1 words agree with
    float32's on `MIN_AGREEMENT` of a sample. Returns ((mapper, description), report lines)."""
    kwargs = {"device": device} | ({"revision": revision} if revision else {})
    reference = WordMapper.from_pretrained(model, **kwargs)
    phrases = sample_phrases(reference)
    expected = [words[0][0] if words else None for words in reference.predict(phrases)]
    candidates = [("torch float32", reference)]
    on_gpu = reference.model.device.type == "cuda"
    if bfloat16 and (on_gpu or cpu_has_native_bfloat16()):
        candidates.append(("torch bfloat16", WordMapper.from_pretrained(model, dtype=torch.bfloat16, **kwargs)))
    if onnx and os.path.isfile(os.path.join(str(model), "model.onnx")):
        try:
            candidates.append(("onnx", WordMapper.from_pretrained(model, backend="onnx", device=device)))
        except ImportError:
            pass
    report, best = [], None
    for name, mapper in candidates:
        got = [words[0][0] if words else None for words in mapper.predict(phrases)]
        agreement = sum(a == b for a, b in zip(got, expected)) / len(expected)
        speed = time_predict(mapper, phrases, BACKEND_TIMING_S)
        keep = agreement >= MIN_AGREEMENT
        report.append(f"{name}: {speed:.0f} phrases/s, top-1 agreement with float32 {agreement:.2%}"
                      f"{'' if keep else ' (below ' + format(MIN_AGREEMENT, '.0%') + ': not used)'}")
        if keep and (best is None or speed > best[2]):
            best = (mapper, name, speed)
    report.append(f"serving with {best[1]}")
    return (best[0], best[1]), report


__all__ = ["Batcher", "BodyLimit", "ServeSettings", "RequestError", "build_app", "check_request", "load_for_serving",
           "choose_backend", "MAX_BODY_BYTES", "MAX_QUEUED_PHRASES"]
