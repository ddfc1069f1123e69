"""Rebuild `hf_bertmap/resources/wordnet_attributes.tsv` from WordNet 3.0.

Run once (the output is committed):

    apt-get install wordnet-base && pip install nltk
    python scripts/build_wordnet_attributes.py [--wordnet_dir /usr/share/wordnet] [--output PATH]

Every adjective lemma with an attribute pointer (`large -> size`) gives a "direct" row; every satellite
adjective inherits the attributes of its head adjective through similar-to (`humongous -> size`), a
"satellite" row. An attribute synset's target word is its most frequent lemma by WordNet tag count, ties
to the synset's head lemma, with `_` written as a space (`olfactory_property.n.01 -> smell`).
"""

import argparse
import csv
import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

# Debian's wordnet-base lacks this file; nltk needs it to name lexicographer files.
LEXNAMES = """adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body
noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive
noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation
noun.shape noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication
verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception
verb.possession verb.social verb.stative verb.weather adj.ppl""".split()
POS_NUMBER = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "hf_bertmap" / "resources" / "wordnet_attributes.tsv"


def open_wordnet(wordnet_dir: str, work_dir: str):
    """Copy WordNet's database files to `work_dir`, add `lexnames`, and open them with nltk's reader.

    nltk 3.10 refuses paths outside `nltk.data.path` (so `/usr/share/wordnet` is refused) and needs a
    `lexnames` file that Debian does not ship; its reader also asks for an `index.sense` it does not need.
    """
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    for name in os.listdir(wordnet_dir):
        path = os.path.join(wordnet_dir, name)
        if os.path.isfile(path):
            shutil.copy(path, work_dir)
    with open(os.path.join(work_dir, "lexnames"), "w") as f:
        for i, name in enumerate(LEXNAMES):
            f.write(f"{i:02d}\t{name}\t{POS_NUMBER[name.split('.')[0]]}\n")
    nltk.data.path.append(work_dir)

    class LocalWordNetReader(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            # The 3.0 -> OMW synset mapping needs `index.sense`; this script reads WordNet 3.0 itself.
            return None

    return LocalWordNetReader(work_dir, None)


def target_word(synset) -> str:
    """The attribute's most frequent lemma by tag count; ties go to the head (first) lemma."""
    lemmas = synset.lemmas()
    best = max(lemmas, key=lambda lemma: (lemma.count(), -lemmas.index(lemma)))
    return best.name().replace("_", " ").lower()


def build_rows(wn) -> list[dict]:
    """One row per distinct (adjective, attribute synset) pair, direct pairs first."""
    pairs: dict[tuple[str, str], dict] = {}

    def add(adjective: str, attribute, source: str) -> None:
        phrase = adjective.replace("_", " ").lower()
        key = (phrase, attribute.name())
        if key not in pairs:
            pairs[key] = {"phrase": phrase, "target": target_word(attribute), "synset": attribute.name(),
                          "source": source}

    head_attributes = defaultdict(list)
    for synset in wn.all_synsets("a"):
        attributes = synset.attributes()
        if not attributes:
            continue
        head_attributes[synset.name()] = attributes
        for lemma in synset.lemmas():
            for attribute in attributes:
                add(lemma.name(), attribute, "direct")
    for synset in wn.all_synsets("s"):
        for head in synset.similar_tos():
            for attribute in head_attributes.get(head.name(), []):
                for lemma in synset.lemmas():
                    add(lemma.name(), attribute, "satellite")
    return sorted(pairs.values(), key=lambda row: (row["source"] != "direct", row["phrase"], row["synset"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet_dir", default="/usr/share/wordnet")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work_dir:
        rows = build_rows(open_wordnet(args.wordnet_dir, work_dir))
    with open(args.output, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["phrase", "target", "synset", "source"], delimiter="\t",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    direct = sum(row["source"] == "direct" for row in rows)
    print(f"{len(rows)} pairs ({direct} direct), {len({r['phrase'] for r in rows})} adjectives, "
          f"{len({r['synset'] for r in rows})} attribute synsets, {len({r['target'] for r in rows})} target words "
          f"-> {args.output}")


if __name__ == "__main__":
    main()
