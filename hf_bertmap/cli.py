"""The `bertmap` command: `bertmap predict MODEL PHRASE...`, `bertmap evaluate MODEL --file FILE`,
`bertmap export MODEL OUTPUT_DIR`, `bertmap demo MODEL [--space DIR]`, `bertmap serve MODEL` and
`bertmap train [train.py flags]`.

A user's mistake (a missing file, a bad row, a folder that is not a model...) ends the command with one line
`error: ...` on stderr and exit status 1; `--debug` (or `HF_BERTMAP_DEBUG=1`, also for `train.py`) shows the
traceback instead.
"""

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm

# What a user's mistake raises: bad values and data (ValueError), missing or unreadable files and folders
# (OSError), a missing optional dependency (ImportError). Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, OSError, ImportError)


@contextmanager
def user_errors(debug: bool = False) -> Iterator[None]:
    """Report a user's mistake as one line `error: ...` on stderr and exit with status 1; with `debug` or
    `HF_BERTMAP_DEBUG=1` the exception propagates with its traceback."""
    try:
        yield
    except USER_ERRORS as err:
        if debug or os.environ.get("HF_BERTMAP_DEBUG", "0") not in ("", "0"):
            raise
        print(f"error: {' '.join(str(err).split()) or type(err).__name__}", file=sys.stderr)
        raise SystemExit(1) from None


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _read_phrases(args: argparse.Namespace) -> list[str]:
    phrases = list(args.phrases)
    if args.file is not None:
        from .pair_files import read_text

        if os.path.isdir(args.file):
            raise IsADirectoryError(f"--file {args.file}: a folder, not a file of phrases")
        text = read_text(0 if args.file == "-" else args.file, "standard input" if args.file == "-" else None)
        phrases.extend(line.strip() for line in text.splitlines() if line.strip())
    if not phrases:
        raise ValueError("bertmap predict: no phrases given (pass them as arguments or with --file)")
    return phrases


def _load(args: argparse.Namespace):
    from .inference import WordMapper

    if args.backend == "onnx":
        return WordMapper.from_pretrained(args.model, backend="onnx", device=args.device)
    return WordMapper.from_pretrained(args.model, revision=args.revision, device=args.device)


def export(args: argparse.Namespace) -> None:
    """Write the model folder and its ONNX export into OUTPUT_DIR, under the output-folder policy of `train.py`
    (`output_folder.py`): a non-empty folder that holds no model is refused unless --overwrite."""
    from .inference import WordMapper
    from .onnx_backend import ONNX_FILE
    from .output_folder import OutputFolder

    output = OutputFolder.prepare(args.output_dir, args.overwrite, flag="OUTPUT_DIR", overwrite_flag="--overwrite")
    mapper = WordMapper.from_pretrained(args.model, revision=args.revision)
    with output.lock():
        output.save(mapper.export_onnx)
    print(f"{os.path.join(output.path, ONNX_FILE)} written (serve it with --backend onnx, or backend='onnx' in "
          "Python)")


def predict(args: argparse.Namespace) -> None:
    """Print each phrase's words as its batch is decoded (a progress bar on stderr for files); with --explain, where
    they come from, from the same decoding."""
    phrases = _read_phrases(args)
    mapper = _load(args)
    options = {"top_k": args.top_k, "batch_size": args.batch_size, "min_score": args.min_score}
    if args.explain:
        batches = ([([] if e["abstained"] else [(w["word"], w["score"]) for w in e["words"]], e) for e in batch]
                   for batch in mapper.iter_explain(phrases, neighbors=3, **options))
    else:
        batches = ([(top, None) for top in batch] for batch in mapper.iter_predict(phrases, **options))
    progress = tqdm(total=len(phrases), unit="phrase", file=sys.stderr, disable=args.file is None)
    done = 0
    for batch in batches:
        for phrase, (top, why) in zip(phrases[done : done + len(batch)], batch):
            if args.json:
                record = {"phrase": phrase, "predictions": [{"word": w, "score": s} for w, s in top]}
                print(json.dumps(record if why is None else dict(record, explanation=why)))
            else:  # phrase, then word and probability pairs; none when abstained (best below min_score)
                print("\t".join([phrase] + [f"{w}\t{s:.4f}" for w, s in top] if top else [phrase, "", ""]))
                if why is not None:
                    print(describe(why))
        done += len(batch)
        sys.stdout.flush()
        progress.update(len(batch))
    progress.close()


def describe(explanation: dict) -> str:
    """An explanation (`WordMapper.explain`) as indented lines under the phrase's own."""
    shares = "; ".join(f"{w['word']} {w['score']:.2f} = {w['classifier']:.2f} classifier + {w['memory']:.2f} memory"
                       for w in explanation["words"])
    lines = [f"  words: {shares}" + (" (below min_score: no word given)" if explanation["abstained"] else "")]
    if explanation["stored"]:
        lines.append("  a stored phrase: only its stored words, ranked by the classifier")
    if explanation["neighbors"]:
        lines.append("  nearest stored phrases: " + ", ".join(
            f"{n['phrase']} ({'/'.join(n['words'])}) {n['similarity']:.2f}" for n in explanation["neighbors"]))
        if not explanation["stored"]:
            lines.append(f"  their vote's share: {explanation['memory_share']:.2f} (smaller the farther the nearest)")
    return "\n".join(lines)


def demo(args: argparse.Namespace) -> None:
    """Serve the demo page for MODEL, or write a Hugging Face Space for it with --space."""
    from .demo import MAX_BATCH_BYTES, build_demo, write_space

    title = os.path.basename(os.path.normpath(args.model))
    if args.space:
        app = write_space(args.model, args.space, title, overwrite=args.overwrite)
        print(f"{app} written: a Space for {args.model} (gradio and transformers only)")
        return
    mapper = _load(args)
    build_demo(mapper, title).launch(server_name=args.host, server_port=args.port, ssr_mode=False,
                                     max_file_size=MAX_BATCH_BYTES)


def serve(args: argparse.Namespace) -> None:
    """Serve MODEL over HTTP (FastAPI and uvicorn), answering requests that arrive together in one forward."""
    try:
        import uvicorn
    except ImportError:
        raise ImportError('bertmap serve needs FastAPI and uvicorn: pip install "hf_bertmap[serve]"') from None
    from .serving import ServeSettings, build_app, load_for_serving

    mapper, path = load_for_serving(args.model, args.backend, args.dtype, args.device, args.revision)
    settings = ServeSettings(batching=not args.no_batching, max_batch_size=args.max_batch_size,
                             max_wait_ms=args.max_wait_ms, allow_corrections=args.allow_corrections)
    print(f"serving {args.model} ({path}) on http://{args.host}:{args.port} (OpenAPI docs at /docs)", file=sys.stderr)
    uvicorn.run(build_app(mapper, settings, backend=path), host=args.host, port=args.port, log_level="warning",
                timeout_keep_alive=5, limit_concurrency=args.max_connections)


def evaluate(args: argparse.Namespace) -> None:
    """Score a model on a pair file with the `word_mapping` metric; optionally write each phrase's prediction."""
    from .data import group_by_phrase, validate_pairs
    from .pair_files import read_pair_file

    if args.predictions and os.path.realpath(args.predictions) == os.path.realpath(args.file):
        raise ValueError(f"--predictions {args.predictions} is the file being evaluated (--file); choose another")
    mapper = _load(args)
    raw = read_pair_file(args.file, (args.phrase_column, args.target_column))
    validate_pairs(raw, args.file, args.phrase_column, args.target_column)
    pairs = group_by_phrase(raw, args.phrase_column, args.target_column, mapper.decoding.config.lowercase)
    phrases, targets = list(pairs["phrase"]), list(pairs["targets"])
    metrics, ranked, _ = mapper.evaluate(phrases, targets, k=args.k, batch_size=args.batch_size,
                                         min_score=args.min_score, return_ranking=True)
    metrics["phrases"] = len(phrases)
    if args.predictions:
        words = mapper.words
        with open(args.predictions, "w", encoding="utf-8") as f:
            for phrase, gold, ids, scores in zip(phrases, targets, ranked.ids, ranked.scores):
                top = [{"word": words[i], "score": s} for i, s in zip(ids, scores) if s > 0]
                f.write(json.dumps({"phrase": phrase, "targets": gold, "predictions": top}) + "\n")
    if args.json:
        print(json.dumps(metrics))
    else:
        for key, value in metrics.items():
            print(f"{key}\t{value:.4f}" if isinstance(value, float) else f"{key}\t{value}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:
        from .training import main as train_main

        with user_errors():
            train_main(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="bertmap", description="Map short phrases to one word.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("train", help="train a word mapper (the flags of train.py; see `bertmap train --help`)")
    p = commands.add_parser("predict", help="print the words a model maps each phrase to")
    p.add_argument("model", help="a trained model folder or Hub id")
    p.add_argument("phrases", nargs="*", help="phrases to map")
    p.add_argument("--file", help="read phrases one per line from this file ('-' for stdin)")
    p.add_argument("--top-k", type=positive_int, default=None, help="words per phrase (default: the model's, 1)")
    p.add_argument("--json", action="store_true", help="print one JSON line per phrase")
    p.add_argument("--explain", action="store_true",
                   help="also say where each word comes from: the classifier's and the memory's shares, a stored "
                   "phrase, the nearest stored phrases (an `explanation` field with --json)")
    e = commands.add_parser("evaluate", help="score a model on a file of (phrase, target) pairs")
    e.add_argument("model", help="a trained model folder or Hub id")
    e.add_argument("--file", required=True, help="pairs: .csv, .tsv, .json or .jsonl")
    e.add_argument("--phrase-column", dest="phrase_column", default="phrase")
    e.add_argument("--target-column", dest="target_column", default="target")
    e.add_argument("--k", type=positive_int, nargs="+", default=[5],
                   help="cut-offs of accuracy@k, e.g. --k 1 10 100 (default 5); --predictions lists the largest")
    e.add_argument("--json", action="store_true", help="print the metrics as one JSON line")
    e.add_argument("--predictions", help="also write each phrase's golds and top-k words to this JSON Lines file")
    d = commands.add_parser("demo", help="a page to try MODEL, see why a word came out and correct it (Gradio)")
    d.add_argument("model", help="a trained model folder or Hub id")
    d.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0 for every interface)")
    d.add_argument("--port", type=int, default=7860)
    d.add_argument("--space", help="instead, write a ready Hugging Face Space for MODEL into this folder")
    d.add_argument("--overwrite", action="store_true",
                   help="with --space, write into a non-empty folder that holds no model (its other files stay)")
    x = commands.add_parser("export", help="export a model to ONNX for serving with --backend onnx")
    x.add_argument("model", help="a trained model folder or Hub id")
    x.add_argument("output_dir", help="where the model folder and model.onnx are written")
    x.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty OUTPUT_DIR that holds no model (its other files stay)")
    v = commands.add_parser("serve", help="serve MODEL over HTTP: POST /predict, GET /predict?q=, /health, /info")
    v.add_argument("model", help="a trained model folder or Hub id")
    v.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0 for every interface)")
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                   help="auto: time torch float32, torch bfloat16 and ONNX Runtime here and serve the fastest that "
                   "agrees with float32 (default); onnx: a folder written by `bertmap export`")
    v.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                   help="the torch backend's precision; auto: bfloat16 where the device runs it natively and its "
                   "words agree with float32's")
    v.add_argument("--max-batch-size", dest="max_batch_size", type=positive_int, default=64,
                   help="phrases answered in one forward")
    v.add_argument("--max-wait-ms", dest="max_wait_ms", type=float, default=5.0,
                   help="how long a forward waits for more requests after the first")
    v.add_argument("--no-batching", dest="no_batching", action="store_true",
                   help="answer each request in its own forward, one at a time")
    v.add_argument("--max-connections", dest="max_connections", type=positive_int, default=512,
                   help="open connections before new ones get a 503")
    v.add_argument("--allow-corrections", dest="allow_corrections", action="store_true",
                   help="accept POST /correct, which saves a phrase's word into the model folder")
    d.set_defaults(backend="torch")  # the page corrects and saves: the PyTorch model
    for sub in (p, e):
        sub.add_argument("--min-score", type=float, default=None,
                         help="no word when the best one's probability is below this (default: the model's)")
        sub.add_argument("--batch-size", type=positive_int, default=64)
        sub.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                         help="onnx: run a folder written by `bertmap export` in ONNX Runtime")
    for sub in (p, e, d, v):
        sub.add_argument("--device", default=None, help="where to run the model, e.g. cuda or cpu")
    for sub in (p, e, d, x, v):
        sub.add_argument("--revision", default=None, help="branch, tag or commit of a Hub model")
        sub.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    with user_errors(args.debug):
        {"demo": demo, "evaluate": evaluate, "export": export, "predict": predict, "serve": serve}[args.command](args)


if __name__ == "__main__":
    main()
