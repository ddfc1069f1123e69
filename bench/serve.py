"""`bertmap serve` under load, on 127.0.0.1 only: C concurrent clients (1, 8, 32), each sending one-phrase requests
until a fixed count is done, with dynamic batching and without (`--no-batching`), side by side in one run; p50 and
p99 latency and phrases/s; every answer compared with `WordMapper.predict` (words, scores to 1e-5); and, during
the 32-client load, a mix of bad requests (malformed JSON, an empty phrase, 100,000 characters, 10,000 phrases)
that must each get a 4xx while no good request is lost.

    python bench/serve.py --model bertmap-attributes               # the table of docs/serving.md
    python bench/serve.py --model PATH --smoke                     # a short run, for the test suite

Needs `pip install "hf_bertmap[serve]"`. Prints a table and one JSON line with everything.
"""

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

from hf_bertmap import WordMapper
from hf_bertmap.arguments import DataArguments
from hf_bertmap.data import load_splits

BAD_REQUESTS = {
    "malformed JSON": b'{"inputs": ["large"',
    "empty phrase": json.dumps({"inputs": ""}).encode(),
    "100,000 characters": json.dumps({"inputs": "x" * 100_000}).encode(),
    "10,000 phrases": json.dumps({"inputs": ["big"] * 10_000}).encode(),
    "wrong type": json.dumps({"inputs": 42}).encode(),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, port: int, batching: bool, dtype: str, log) -> subprocess.Popen:
    command = [sys.executable, "-m", "hf_bertmap.cli", "serve", model, "--port", str(port), "--backend", "torch",
               "--dtype", dtype] + ([] if batching else ["--no-batching"])
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server stopped (status {server.returncode}); see its log")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not answer /health within 300 s")


def post(connection: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes, float]:
    start = time.perf_counter()
    connection.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read(), time.perf_counter() - start


def load(port: int, phrases: list[str], clients: int, requests: int, top_k: int,
         bad: bool = False) -> dict:
    """`clients` threads share `requests` one-phrase requests; with `bad`, another thread sends `BAD_REQUESTS`
    throughout. Returns latencies, throughput, the answers and the bad requests' statuses."""
    lock, next_request = threading.Lock(), iter(range(requests))
    latencies, answers, failures, bad_statuses = [], {}, [], {}
    done = threading.Event()

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = next(next_request, None)
            if i is None:
                return
            phrase = phrases[i % len(phrases)]
            status, body, seconds = post(connection, json.dumps({"inputs": phrase,
                                                                 "parameters": {"top_k": top_k}}).encode())
            with lock:
                latencies.append(seconds)
                if status == 200:
                    answers[phrase] = json.loads(body)
                else:
                    failures.append((phrase, status, body[:200].decode("utf-8", "replace")))

    def bad_client() -> None:  # one bad request every 50 ms, a mix, all through the load
        while not done.is_set():
            for name, body in BAD_REQUESTS.items():
                time.sleep(0.05)
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                try:
                    status = post(connection, body)[0]
                except OSError as err:
                    status = f"connection error: {err}"
                bad_statuses.setdefault(name, set()).add(status)
                connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    extra = threading.Thread(target=bad_client) if bad else None
    start = time.perf_counter()
    for thread in threads + ([extra] if extra else []):
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    done.set()
    if extra:
        extra.join()
    latencies.sort()
    return {"clients": clients, "requests": requests, "wall_s": round(wall, 2),
            "phrases_per_s": round(requests / wall, 1),
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
            "failures": failures, "answers": answers,
            "bad": {name: sorted(map(str, statuses)) for name, statuses in bad_statuses.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bertmap-attributes", help="a trained model folder")
    parser.add_argument("--requests", type=int, default=512, help="requests per load level")
    parser.add_argument("--clients", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--top_k", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a short run")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    requests = 24 if args.smoke else args.requests
    mapper = WordMapper.from_pretrained(args.model, dtype=getattr(__import__("torch"), args.dtype))
    phrases = sorted(set(load_splits(DataArguments())["test_everyday"]["phrase"]))
    phrases = random.Random(0).sample(phrases, min(len(phrases), requests))
    expected = dict(zip(phrases, mapper.predict(phrases, top_k=args.top_k)))
    report = {"model": args.model, "dtype": args.dtype, "requests": requests, "cpus": os.cpu_count(), "runs": {}}
    log_path = os.path.join(os.getcwd(), "bench-serve.log")
    with open(log_path, "w") as log:
        for batching in (True, False):
            port = free_port()
            server = start_server(args.model, port, batching, args.dtype, log)
            try:
                for clients in levels:
                    run = load(port, phrases, clients, requests, args.top_k, bad=batching and clients == max(levels))
                    mismatched = [p for p, got in run.pop("answers").items() if
                                  [w["word"] for w in got] != [w for w, _ in expected[p]] or
                                  any(abs(w["score"] - s) > 1e-5 for w, (_, s) in zip(got, expected[p]))]
                    run["answers_equal_to_predict"] = 1 - len(mismatched) / max(1, requests)
                    run["mismatched"] = mismatched[:5]
                    report["runs"][f"{'batching' if batching else 'no batching'} x{clients}"] = run
            finally:
                server.terminate()
                server.wait(timeout=60)
    print(f"\n{'server':<14}{'clients':>8}{'phrases/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'equal':>8}{'failed':>8}")
    for name, run in report["runs"].items():
        print(f"{name.split(' x')[0]:<14}{run['clients']:>8}{run['phrases_per_s']:>11.1f}{run['p50_ms']:>9.1f}"
              f"{run['p99_ms']:>9.1f}{run['answers_equal_to_predict']:>8.2%}{len(run['failures']):>8}")
    top = max(levels)
    with_batching, without = report["runs"][f"batching x{top}"], report["runs"][f"no batching x{top}"]
    alone = report["runs"][f"batching x{min(levels)}"]
    report["throughput_batching_over_not"] = round(with_batching["phrases_per_s"] / without["phrases_per_s"], 2)
    report["p99_at_top_over_one_client"] = round(with_batching["p99_ms"] / alone["p99_ms"], 2)
    print(f"\n{top} clients: throughput with batching / without {report['throughput_batching_over_not']}x; p99 with "
          f"batching / one client alone {report['p99_at_top_over_one_client']}x")
    print(f"bad requests during the {top}-client load: {with_batching['bad']}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
