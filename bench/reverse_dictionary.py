"""Reverse dictionary (a definition or description -> the word): the default recipe with tens of thousands of
output words, and any other recipe beside it, trained on WordNet's glosses and scored with the reverse-dictionary
measures.

    python bench/reverse_dictionary.py                         # all-MiniLM-L6-v2, one epoch, 77,502 output words
    python bench/reverse_dictionary.py --recipe "frozen=--head labels" --epochs 2   # recipes compared, 2 epochs
    python bench/reverse_dictionary.py --seed_design           # also the seed's vocabulary head (one-token words)
    python bench/reverse_dictionary.py --smoke --backbone PATH --glosses DIR --descriptions TSV   # for the tests

1. Data: `scripts/build_wordnet_glosses.py` (Debian's wordnet-base) into a work folder, the hand-written
   descriptions (`bench/data/descriptions.tsv`) excluded, or `--glosses DIR` holding its `train.tsv`,
   `held_out.tsv` and `words.txt`. Held-out words keep their place among the output words (`--label_file`) but
   none of their definitions is trained on.
2. Each recipe: `train.py --train_file train.tsv --label_file words.txt --validation_split_percentage 2
   --test_split_percentage 0 --augment_copies 0 --num_train_epochs EPOCHS` plus its flags (none for the default),
   in a child process: wall time, peak resident memory, seconds from start to the end of the first training step,
   the training loss over the run (first and last logged values printed).
3. The word side is checked before and after training: no word may be read with a description holding an
   evaluation phrase (a held-out definition or a hand-written description), or the recipe is refused.
4. Scores over every output word, through `WordMapper.evaluate`: accuracy@1/10/100 and the median rank of the
   gold word, on the held-out words' definitions and on the hand-written descriptions (never trained on).
5. seed_design (`--seed_design`): the seed's own model, `pooler_output` -> the 30,522-token vocabulary head tied to
   the word embeddings, one learning rate, on the pairs whose word is one token; scored on the one-token part of
   each evaluation set, beside the first recipe on the same part.

Prints a table and one JSON line with everything.
"""

import argparse
import bisect
import csv
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hf_bertmap.configuration_bertmap import normalize_phrase

ROOT = Path(__file__).resolve().parents[1]
DESCRIPTIONS = ROOT / "bench" / "data" / "descriptions.tsv"
CUTOFFS = (1, 10, 100)
DEFAULT_FLAGS = ["--validation_split_percentage", "2", "--test_split_percentage", "0", "--augment_copies", "0",
                 "--num_train_epochs", "1"]
# The seed's design as bench/quality.py runs it, for one epoch like the default.
SEED_DESIGN_FLAGS = ["--pooling", "pooler", "--head", "vocab", "--head_learning_rate", "1e-4", "--learning_rate",
                     "1e-4", "--train_sampling_strategy", "random", "--eval_strategy", "no", "--save_strategy", "no",
                     "--load_best_model_at_end", "false", "--calibrate", "false", "--memory", "false",
                     "--do_eval", "false"]
SMOKE_FLAGS = ["--max_train_samples", "40", "--validation_split_percentage", "25", "--per_device_train_batch_size", "8",
               "--logging_steps", "1"]
# Runs train.py's main() with a callback that writes when the first training step ended.
# Runs train.py's main() with a callback noting when the first training step ended, then writes that time and the
# process's own peak resident memory.
CHILD = """
import json, resource, sys, time
from transformers import TrainerCallback
from hf_bertmap.training import main

class FirstStep(TrainerCallback):
    first_step_end = None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 1:
            FirstStep.first_step_end = time.time()

main(sys.argv[2:], callbacks=[FirstStep()])
with open(sys.argv[1], "w") as f:
    json.dump({"first_step_end": FirstStep.first_step_end,
               "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, f)
"""


def read_pairs(path: Path) -> tuple[list[str], list[list[str]]]:
    """Phrases and their gold words, several golds per phrase grouped."""
    golds: dict[str, list[str]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            golds.setdefault(row["phrase"], []).append(row["target"])
    return list(golds), list(golds.values())


def build_glosses(folder: Path) -> Path:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_wordnet_glosses.py"), "--output_dir", str(folder),
                    "--exclude", str(DESCRIPTIONS)], check=True, capture_output=True, text=True)
    return folder


def train(flags: list[str], output: Path, work: Path) -> dict:
    """Run train.py's main() in a child process: wall seconds, peak MiB, seconds to the first step's end, losses."""
    marker = work / f"{output.name}.child.json"
    start = time.time()
    result = subprocess.run([sys.executable, "-c", CHILD, str(marker), *flags, "--output_dir", str(output),
                             "--disable_tqdm", "true"], capture_output=True, text=True, cwd=work,
                            stdin=subprocess.DEVNULL)
    wall = time.time() - start
    if result.returncode != 0:
        raise SystemExit(f"train.py {' '.join(flags)} failed:\n{result.stderr[-3000:]}")
    state = json.loads((output / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    child = json.loads(marker.read_text())
    return {
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(child["peak_rss_mib"]),
        "first_step_s": round(child["first_step_end"] - start, 1),
        "losses": losses,
        "train_loss": state["log_history"][-1].get("train_loss"),
        "train_runtime_s": state["log_history"][-1].get("train_runtime"),
    }


def score(mapper, phrases: list[str], targets: list[list[str]]) -> dict:
    metrics = mapper.evaluate(phrases, targets, k=list(CUTOFFS), min_score=0.0)
    row = {f"acc@{k}": round(metrics[f"accuracy_at_{k}"], 4) for k in CUTOFFS}
    row.update(median_rank=metrics["median_rank"], n=len(phrases))
    return row


def one_token(tokenizer, phrases: list[str], targets: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """The (phrase, golds) rows whose golds keep at least one one-token word, only those words kept."""
    vocab = tokenizer.get_vocab()
    rows = [(p, [w for w in words if w in vocab]) for p, words in zip(phrases, targets)]
    rows = [(p, words) for p, words in rows if words]
    return [p for p, _ in rows], [w for _, w in rows]


def parse_recipe(text: str) -> tuple[str, list[str]]:
    """`NAME=FLAGS` (train.py flags added to the default's) -> (name, flags)."""
    name, _, flags = text.partition("=")
    if not name or not name.isidentifier() or name in ("default", "seed_design"):
        raise argparse.ArgumentTypeError(f"--recipe {text!r}: expected NAME=FLAGS with a new identifier as NAME")
    return name, shlex.split(flags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="all-MiniLM-L6-v2")
    parser.add_argument("--glosses", default=None, help="a folder written by scripts/build_wordnet_glosses.py")
    parser.add_argument("--descriptions", default=str(DESCRIPTIONS), help="hand-written (phrase, target) TSV")
    parser.add_argument("--recipe", action="append", type=parse_recipe, default=[], metavar="NAME=FLAGS",
                        help="also train and score the default with these train.py flags added (repeatable)")
    parser.add_argument("--skip_default", action="store_true", help="score the --recipe runs only")
    parser.add_argument("--epochs", type=float, default=1.0, help="training epochs of every recipe")
    parser.add_argument("--max_train_samples", type=int, default=None, help="a shorter run: this many definitions")
    parser.add_argument("--seed_design", action="store_true", help="also train and score the seed's vocabulary head")
    parser.add_argument("--smoke", action="store_true", help="a tiny run, for the test suite")
    parser.add_argument("--output_dir", default=None, help="keep the trained models here (default: a temp folder)")
    args = parser.parse_args()

    from hf_bertmap import WordMapper

    with tempfile.TemporaryDirectory() as temp:
        work = Path(args.output_dir or temp)
        work.mkdir(parents=True, exist_ok=True)
        glosses = Path(args.glosses) if args.glosses else build_glosses(work / "glosses")
        evaluation = {"held_out_definitions": read_pairs(glosses / "held_out.tsv"),
                      "descriptions": read_pairs(Path(args.descriptions))}
        report = {"backbone": args.backbone, "output_words": len((glosses / "words.txt").read_text().split()),
                  "epochs": args.epochs, "max_train_samples": args.max_train_samples}
        common = DEFAULT_FLAGS + ["--num_train_epochs", str(args.epochs)] + (SMOKE_FLAGS if args.smoke else [])
        if args.max_train_samples and not args.smoke:
            common += ["--max_train_samples", str(args.max_train_samples)]
        data = ["--model_name_or_path", args.backbone, "--train_file", str(glosses / "train.tsv"),
                "--label_file", str(glosses / "words.txt")]
        recipes = ([] if args.skip_default else [("default", [])]) + args.recipe
        phrases = [phrase for split_phrases, _ in evaluation.values() for phrase in split_phrases]
        for name, flags in recipes:
            refuse_leaks(word_side_leaks(recipe_descriptions(flags), [normalize_phrase(p) for p in phrases]), name)
            report[name] = train(data + common + flags, work / name, work)
            report[name]["flags"] = flags
            mapper = WordMapper.from_pretrained(work / name)
            as_stored = mapper.tokenizer.batch_decode(mapper.tokenizer(phrases)["input_ids"], skip_special_tokens=True)
            refuse_leaks(word_side_leaks(stored_descriptions(mapper), as_stored), name)
            for split, (phrases, targets) in evaluation.items():
                report[name][split] = score(mapper, phrases, targets)
        if args.seed_design:
            default = WordMapper.from_pretrained(work / recipes[0][0])
            kept = one_token_pairs(glosses / "train.tsv", work / "train_one_token.tsv", default.tokenizer)
            seed_flags = ["--model_name_or_path", args.backbone, "--train_file", str(kept)] + common + SEED_DESIGN_FLAGS
            report["seed_design"] = train(seed_flags, work / "seed_design", work)
            report["seed_design"]["flags"] = SEED_DESIGN_FLAGS
            seed = WordMapper.from_pretrained(work / "seed_design")
            for split, (phrases, targets) in evaluation.items():
                part = one_token(seed.tokenizer, phrases, targets)
                report["seed_design"][split] = score(seed, *part)
                report[recipes[0][0]][f"{split}_one_token"] = score(default, *part)

    print_table(report)
    print(json.dumps(report))


def recipe_descriptions(flags: list[str]) -> dict[str, str]:
    """The descriptions a recipe's head reads beside the words (`--label_descriptions`), normalised as the package
    writes them; {} for the words alone."""
    from hf_bertmap.pair_files import read_label_descriptions

    if "--label_descriptions" not in flags:
        return {}
    descriptions = read_label_descriptions(flags[flags.index("--label_descriptions") + 1])
    return {word: normalize_phrase(text) for word, text in descriptions.items() if text}


def stored_descriptions(mapper) -> dict[str, str]:
    """What a trained text head keeps and encodes beside each word's name (the text after `word:`, decoded from its
    tokens); {} for other heads, whose rows keep no text."""
    if mapper.model.config.head != "text":
        return {}
    head, tokenizer = mapper.model.classifier, mapper.tokenizer
    texts = tokenizer.batch_decode(head.text_ids.masked_fill(head.text_mask == 0, tokenizer.pad_token_id),
                                   skip_special_tokens=True)
    return {word: text.split(":", 1)[1].strip() for word, text in zip(mapper.words, texts) if ":" in text}


def word_side_leaks(descriptions: dict[str, str], phrases: list[str]) -> list[tuple[str, str]]:
    """(word, evaluation phrase) for every word whose description holds an evaluation phrase (a held-out definition
    or a hand-written description): a row encoded from a word's own test definition would be found by the phrase
    that is that definition, and its score would mean nothing. A word's name alone is never a leak."""
    words = list(descriptions)
    starts = [0]
    for word in words:
        starts.append(starts[-1] + len(descriptions[word]) + 1)
    text = "\n".join(descriptions[word] for word in words)
    leaks = []
    for phrase in set(phrases):
        at = text.find(phrase)
        while at >= 0:
            leaks.append((words[bisect.bisect_right(starts, at) - 1], phrase))
            at = text.find(phrase, at + 1)
    return leaks


def refuse_leaks(leaks: list[tuple[str, str]], recipe: str) -> None:
    if leaks:
        word, phrase = leaks[0]
        raise SystemExit(f"recipe {recipe}: {len(leaks)} evaluation phrase(s) on the word side, e.g. {word!r} is "
                         f"read with {phrase!r}; the scores would mean nothing")


def one_token_pairs(source: Path, target: Path, tokenizer) -> Path:
    """Write the pairs of `source` whose word is one token of `tokenizer` to `target` (the seed design's data)."""
    vocab = tokenizer.get_vocab()
    with open(source, newline="") as f_in, open(target, "w", newline="") as f_out:
        writer = csv.DictWriter(f_out, fieldnames=["phrase", "target"], delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows({"phrase": r["phrase"], "target": r["target"]}
                         for r in csv.DictReader(f_in, delimiter="\t") if r["target"] in vocab)
    return target


def print_table(report: dict) -> None:
    print(f"{report['output_words']} output words, backbone {report['backbone']}")
    for system, run in report.items():
        if not isinstance(run, dict):
            continue
        losses = [f"{loss:.3g}" for loss in run["losses"]] or ["-"]
        print(f"{system}: {run['wall_s']} s wall, {run['peak_rss_mib']} MiB peak, first step at "
              f"{run['first_step_s']} s, loss {losses[0]} -> {losses[-1]}; flags: {shlex.join(run['flags'])}")
        for split, row in run.items():
            if isinstance(row, dict):
                print(f"  {split:<34}" + "  ".join(f"{key} {value}" for key, value in row.items()))


if __name__ == "__main__":
    main()
