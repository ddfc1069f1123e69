"""The `bertmap` command: `bertmap predict MODEL PHRASE...` and `bertmap train [train.py flags]`."""

import argparse
import json
import sys


def _read_phrases(args: argparse.Namespace) -> list[str]:
    phrases = list(args.phrases)
    if args.file is not None:
        source = 0 if args.file == "-" else args.file  # 0: standard input, left open afterwards
        with open(source, encoding="utf-8", closefd=source != 0) as f:
            phrases.extend(line.strip() for line in f if line.strip())
    if not phrases:
        raise SystemExit("bertmap predict: no phrases given (pass them as arguments or with --file)")
    return phrases


def predict(args: argparse.Namespace) -> None:
    from .inference import WordMapper

    phrases = _read_phrases(args)
    mapper = WordMapper.from_pretrained(args.model, revision=args.revision)
    results = mapper.predict(phrases, top_k=args.top_k, batch_size=args.batch_size, min_score=args.min_score)
    for phrase, top in zip(phrases, results):
        if args.json:
            print(json.dumps({"phrase": phrase, "predictions": [{"word": w, "score": s} for w, s in top]}))
        elif top:
            word, score = top[0]
            print(f"{phrase}\t{word}\t{score:.4f}")
        else:  # abstained: the best word scored below min_score
            print(f"{phrase}\t\t")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:
        from .training import main as train_main

        train_main(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="bertmap", description="Map short phrases to one word.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("train", help="train a word mapper (the flags of train.py; see `bertmap train --help`)")
    p = commands.add_parser("predict", help="print the word a model maps each phrase to")
    p.add_argument("model", help="a trained model folder or Hub id")
    p.add_argument("phrases", nargs="*", help="phrases to map")
    p.add_argument("--file", help="read phrases one per line from this file ('-' for stdin)")
    p.add_argument("--top-k", type=int, default=1, help="words per phrase (with --json)")
    p.add_argument("--json", action="store_true", help="print one JSON line per phrase with the top-k words")
    p.add_argument("--min-score", type=float, default=None,
                   help="print no word when the best one's probability is below this (default: the model's)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--revision", default=None, help="branch, tag or commit of a Hub model")
    args = parser.parse_args(argv)
    predict(args)


if __name__ == "__main__":
    main()
