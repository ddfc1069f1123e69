"""Build reverse-dictionary data (definition -> word) from WordNet 3.0's glosses, split by word.

    apt-get install wordnet-base && pip install -e ".[data]"
    python scripts/build_wordnet_glosses.py --output_dir glosses [--wordnet_dir /usr/share/wordnet]

Every synset's definition is paired with each of its single-word lemmas, lower-cased (`a member of the genus
Canis ... -> dog`; lemmas with `_`, `-`, digits or apostrophes are left out). A share of the words
(`--held_out_percentage`, chosen by a hash of the word, the same on every machine) is held out: every definition of
a held-out word goes to `held_out.tsv` and none to training, so the model never reads the definition of a word it
is tested on. Output, all tab-separated with a header:

- `train.tsv` (`phrase`, `target`): the definitions of the other words, for `train.py --train_file`;
- `held_out.tsv` (`phrase`, `target`): the held-out words' definitions, paired with the held-out words only;
- `words.txt`: every output word, held-out ones included, one per line, for `train.py --label_file`.

Definitions equal to a phrase in `--exclude` files (`phrase` column, e.g. hand-written evaluation descriptions) are
dropped everywhere.
"""

import argparse
import csv
import hashlib
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_wordnet_attributes import open_wordnet, write_tsv  # noqa: E402


def held_out(word: str, percentage: float) -> bool:
    """Whether `word` is held out: a hash of the word, the same on every machine, below `percentage`%."""
    digest = hashlib.sha1(f"gloss\0{word}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < percentage / 100


def gloss_pairs(synsets) -> dict[str, list[str]]:
    """Definition -> its single-word lemmas, lower-cased, in first-seen order (synsets sharing a definition merge)."""
    words: dict[str, list[str]] = defaultdict(list)
    for synset in synsets:
        definition = " ".join(synset.definition().split())
        for lemma in synset.lemma_names():
            word = lemma.lower()
            if word.isalpha() and word.isascii() and word not in words[definition]:
                words[definition].append(word)
    return {definition: lemmas for definition, lemmas in words.items() if lemmas and definition}


def split_by_word(pairs: dict[str, list[str]], percentage: float,
                  exclude: set[str] = frozenset()) -> tuple[list[dict], list[dict], list[str]]:
    """(training rows, held-out rows, every word): a definition naming a held-out word is held out, paired with its
    held-out words only; definitions in `exclude` go nowhere."""
    train, test, vocabulary = [], [], set()
    for definition, words in pairs.items():
        if definition.lower() in exclude:
            continue
        vocabulary.update(words)
        held = [w for w in words if held_out(w, percentage)]
        rows = test if held else train
        rows += [{"phrase": definition, "target": w} for w in (held or words)]
    # A word whose every definition was held out with another word is an output word with no training definition.
    return train, test, sorted(vocabulary)


def read_phrases(paths: list[str]) -> set[str]:
    phrases = set()
    for path in paths:
        with open(path, newline="") as f:
            phrases |= {" ".join(row["phrase"].lower().split()) for row in csv.DictReader(f, delimiter="\t")}
    return phrases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet_dir", default="/usr/share/wordnet")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--held_out_percentage", type=float, default=1.0)
    parser.add_argument("--exclude", nargs="*", default=[], help="TSV files whose `phrase` column is never written")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work_dir:
        pairs = gloss_pairs(open_wordnet(args.wordnet_dir, work_dir).all_synsets())
    train, test, vocabulary = split_by_word(pairs, args.held_out_percentage, read_phrases(args.exclude))
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_tsv(output_dir / "train.tsv", train, ["phrase", "target"])
    write_tsv(output_dir / "held_out.tsv", test, ["phrase", "target"])
    (output_dir / "words.txt").write_text("".join(f"{word}\n" for word in vocabulary))
    held_words = {row["target"] for row in test}
    print(f"{len({r['phrase'] for r in train})} training definitions ({len(train)} pairs, "
          f"{len({r['target'] for r in train})} words); {len({r['phrase'] for r in test})} held-out definitions of "
          f"{len(held_words)} held-out words; {len(vocabulary)} output words -> {output_dir}")


if __name__ == "__main__":
    main()
