"""Rebuild `hf_bertmap/resources/wordnet_attributes.tsv`, `wordnet_labels.tsv` and `wordnet_glosses.tsv` from
WordNet 3.0.

Run once (the outputs are committed):

    apt-get install wordnet-base && pip install -e ".[data]"
    python scripts/build_wordnet_attributes.py [--wordnet_dir /usr/share/wordnet] [--output_dir DIR]

Pairs (adjective -> attribute synset), by source:

- "everyday": the hand-written table `scripts/everyday_pairs.tsv` of everyday adjectives and the word (or words,
  `|`-separated) a person would answer (`chubby -> weight | size`, `garlicky -> smell | taste`); it replaces
  WordNet's pairs of the same adjective, and its words must be words of the attribute synsets below;
- "direct": an adjective lemma with an attribute pointer (`large -> size.n.01`);
- "satellite": a satellite adjective inherits its head adjective's attributes through similar-to
  (`humongous -> size.n.01`);
- "derivation": an adjective sense with neither gets the attribute that its derived noun names
  (`expensive -> expensiveness -> monetary_value.n.01`, `stinky -> malodorousness -> olfactory_property.n.01`):
  the noun (a noun.attribute, noun.state or noun.feeling synset) or one of its first three hypernyms is an
  attribute synset, or one of `ANCHORS`, before a generic one (`quality`, `property`, `state`...) is reached;
- "gloss": an adjective sense with none of the above whose definition names a sensory or measurable attribute
  (`GLOSS_WORDS`: `musky: having an odor of musk -> olfactory_property.n.01`).

An adjective keeps only the pairs of its frequent senses (`SENSE_SHARE` of its most frequent sense's WordNet tag
count), so `hot` means temperature, not legality. The evaluation phrases (the informal set and the task's own
examples that WordNet does not link: `fishy`, `chonky`, `very chonky`) are left out.

Each attribute synset is written as one everyday word (`wordnet_labels.tsv` lists them all): the synset's
single-word lemma most frequent in English by `wordfreq` (`olfactory_property.n.01 -> smell`, `stature.n.02
-> height`), ties to the head lemma, unless `scripts/everyday_words.tsv` overrides it with a reason
(`worthiness.n.01 -> value`, `hue.n.01 -> color`). Synsets given the same word are merged into one output word;
the pairs keep their synset id. `wordnet_glosses.tsv` gives each output word its synsets' definitions, `; `-joined
(`smell: the sensation that results when olfactory receptors in the nose are stimulated by particular chemicals in
gaseous form`), for `train.py --label_descriptions wordnet`.
"""

import argparse
import csv
import os
import re
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

# Debian's wordnet-base lacks this file; nltk needs it to name lexicographer files.
LEXNAMES = """adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body
noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive
noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation
noun.shape noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication
verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception
verb.possession verb.social verb.stative verb.weather adj.ppl""".split()
POS_NUMBER = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT_DIR = ROOT / "hf_bertmap" / "resources"
OVERRIDES = Path(__file__).resolve().parent / "everyday_words.tsv"
# Hand-written everyday adjectives with the word a person would answer (`chubby -> weight | size`,
# `garlicky -> smell | taste`); they replace WordNet's pairs for the same adjective.
EVERYDAY_PAIRS = Path(__file__).resolve().parent / "everyday_pairs.tsv"
# Evaluation phrases never enter the data: the hand-written informal set, and the task's own examples that
# WordNet does not link (`fishy -> smell`, `very chonky -> size`).
INFORMAL_EVAL = DEFAULT_OUTPUT_DIR / "informal_eval.tsv"
HELD_OUT_EXAMPLES = ("fishy", "chonky", "very chonky")
# The everyday table's categories, by form (docs/data.md): plain words, slang, regional and respelled words, then
# multiword forms (intensified, hedged, negated, comparatives and superlatives, similes, noun phrases, idioms and
# set phrases, free descriptions).
CATEGORIES = ("everyday", "slang", "regional", "spelling", "intensified", "hedged", "negated", "comparative",
              "simile", "noun phrase", "idiom", "description")

# Attribute-like nouns that no adjective points to, reached only through derivation: price (expensive, cheap),
# value (worthy) and volume (noisy, quiet). Broader ones (emotion, physical condition, appearance) were tried and
# pulled unrelated phrases towards themselves (`ginormous -> health`), so they are not anchors.
ANCHORS = ("monetary_value.n.01", "worth.n.02", "sound_property.n.01")
# Too general to be an answer: a derivation that reaches one of these first gives no pair.
GENERIC = ("quality.n.01", "quality.n.02", "property.n.02", "attribute.n.02", "state.n.02", "trait.n.01",
           "condition.n.01", "abstraction.n.06", "feeling.n.01", "characteristic.n.02")
DERIVED_NOUN_FILES = ("noun.attribute", "noun.state", "noun.feeling")
# Words that, in the gloss of an adjective sense with no other attribute, name its attribute
# (`musky: having an odor of musk`, `sparrow-sized: having the approximate size of a sparrow`).
GLOSS_WORDS = {"smell": "olfactory_property.n.01", "odor": "olfactory_property.n.01",
               "odour": "olfactory_property.n.01", "scent": "olfactory_property.n.01",
               "aroma": "olfactory_property.n.01", "taste": "taste_property.n.01", "flavor": "taste_property.n.01",
               "flavour": "taste_property.n.01", "color": "color.n.01", "colour": "color.n.01", "size": "size.n.01",
               "temperature": "temperature.n.01", "weight": "weight.n.01", "price": "monetary_value.n.01",
               "cost": "monetary_value.n.01", "speed": "speed.n.02", "shape": "shape.n.01",
               "texture": "texture.n.01"}
HYPERNYM_DEPTH = 3
# An adjective keeps the attributes of its senses tagged at least this share as often as its most frequent sense
# (WordNet's tag counts): `hot -> temperature` stays, the rare senses' `hot -> legality` goes.
SENSE_SHARE = 0.25


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


def read_overrides(path: Path = OVERRIDES) -> dict[str, tuple[str, str]]:
    """`synset -> (word, reason)` from the reviewed override table; every row needs a reason."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for i, row in enumerate(rows, start=2):
        if not (row["synset"] and row["word"] and row["reason"]):
            raise ValueError(f"{path}, line {i}: synset, word and reason are all required")
    return {row["synset"]: (row["word"], row["reason"]) for row in rows}


class EverydayPair(NamedTuple):
    words: list[str]
    category: str


def read_everyday_pairs(path: Path = EVERYDAY_PAIRS) -> dict[str, EverydayPair]:
    """`phrase -> (words, category)` from the hand-written table: `words` holds one or more words, `|`-separated
    (several only where a person would accept each), `category` one of `CATEGORIES`."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    pairs: dict[str, EverydayPair] = {}
    for i, row in enumerate(rows, start=2):
        phrase = " ".join((row.get("phrase") or "").lower().split())
        words = [w.strip() for w in (row.get("words") or "").split("|")]
        category = (row.get("category") or "").strip()
        if not phrase or not all(words):
            raise ValueError(f"{path}, line {i}: a phrase and at least one word are required")
        if category not in CATEGORIES:
            raise ValueError(f"{path}, line {i}: category {category!r} is not one of {', '.join(CATEGORIES)}")
        if phrase in pairs:
            raise ValueError(f"{path}, line {i}: {phrase!r} is listed twice")
        if len(set(words)) < len(words):
            raise ValueError(f"{path}, line {i}: {phrase!r} lists a word twice")
        pairs[phrase] = EverydayPair(words, category)
    return pairs


def tokens(text: str) -> list[str]:
    """The words of a phrase as the lints and the grouping read them: lower case, split at anything but letters,
    digits and apostrophes (`ice-cold` -> `ice`, `cold`)."""
    return [token for token in re.split(r"[^a-z0-9'\u00c0-\u024f]+", text.lower()) if token]


def contains(text: str, phrase: str) -> bool:
    """Whether `phrase`'s words occur in `text`, in order and together (`ice-cold drink` contains `ice cold`)."""
    inner, outer = tokens(phrase), tokens(text)
    return bool(inner) and any(outer[i:i + len(inner)] == inner for i in range(len(outer) - len(inner) + 1))


def lint_everyday(pairs: dict[str, EverydayPair], words: set[str], held_out: set[str]) -> list[str]:
    """What is wrong with the everyday table, one line per problem: a word that is no output word, and a phrase
    that is, or contains, an evaluation phrase (`very chonky`, `chonky dog` and `ice-cold beer` are refused alike).
    Exact duplicates and a word listed twice are refused when the table is read."""
    problems = []
    for phrase, pair in pairs.items():
        unknown = [w for w in pair.words if w not in words]
        if unknown:
            problems.append(f"{phrase!r}: {unknown} are no attribute's word")
        leaked = sorted(e for e in held_out if contains(phrase, e))
        if leaked:
            problems.append(f"{phrase!r} contains the evaluation phrase(s) {leaked}")
    return problems


def everyday_word(synset, overrides: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """(word, rule) for an attribute synset: the override, else its most frequent single-word lemma in English
    (`wordfreq`), ties to the head lemma; a synset whose lemmas are all phrases uses its most frequent phrase."""
    from wordfreq import zipf_frequency

    if synset.name() in overrides:
        return overrides[synset.name()][0], "override"
    lemmas = [lemma.name().replace("_", " ").lower() for lemma in synset.lemmas()]
    single = [lemma for lemma in lemmas if " " not in lemma] or lemmas
    return max(single, key=lambda w: (zipf_frequency(w, "en"), -lemmas.index(w))), "frequency"


def attribute_pairs(wn) -> list[tuple[str, str, str]]:
    """(adjective, attribute synset name, source) for every distinct pair, by the three sources above, keeping
    for each adjective only its frequent senses (`SENSE_SHARE`)."""
    heads = {s.name(): s.attributes() for s in wn.all_synsets("a") if s.attributes()}
    targets = {a.name() for attributes in heads.values() for a in attributes} | set(ANCHORS)

    def derived(synset) -> list[str]:
        found = []
        for lemma in synset.lemmas():
            for form in sorted(lemma.derivationally_related_forms(), key=lambda form: form.synset().name()):
                noun = form.synset()
                if noun.pos() == "n" and noun.lexname() in DERIVED_NOUN_FILES:
                    attribute = derived_attribute(noun, targets)
                    if attribute is not None and attribute not in found:
                        found.append(attribute)
        return found

    senses = []  # (adjective, sense count, attribute, source)
    for pos in ("a", "s"):
        for synset in wn.all_synsets(pos):
            if synset.name() in heads:
                attributes, source = [a.name() for a in heads[synset.name()]], "direct"
            else:
                similar = sorted(synset.similar_tos(), key=lambda head: head.name())
                attributes = [a.name() for h in similar for a in heads.get(h.name(), [])]
                source = "satellite"
                if not attributes:
                    attributes, source = derived(synset), "derivation"
                    if not attributes:
                        attributes = [a for h in similar for a in derived(h)]
                if not attributes:
                    words = re.findall(r"[a-z]+", synset.definition().lower())
                    attributes = list(dict.fromkeys(GLOSS_WORDS[w] for w in words if w in GLOSS_WORDS))
                    source = "gloss"
            for lemma in synset.lemmas():
                for attribute in attributes:
                    senses.append((lemma.name().replace("_", " ").lower(), lemma.count(), attribute, source))
    most = defaultdict(int)
    for adjective, count, _, _ in senses:
        most[adjective] = max(most[adjective], count)
    pairs: dict[tuple[str, str], str] = {}
    for adjective, count, attribute, source in senses:
        if count >= SENSE_SHARE * most[adjective]:
            pairs.setdefault((adjective, attribute), source)
    return [(adjective, synset, source) for (adjective, synset), source in pairs.items()]


def derived_attribute(noun, targets: set[str]) -> str | None:
    """The first of `noun` and its first `HYPERNYM_DEPTH` hypernyms that is a target, unless a generic one comes
    first."""
    for _ in range(HYPERNYM_DEPTH + 1):
        if noun.name() in GENERIC:
            return None
        if noun.name() in targets:
            return noun.name()
        hypernyms = noun.hypernyms()  # nltk keeps pointers in sets: sort for a build that never changes
        if not hypernyms:
            return None
        noun = min(hypernyms, key=lambda synset: synset.name())
    return None


def build(wn, overrides: dict[str, tuple[str, str]],
          everyday: dict[str, EverydayPair] | None = None) -> tuple[list[dict], list[dict]]:
    """The pair rows (phrase, target, synset, source, category, links) and the label rows (synset, word, rule,
    lemmas, reason).

    `everyday` (phrase -> words and category) replaces WordNet's pairs of those phrases; it must pass
    `lint_everyday`. WordNet phrases that contain an evaluation phrase are left out. `links` names the head words
    and WordNet adjective synsets a phrase shares with others (`phrase_links`), for the grouped split.
    """
    everyday = everyday or {}
    raw = attribute_pairs(wn)
    labels = {}
    for name in sorted({synset for _, synset, _ in raw}):
        synset = wn.synset(name)
        word, rule = everyday_word(synset, overrides)
        labels[name] = {"synset": name, "word": word, "rule": rule,
                        "lemmas": ", ".join(lemma.name().replace("_", " ") for lemma in synset.lemmas()),
                        "reason": overrides.get(name, ("", ""))[1]}
    unused = sorted(set(overrides) - set(labels))
    if unused:
        raise ValueError(f"{OVERRIDES}: overrides for synsets no pair uses: {unused}")
    synset_of = {}
    for name, label in sorted(labels.items()):
        synset_of.setdefault(label["word"], name)
    held_out = held_out_phrases()
    problems = lint_everyday(everyday, set(synset_of), held_out)
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise ValueError(f"{EVERYDAY_PAIRS}: {len(problems)} problem(s):\n  {shown}")
    seen, rows = set(), []
    order = {"direct": 0, "satellite": 1, "derivation": 2, "gloss": 3}
    for phrase, pair in sorted(everyday.items()):
        rows += [{"phrase": phrase, "target": word, "synset": synset_of[word], "source": "everyday",
                  "category": pair.category} for word in pair.words]
    for phrase, synset, source in sorted(raw, key=lambda r: (order[r[2]], r[0], r[1])):
        word = labels[synset]["word"]
        if phrase in everyday or (phrase, word) in seen:  # merged synsets: one pair
            continue
        if any(contains(phrase, e) for e in held_out):
            continue
        seen.add((phrase, word))
        rows.append({"phrase": phrase, "target": word, "synset": synset, "source": source, "category": ""})
    links = phrase_links(wn, sorted({row["phrase"] for row in rows}))
    for row in rows:
        row["links"] = links[row["phrase"]]
    return rows, sorted(labels.values(), key=lambda row: (row["word"], row["synset"]))


# Words that modify a phrase's head rather than name it: they never link two phrases.
MODIFIERS = frozenset("""a an the of as like than and or but to in on at it is its it's that this with for from by
very really so too super extra extremely incredibly insanely ridiculously seriously truly totally completely utterly
absolutely quite rather fairly pretty slightly somewhat kinda sorta kind sort bit little tad touch lot lots way far
much more most less least not no never hardly barely nowhere anything nothing none any all just even real proper
dead well mad wicked crazy bloody damn hella mega ultra af ish ever side enough almost nearly mostly""".split())


def head_words(wn, phrase: str) -> set[str]:
    """A phrase's head words: its words that are not `MODIFIERS` words (the phrase itself when it is one word), by
    their WordNet adjective base form (`bigger` -> `big`)."""
    words = [w for w in tokens(phrase) if w not in MODIFIERS] if " " in phrase or "-" in phrase else [phrase]
    return {wn.morphy(word, "a") or word for word in words}


def phrase_links(wn, phrases: list[str]) -> dict[str, str]:
    """Each phrase's links, for the grouped split: the head words and WordNet adjective synsets it shares with
    another phrase, as numbers (`12 873 4410`). A phrase's head words are its words that are not `MODIFIERS`
    words, by their WordNet adjective base form (`bigger` -> `big`), so `very big`, `bigger` and `big` share
    `big`; their synsets are all the WordNet adjective synsets of those words (`big` and `large` share
    `large.a.01`). Numbers follow the sorted link names, so a rebuild gives the same file."""
    keys = {}
    for phrase in phrases:
        found = set()
        for base in head_words(wn, phrase):
            found.add(f"word:{base}")
            found.update(f"synset:{synset.name()}" for synset in wn.synsets(base.replace(" ", "_"), "a"))
        keys[phrase] = found
    count = defaultdict(int)
    for found in keys.values():
        for key in found:
            count[key] += 1
    number = {key: i for i, key in enumerate(sorted(key for key, n in count.items() if n > 1))}
    return {phrase: " ".join(str(n) for n in sorted(number[k] for k in found if k in number))
            for phrase, found in keys.items()}


def held_out_phrases() -> set[str]:
    """The evaluation phrases: the informal set's and the task's own examples."""
    with open(INFORMAL_EVAL, newline="") as f:
        return {row["phrase"].lower() for row in csv.DictReader(f, delimiter="\t")} | set(HELD_OUT_EXAMPLES)


def word_glosses(wn, labels: list[dict]) -> list[dict]:
    """Each output word with its attribute synsets' definitions, `; `-joined in the labels' order."""
    glosses: dict[str, list[str]] = defaultdict(list)
    for label in labels:
        definition = wn.synset(label["synset"]).definition()
        if definition not in glosses[label["word"]]:
            glosses[label["word"]].append(definition)
    return [{"word": word, "description": "; ".join(definitions)} for word, definitions in sorted(glosses.items())]


def write_tsv(path: Path, rows: list[dict], fields: list[str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet_dir", default="/usr/share/wordnet")
    parser.add_argument("--output_dir", default=str(DEFAULT_OUTPUT_DIR))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work_dir:
        wn = open_wordnet(args.wordnet_dir, work_dir)
        rows, labels = build(wn, read_overrides(), read_everyday_pairs())
        glosses = word_glosses(wn, labels)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_tsv(output_dir / "wordnet_attributes.tsv", rows,
              ["phrase", "target", "synset", "source", "category", "links"])
    write_tsv(output_dir / "wordnet_labels.tsv", labels, ["synset", "word", "rule", "lemmas", "reason"])
    write_tsv(output_dir / "wordnet_glosses.tsv", glosses, ["word", "description"])
    counts = defaultdict(int)
    for row in rows:
        counts[row["source"]] += 1
    print(f"{len(rows)} pairs ({', '.join(f'{n} {source}' for source, n in counts.items())}), "
          f"{len({r['phrase'] for r in rows})} phrases, {len(labels)} attribute synsets, "
          f"{len({r['word'] for r in labels})} target words -> {output_dir}")


if __name__ == "__main__":
    main()
