"""How honest the built-in split is: the share of test phrases that share a WordNet adjective synset or a head word
with a training phrase, and how often a synonym lookup alone (a training phrase sharing a synset, its words)
answers a test phrase right; for the grouped split of `load_splits` and for the former split by phrase.

    apt-get install wordnet-base && pip install -e ".[data]"
    python scripts/split_report.py
"""

import argparse
import tempfile
from collections import Counter

from build_wordnet_attributes import head_words, open_wordnet

from hf_bertmap.arguments import DataArguments
from hf_bertmap.data import BUILTIN_COLUMNS, BUILTIN_DATA, group_by_phrase, load_splits, split_by_phrase
from hf_bertmap.pair_files import read_pair_file


def report(wn, train, test) -> dict[str, float]:
    synsets = {}
    for phrase in {*train["phrase"], *test["phrase"]}:
        synsets[phrase] = {s.name() for w in head_words(wn, phrase) for s in wn.synsets(w.replace(" ", "_"), "a")}
    train_synsets: dict[str, Counter] = {}
    train_heads = set()
    for phrase, targets in zip(train["phrase"], train["targets"]):
        train_heads |= head_words(wn, phrase)
        for synset in synsets[phrase]:
            train_synsets.setdefault(synset, Counter()).update(targets)
    shared = synonym_right = head = 0
    for phrase, targets in zip(test["phrase"], test["targets"]):
        votes = Counter()
        for synset in synsets[phrase]:
            votes.update(train_synsets.get(synset, Counter()))
        shared += bool(votes)
        synonym_right += bool(votes) and votes.most_common(1)[0][0] in targets
        head += bool(head_words(wn, phrase) & train_heads)
    n = len(test)
    return {"test phrases": n, "share a synset with training": round(shared / n, 4),
            "share a head word with training": round(head / n, 4),
            "synonym lookup top-1": round(synonym_right / n, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet_dir", default="/usr/share/wordnet")
    args = parser.parse_args()
    grouped = load_splits(DataArguments())
    data_args = DataArguments()
    rows = read_pair_file(str(BUILTIN_DATA), ("phrase", "target", *BUILTIN_COLUMNS))
    everyday = {p for p, s in zip(rows["phrase"], rows["source"]) if s == "everyday"}
    by_phrase = split_by_phrase(group_by_phrase(rows, "phrase", "target", True), data_args.validation_split_percentage,
                                data_args.test_split_percentage, 42)
    old = {"test": by_phrase["test"].filter(lambda row: row["phrase"] not in everyday),
           "test_everyday": by_phrase["test"].filter(lambda row: row["phrase"] in everyday)}
    with tempfile.TemporaryDirectory() as work_dir:
        wn = open_wordnet(args.wordnet_dir, work_dir)
        for name, splits, train in (("grouped (load_splits)", grouped, grouped["train"]),
                                    ("by phrase (former)", old, by_phrase["train"])):
            for split in ("test", "test_everyday"):
                print(f"{name:<22} {split:<14} {report(wn, train, splits[split])}")


if __name__ == "__main__":
    main()
