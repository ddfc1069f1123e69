"""Training-time augmentation: copies of training phrases as people also write them — with a modifier ("very X",
"not very X"), as a comparative (`bigger`), misspelt (`hevy`), re-spelt (`loooong`, `comfy`) or with a slang
intensifier (`X af`, `hella X`) — each with its source phrase's target words.
"""

import random

from datasets import Dataset

# Modifiers for training-time augmentation. Negation and hedges keep the attribute: "not very warm" is still
# about temperature.
MODIFIERS = (
    "very {}", "extremely {}", "really {}", "quite {}", "rather {}", "pretty {}", "fairly {}", "super {}",
    "incredibly {}", "so {}", "too {}", "kind of {}", "sort of {}", "somewhat {}", "slightly {}", "a bit {}",
    "a little {}", "barely {}", "not {}", "not very {}", "not at all {}", "hardly {}", "more {}", "less {}",
)


MISSPELT_MAX_WORDS = 5  # longer phrases (definitions) get no misspelt copy or re-spelt copy
# Intensifiers and hedges of informal writing (`--slang`): "X af", "hella X", "lowkey X".
SLANG_MODIFIERS = (
    "{} af", "hella {}", "lowkey {}", "mega {}", "totally {}", "kinda {}", "sorta {}", "mad {}", "crazy {}",
    "real {}", "{} as heck", "{} as hell", "super duper {}", "soooo {}", "v {}", "def {}", "lowkey kinda {}",
)
# Endings people put on a clipped or whole word (`comfy`, `cutie`, `weirdo`, `preggers`).
SLANG_ENDINGS = ("y", "ie", "o", "ers")
VOWELS = "aeiou"



def comparative(word: str) -> str | None:
    """The `-er` comparative of a short one-word adjective (`big -> bigger`, `smelly -> smellier`,
    `large -> larger`), or None for words English compares with "more" (long words, phrases, non-letters)."""
    if not word.isalpha() or not word.islower() or len(word) < 3:
        return None
    if word.endswith("y") and len(word) <= 8 and word[-2] not in "aeiou":
        return word[:-1] + "ier"
    if len(word) > 6:
        return None
    if word.endswith("e"):
        return word + "r"
    vowels = "aeiou"
    if (len(word) <= 4 and word[-1] not in vowels + "wxy" and word[-2] in vowels and word[-3] not in vowels):
        return word + word[-1] + "er"  # big -> bigger, hot -> hotter
    return word + "er"


def longest_word(phrase: str) -> tuple[list[str], int]:
    """`phrase`'s words and the index of its longest (the first of equals): the word a typo or a re-spelling hits."""
    words = phrase.split(" ")
    return words, max(range(len(words)), key=lambda j: len(words[j]))


def misspell(phrase: str, rng: random.Random) -> str | None:
    """One typo in the longest word of `phrase` (a letter dropped, doubled, swapped with the next, or a vowel
    changed), as people type them: `enormous -> enormus`, `heavy -> hevy`; None if no word has 4+ letters."""
    words, i = longest_word(phrase)
    word = words[i]
    if len(word) < 4 or not word.isalpha():
        return None
    k = rng.randrange(1, len(word) - 1)  # keep the first letter, as typos mostly do
    edit = rng.choice(("drop", "double", "swap", "vowel"))
    if edit == "drop":
        word = word[:k] + word[k + 1:]
    elif edit == "double":
        word = word[:k] + word[k] + word[k:]
    elif edit == "swap":
        word = word[:k] + word[k + 1] + word[k] + word[k + 2:]
    else:
        vowels = [j for j in range(1, len(word)) if word[j] in "aeiou"]
        if not vowels:
            return None
        j = rng.choice(vowels)
        word = word[:j] + rng.choice([v for v in "aeiou" if v != word[j]]) + word[j + 1:]
    words[i] = word
    return " ".join(words)


def respell(phrase: str, rng: random.Random) -> str | None:
    """The longest word of `phrase` written as people stretch, shorten or re-spell it on purpose: letters
    stretched (`long -> loooong`, `big -> biiig`), inner vowels dropped (`light -> lght`), or a clipped or whole word
    with a slang ending (`comfortable -> comfy`, `weird -> weirdo`, `cute -> cutie`); None if no word has 3+
    letters."""
    words, i = longest_word(phrase)
    word = words[i]
    if len(word) < 3 or not word.isalpha():
        return None
    edit = rng.choice(("stretch", "stretch", "drop_vowels", "ending"))
    vowels = [j for j, letter in enumerate(word) if letter in VOWELS + "y" and j > 0]
    if edit == "drop_vowels" and len(word) >= 5 and len(vowels) < len(word) - 2:
        word = word[0] + "".join(c for c in word[1:-1] if c not in VOWELS) + word[-1]
    elif edit == "ending":
        # the first syllable and the consonants after it (`comf`, `exp`), else the whole word
        start = next((j for j, c in enumerate(word) if c in VOWELS), 0)
        end = next((j for j in range(start, len(word)) if word[j] not in VOWELS), len(word))
        end = next((j for j in range(end, len(word)) if word[j] in VOWELS), len(word))
        if 3 <= end < len(word) - 1 and rng.random() < 0.5:
            word = word[:end] + rng.choice(SLANG_ENDINGS)
        else:
            word = word.rstrip("ey") + rng.choice(SLANG_ENDINGS[:3])
    else:
        j = rng.choice(vowels) if vowels else len(word) - 1
        word = word[:j] + word[j] * rng.randint(3, 5) + word[j + 1:]
    if word == words[i]:
        return None
    words[i] = word
    return " ".join(words)


def augment(dataset: Dataset, copies: int, seed: int, misspellings: float = 0.0, comparatives: bool = False,
            held_out: frozenset[str] = frozenset(), respellings: float = 0.0, slang: float = 0.0) -> Dataset:
    """Add training rows with the same targets as their source phrase:

    - `copies` per phrase with a random modifier in front ("very X", "kind of X", "not very X", ...);
    - with `comparatives`, the `-er` form of each short one-word phrase (`bigger`, `smellier`);
    - a misspelt copy of a `misspellings` share of the phrases of at most `MISSPELT_MAX_WORDS` words (`hevy`;
      one typo in a sentence-long definition leaves the same definition, and would only lengthen the epoch);
    - a re-spelt copy (`respell`: `loooong`, `lght`, `comfy`) of a `respellings` share of those phrases;
    - a copy with a slang intensifier or hedge (`SLANG_MODIFIERS`: `X af`, `hella X`, `lowkey X`) of a `slang`
      share of those phrases, its word re-spelt half the time (`hella loooong`).

    Rows equal to a phrase in `held_out` (validation, test and evaluation phrases) or already present are left
    out, so augmentation never writes an evaluation phrase into the training data.
    """
    if len(dataset) == 0 or (copies == 0 and misspellings == 0 and not comparatives and not respellings
                             and not slang):
        return dataset
    rng = random.Random(seed)
    phrases, targets = list(dataset["phrase"]), list(dataset["targets"])
    seen = set(phrases) | set(held_out)

    def add(phrase: str | None, words: list[str]) -> None:
        if phrase is not None and phrase not in seen:
            seen.add(phrase)
            phrases.append(phrase)
            targets.append(words)

    for phrase, words in zip(dataset["phrase"], dataset["targets"]):
        for template in rng.sample(MODIFIERS, copies):
            add(template.format(phrase), words)
        if comparatives:
            add(comparative(phrase), words)
        if misspellings and rng.random() < misspellings:
            typo = misspell(phrase, rng)  # drawn for long phrases too: the random stream stays as it was
            add(typo if len(phrase.split(" ")) <= MISSPELT_MAX_WORDS else None, words)
    # Drawn from a stream of their own, so that the copies above stay the same with or without them.
    informal = random.Random(f"informal-{seed}")
    for phrase, words in zip(dataset["phrase"], dataset["targets"]):
        if len(phrase.split(" ")) > MISSPELT_MAX_WORDS:
            continue
        if respellings and informal.random() < respellings:
            add(respell(phrase, informal), words)
        if slang and informal.random() < slang:
            base = (respell(phrase, informal) if informal.random() < 0.5 else None) or phrase
            add(informal.choice(SLANG_MODIFIERS).format(base), words)
    return Dataset.from_dict({"phrase": phrases, "targets": targets}, features=dataset.features)
