"""Quality on unseen adjectives and informal phrases: zero-shot embeddings, the seed's design and the default
hf_bertmap recipe, trained and evaluated on the same split in one run; plus, for the default recipe, calibration
(ECE before/after temperature scaling), the abstention curve, and `add_labels` on 20 attribute classes held out of
training entirely.

    python bench/quality.py                                  # every system on the default backbone
    python bench/quality.py --systems zero_shot,embedding_knn,default --skip_add_labels   # a subset
    python bench/quality.py --smoke --backbone PATH          # a tiny run, for the test suite
    python bench/quality.py --train_fraction 0.1             # little data: a tenth of the training adjectives
    python bench/quality.py --systems default --variant "labels=--head labels" --skip_add_labels  # recipes compared

Systems (all on the built-in data and its grouped split: `test` holds WordNet phrases and `test_everyday` everyday
phrases, none sharing a head word or a WordNet adjective synset with a training phrase):
- zero_shot: the backbone's mean-pooled phrase embedding, cosine to each label name's embedding (probabilities:
  softmax of the cosines with a temperature fitted on validation, so that its ECE means something).
- embedding_knn (peer): the real `sentence-transformers` library on the same backbone: each phrase's embedding,
  a vote of its KNN nearest training phrases (softmax of their cosines / 0.05, spread over their golds).
- setfit (peer): the real `setfit` library on the same backbone: contrastive fine-tuning (1 iteration of pairs,
  1 epoch), then its logistic-regression head; each training phrase counts with its first gold.
- seed_design: the seed's own model: `pooler_output` and a linear layer over the tokenizer's whole vocabulary
  (tied to the word embeddings), one learning rate for all, 3 epochs, no checkpoint selection or calibration:
  `train.py` with the flags in SEED_DESIGN_FLAGS, trained on the single-token targets (a gold word that is not one
  token counts as a miss).
- default: `python train.py` with no flags.
- variants (`--variant NAME=FLAGS`, repeatable): `python train.py FLAGS`, scored like the default.

`--train_fraction F` keeps a fixed share F of the training adjectives (chosen by a hash of the phrase, the same on
every machine) for every system, with the same validation and test splits and informal set: the regime of a user
with a small dataset.

The peers need `pip install -e ".[bench]"`.

Prints tables and one JSON line with everything.
"""

import argparse
import csv
import dataclasses
import hashlib
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from hf_bertmap import WordMapper
from hf_bertmap.arguments import DEFAULT_BACKBONE, DataArguments
from hf_bertmap.backbones import resolve_backbone
from hf_bertmap.calibration import fit_temperature
from hf_bertmap.data import gold_ids, label_list_for, load_informal_eval, load_splits
from hf_bertmap.metrics import gold_lists, word_mapping_scores
from hf_bertmap.modeling_bertmap import masked_mean
from hf_bertmap.pair_files import read_label_descriptions

ROOT = Path(__file__).resolve().parents[1]
SEED_DESIGN_FLAGS = ["--pooling", "pooler", "--head", "vocab", "--head_learning_rate", "1e-4",
                     "--learning_rate", "1e-4",
                     "--num_train_epochs", "3",
                     "--train_sampling_strategy", "random", "--eval_strategy", "no", "--save_strategy", "no",
                     "--load_best_model_at_end", "false", "--calibrate", "false", "--memory", "false"]
SMOKE_FLAGS = ["--max_train_samples", "60", "--max_eval_samples", "20", "--max_predict_samples", "30",
               "--num_train_epochs", "1"]
SYSTEMS = ("zero_shot", "embedding_knn", "setfit", "seed_design", "default")
THRESHOLDS = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8]
K = 5
KNN = 10
EXAMPLES = {"fishy": "smell", "valuable": "value", "large": "size", "very chonky": "size"}


def score(probabilities: torch.Tensor, targets: list[list[str]], labels: list[str]) -> dict[str, float]:
    """accuracy@1, accuracy@5, macro-F1 and ECE of `probabilities` (n, len(labels)) against gold words (the
    package's `word_mapping_scores`, as `train.py` and `bertmap evaluate` compute them)."""
    references = gold_lists(targets, label_index(labels))
    top = probabilities.topk(min(K, probabilities.shape[-1]), dim=-1)
    results = word_mapping_scores(top.indices.tolist(), top.values[:, 0].tolist(), references, K)
    return {"top1": round(results["accuracy"], 4), "top5": round(results[f"accuracy_at_{K}"], 4),
            "macro_f1": round(results["macro_f1"], 4), "ece": round(results["ece"], 4), "n": len(targets)}


def evaluation_sets(splits, informal) -> dict:
    """What every system is scored on: the test split (WordNet's phrases), the everyday test split where the data
    has one, and the informal set."""
    sets = {"test": splits["test"]}
    if "test_everyday" in splits:
        sets["test_everyday"] = splits["test_everyday"]
    return sets | {"informal": informal}


def label_index(labels: list[str]) -> dict[str, int]:
    return {label: i for i, label in enumerate(labels)}


def zero_shot(backbone: str, labels: list[str], splits, informal) -> dict:
    """Cosine between the mean-pooled embeddings of the phrase and of each label name."""
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    encoder = AutoModel.from_pretrained(backbone).eval()

    @torch.inference_mode()
    def embed(texts: list[str]) -> torch.Tensor:
        chunks = []
        for start in range(0, len(texts), 128):
            inputs = tokenizer(texts[start : start + 128], padding=True, truncation=True, max_length=32,
                               return_tensors="pt")
            hidden = encoder(**inputs).last_hidden_state
            chunks.append(torch.nn.functional.normalize(masked_mean(hidden, inputs["attention_mask"]), dim=-1))
        return torch.cat(chunks)

    label_embeddings = embed(labels)

    def cosines(dataset) -> torch.Tensor:
        return embed(list(dataset["phrase"])) @ label_embeddings.T

    validation = cosines(splits["validation"])
    temperature = fit_temperature(validation, gold_ids(list(splits["validation"]["targets"]), label_index(labels)))
    report = {"temperature": round(temperature, 4)}
    for name, dataset in evaluation_sets(splits, informal).items():
        report[name] = score((cosines(dataset) / temperature).softmax(-1), list(dataset["targets"]), labels)
    return report


def embedding_knn(backbone: str, splits, informal, labels: list[str]) -> dict:
    """sentence-transformers embeddings and a vote of the KNN nearest training phrases."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(backbone, device="cpu")
    start = time.perf_counter()
    keys = model.encode(list(splits["train"]["phrase"]), batch_size=128, normalize_embeddings=True,
                        convert_to_tensor=True)
    golds = gold_ids(list(splits["train"]["targets"]), label_index(labels))
    spread = torch.zeros(len(golds), len(labels)).scatter_add_(1, golds.clamp(min=0), (golds >= 0).float())
    spread = spread / spread.sum(dim=-1, keepdim=True).clamp(min=1)  # each phrase's golds share its vote

    def probabilities(phrases: list[str]) -> torch.Tensor:
        queries = model.encode(phrases, batch_size=128, normalize_embeddings=True, convert_to_tensor=True)
        top = (queries @ keys.T).topk(KNN, dim=-1)
        weights = (top.values / 0.05).softmax(dim=-1)  # (n, KNN)
        return torch.einsum("nk,nkl->nl", weights, spread[top.indices])

    report = {"fit_wall_s": round(time.perf_counter() - start, 1)}
    for name, dataset in evaluation_sets(splits, informal).items():
        report[name] = score(probabilities(list(dataset["phrase"])), list(dataset["targets"]), labels)
    report["examples"] = top_words(probabilities(list(EXAMPLES)), labels)
    return report


def setfit_peer(backbone: str, splits, informal, labels: list[str], smoke: bool, work: Path) -> dict:
    """SetFit: contrastive fine-tuning of the backbone on phrase pairs, then a logistic-regression head."""
    from datasets import Dataset
    from setfit import SetFitModel
    from setfit import Trainer as SetFitTrainer
    from setfit import TrainingArguments as SetFitArguments

    label2id = {label: i for i, label in enumerate(labels)}
    train = Dataset.from_dict({"text": list(splits["train"]["phrase"]),
                               "label": [label2id[words[0]] for words in splits["train"]["targets"]]})
    model = SetFitModel.from_pretrained(backbone)
    args = SetFitArguments(output_dir=str(work / "setfit"), batch_size=32, num_epochs=1, num_iterations=1,
                           max_steps=5 if smoke else -1, seed=42, report_to="none", show_progress_bar=False)
    start = time.perf_counter()
    SetFitTrainer(model=model, args=args, train_dataset=train).train()
    wall = round(time.perf_counter() - start, 1)
    classes = [int(c) for c in model.model_head.classes_]

    def probabilities(phrases: list[str]) -> torch.Tensor:
        full = torch.zeros(len(phrases), len(labels))
        full[:, classes] = torch.as_tensor(model.predict_proba(phrases, as_numpy=True), dtype=torch.float)
        return full

    report = {"train_wall_s": wall}
    for name, dataset in evaluation_sets(splits, informal).items():
        report[name] = score(probabilities(list(dataset["phrase"])), list(dataset["targets"]), labels)
    report["examples"] = top_words(probabilities(list(EXAMPLES)), labels)
    return report


def top_words(probabilities: torch.Tensor, labels: list[str]) -> dict[str, str]:
    """The top word for each of the task's own examples."""
    return {phrase: labels[i] for phrase, i in zip(EXAMPLES, probabilities.argmax(dim=-1).tolist())}


def single_token_files(work: Path, splits, tokenizer) -> list[str]:
    """train.py flags naming train/validation files that keep only the single-token targets (the seed's vocabulary
    head can output nothing else); phrases left with no target go, and an empty validation or test file is left
    out (train.py then carves one). This script scores the test split itself, on all its golds."""
    vocab = tokenizer.get_vocab()
    flags = []
    for split in ("train", "validation", "test"):
        path = work / f"single_token_{split}.tsv"
        other = {w for words in splits[split]["targets"] for w in words if w not in vocab}
        if write_pairs(path, splits[split], other) or split == "train":
            flags += [f"--{split}_file", str(path)]
    return flags


def train(output: Path, flags: list[str], log: Path) -> float:
    """Run train.py into `output`; its wall time in seconds."""
    start = time.perf_counter()
    with open(log, "w") as f:
        result = subprocess.run([sys.executable, str(ROOT / "train.py"), "--output_dir", str(output),
                                 "--disable_tqdm", "true", *flags], stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=output.parent)
    if result.returncode != 0:
        raise SystemExit(f"train.py {' '.join(flags)} failed; see the end of {log}:\n{log.read_text()[-3000:]}")
    return round(time.perf_counter() - start, 1)


def evaluate_model(mapper: WordMapper, splits, informal) -> dict:
    """Test and informal scores, ECE before calibration, per-category informal top-1, abstention curves."""
    report, probabilities = {}, {}
    calibrated = mapper.decoding.config.temperature
    uncalibrated = dataclasses.replace(mapper.decoding.config, temperature=1.0)
    for name, dataset in evaluation_sets(splits, informal).items():
        probabilities[name] = mapper.predict_proba(list(dataset["phrase"]))
        report[name] = score(probabilities[name], list(dataset["targets"]), mapper.words)
        report[name]["abstention"] = abstention_curve(probabilities[name], list(dataset["targets"]), mapper.words)
        report[name]["ece_uncalibrated"] = score(mapper.predict_proba(list(dataset["phrase"]), config=uncalibrated),
                                                 list(dataset["targets"]), mapper.words)["ece"]
    report["temperature"] = calibrated
    categories = sorted(set(informal["category"]))
    top1 = top1_hits(probabilities["informal"], list(informal["targets"]), mapper.words).tolist()
    report["examples"] = top_words(mapper.predict_proba(list(EXAMPLES)), mapper.words)
    report["informal_by_category"] = {
        category: round(sum(hit for hit, c in zip(top1, informal["category"]) if c == category)
                        / sum(c == category for c in informal["category"]), 4)
        for category in categories
    }
    return report


def top1_hits(probabilities: torch.Tensor, targets: list[list[str]], labels: list[str]) -> torch.Tensor:
    """Per phrase, whether the most probable word is one of its golds."""
    return torch.tensor([labels[i] in words for i, words in zip(probabilities.argmax(dim=-1).tolist(), targets)])


def abstention_curve(probabilities: torch.Tensor, targets: list[list[str]], labels: list[str]) -> list[dict]:
    """Per threshold: the share of phrases answered and the top-1 accuracy on those."""
    confidence = probabilities.max(dim=-1).values
    hits = top1_hits(probabilities, targets, labels)
    curve = []
    for threshold in THRESHOLDS:
        answered = confidence >= threshold
        curve.append({"min_score": threshold, "coverage": round(float(answered.float().mean()), 4),
                      "accuracy": round(float(hits[answered].float().mean()), 4) if answered.any() else None})
    return curve


def write_pairs(path: Path, dataset, drop: set[str]) -> int:
    """Write `dataset`'s (phrase, target) rows without the targets in `drop`; phrases left with none go."""
    rows = 0
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["phrase", "target"])
        for phrase, words in zip(dataset["phrase"], dataset["targets"]):
            for word in words:
                if word not in drop:
                    writer.writerow([phrase, word])
                    rows += 1
    return rows


def held_out_classes(splits, count: int, seed: int = 0) -> list[str]:
    """`count` target words, drawn at random among those with a test phrase and at least 3 training phrases."""
    train_counts: dict[str, int] = {}
    for words in splits["train"]["targets"]:
        for word in words:
            train_counts[word] = train_counts.get(word, 0) + 1
    in_test = {w for words in splits["test"]["targets"] for w in words}
    candidates = sorted(w for w, n in train_counts.items() if n >= 3 and w in in_test)
    return sorted(random.Random(seed).sample(candidates, min(count, len(candidates))))


def add_labels_experiment(work: Path, splits, flags: list[str], count: int) -> dict:
    """Train a recipe (train.py `flags`) with `count` classes removed from training, add them back by name and,
    separately, with their WordNet glosses as descriptions (`add_labels(words, descriptions=...)`), and score the
    test phrases that have one of them as a gold (only the held-out golds count)."""
    held_out = held_out_classes(splits, count)
    work.mkdir()
    files = {}
    for split in ("train", "validation", "test"):
        files[split] = work / f"held_out_{split}.tsv"
        write_pairs(files[split], splits[split], set(held_out) if split != "test" else set())
    output = work / "held-out"
    wall = train(output, [*flags, "--train_file", str(files["train"]), "--validation_file", str(files["validation"]),
                          "--test_file", str(files["test"])], work / "held_out.log")
    test = splits["test"].filter(lambda row: any(w in held_out for w in row["targets"]))
    held_targets = [[w for w in words if w in held_out] for words in test["targets"]]
    glosses = read_label_descriptions("wordnet")
    inside = sum(any(phrase in glosses[w].lower() for w in words)
                 for phrase, words in zip(test["phrase"], held_targets))
    report = {"held_out": held_out, "test_phrases_with_a_held_out_gold": len(test), "train_wall_s": wall,
              "test_phrases_inside_their_description": inside}
    for way, descriptions in (("by_name", None), ("described", {w: glosses[w] for w in held_out})):
        mapper = WordMapper.from_pretrained(output)
        assert not set(held_out) & set(mapper.words)
        before = score(mapper.predict_proba(list(splits["test"]["phrase"])), list(splits["test"]["targets"]),
                       mapper.words)
        mapper.add_labels(held_out, descriptions=descriptions)
        after = score(mapper.predict_proba(list(test["phrase"])), held_targets, mapper.words)
        overall = score(mapper.predict_proba(list(splits["test"]["phrase"])), list(splits["test"]["targets"]),
                        mapper.words)
        report[way] = {"held_out_top1": after["top1"], "held_out_top5": after["top5"],
                       "all_test_top1_before_adding": before["top1"], "all_test_top1_after_adding": overall["top1"],
                       "all_test_top5_before_adding": before["top5"], "all_test_top5_after_adding": overall["top5"]}
    return report


def print_tables(report: dict, variants: list[str] = ()) -> None:
    for name, row in report.get("add_labels", {}).items():
        print(f"\n{name}: add_labels, {len(row['held_out'])} classes never trained on "
              f"({row['test_phrases_with_a_held_out_gold']} test phrases, "
              f"{row['test_phrases_inside_their_description']} of them inside their word's gloss)")
        for way in ("by_name", "described"):
            added = row[way]
            print(f"  {way:<10} top-1 {added['held_out_top1']:.3f}, top-5 {added['held_out_top5']:.3f}; all test "
                  f"top-1 {added['all_test_top1_before_adding']:.3f} -> {added['all_test_top1_after_adding']:.3f}")
    names = [name for name in (*SYSTEMS, *variants) if name in report]
    everyday = lambda row, key: row["test_everyday"][key] if "test_everyday" in row else float("nan")  # noqa: E731
    print(f"\n{'system':<14}{'test top-1':>11}{'top-5':>8}{'macro-F1':>10}{'ECE':>8}{'everyday top-1':>16}"
          f"{'top-5':>8}{'informal top-1':>16}{'top-5':>8}{'train s':>9}")
    for name in names:
        row = report[name]
        print(f"{name:<14}{row['test']['top1']:>11.3f}{row['test']['top5']:>8.3f}{row['test']['macro_f1']:>10.3f}"
              f"{row['test']['ece']:>8.3f}{everyday(row, 'top1'):>16.3f}{everyday(row, 'top5'):>8.3f}"
              f"{row['informal']['top1']:>16.3f}{row['informal']['top5']:>8.3f}{row.get('train_wall_s', 0):>9.0f}")
    for name in names[1:] if names[:1] == ["zero_shot"] else names:
        hits = sum(report[name]["examples"][p] == w for p, w in EXAMPLES.items())
        print(f"{name} on the task's examples ({hits}/{len(EXAMPLES)}): {report[name]['examples']}")
    if "default" not in report:
        return
    default = report["default"]
    print(f"\ndefault: temperature {default['temperature']:.3f}; test ECE {default['test']['ece_uncalibrated']:.3f} "
          f"-> {default['test']['ece']:.3f}; informal ECE {default['informal']['ece_uncalibrated']:.3f} -> "
          f"{default['informal']['ece']:.3f}")
    for name in (name for name in names if "informal_by_category" in report[name]):
        print(f"{name}: informal top-1 by category: " + ", ".join(
            f"{c} {v:.3f}" for c, v in report[name]["informal_by_category"].items()))
    print(f"\n{'min_score':>9}{'test coverage':>15}{'accuracy':>10}{'informal coverage':>19}{'accuracy':>10}")
    for test_row, informal_row in zip(default["test"]["abstention"], default["informal"]["abstention"]):
        print(f"{test_row['min_score']:>9.2f}{test_row['coverage']:>15.3f}{test_row['accuracy'] or 0:>10.3f}"
              f"{informal_row['coverage']:>19.3f}{informal_row['accuracy'] or 0:>10.3f}")


def keep_fraction(splits, fraction: float, work: Path) -> list[str]:
    """Keep a fixed `fraction` of the training phrases in `splits` (by a hash of the phrase), and return the
    train.py flags naming files of the three splits as kept."""
    if fraction >= 1.0:
        return []
    kept = [i for i, phrase in enumerate(splits["train"]["phrase"])
            if int.from_bytes(hashlib.sha1(f"fraction\0{phrase}".encode()).digest()[:8], "big") / 2**64 < fraction]
    splits["train"] = splits["train"].select(kept)
    flags = []
    for split in ("train", "validation", "test"):
        path = work / f"fraction_{split}.tsv"
        write_pairs(path, splits[split], set())
        flags += [f"--{split}_file", str(path)]
    return flags


def parse_variants(values: list[str]) -> dict[str, list[str]]:
    """`NAME=FLAGS` -> {NAME: [flags]}; a name must not be a system's."""
    variants = {}
    for value in values:
        name, sep, flags = value.partition("=")
        if not sep or not name or name in SYSTEMS or name in variants:
            raise SystemExit(f"--variant {value!r}: expected NAME=FLAGS with a new NAME")
        variants[name] = shlex.split(flags)
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=None, help="default: train.py's own default")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--held_out_classes", type=int, default=20)
    parser.add_argument("--skip_add_labels", action="store_true", help="skip the held-out-classes training run")
    parser.add_argument("--add_labels_systems", default="default",
                        help="comma-separated: the recipes (default and variants) the held-out-classes run trains")
    parser.add_argument("--smoke", action="store_true", help="a tiny run, for the test suite")
    parser.add_argument("--train_fraction", type=float, default=1.0,
                        help="keep this share of the training adjectives for every system (small-data regime)")
    parser.add_argument("--output_dir", default=None, help="keep the trained models here (default: a temp folder)")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=FLAGS: also train `train.py FLAGS` and score it like the default (repeatable)")
    args = parser.parse_args()
    variants = parse_variants(args.variant)
    add_labels_systems = [name for name in args.add_labels_systems.split(",") if name]
    if set(add_labels_systems) - {"default", *variants}:
        parser.error("--add_labels_systems: name the default or variants")
    systems = [name for name in args.systems.split(",") if name]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"--systems: unknown {unknown}; choose among {', '.join(SYSTEMS)}")

    common = (["--model_name_or_path", args.backbone] if args.backbone else []) + (SMOKE_FLAGS if args.smoke else [])
    data_args = DataArguments(max_train_samples=400 if args.smoke else None,  # enough of the tiny vocabulary's words
                              max_eval_samples=20 if args.smoke else None,
                              max_predict_samples=30 if args.smoke else None)
    splits = load_splits(data_args)
    fraction_work = tempfile.TemporaryDirectory()
    data_flags = keep_fraction(splits, args.train_fraction, Path(fraction_work.name))
    informal = load_informal_eval()
    if args.smoke:
        informal = informal.select(range(30))
    backbone = resolve_backbone(args.backbone or DEFAULT_BACKBONE)
    labels = label_list_for("labels", splits["train"], None)

    report = {"split": {split: len(splits[split]) for split in splits}, "informal_phrases": len(informal),
              "informal_categories": sorted(set(informal["category"])),
              "labels": len(labels), "threads": torch.get_num_threads(), "backbone": args.backbone or DEFAULT_BACKBONE,
              "train_fraction": args.train_fraction, "variants": {name: shlex.join(f) for name, f in variants.items()}}
    if "zero_shot" in systems:
        report["zero_shot"] = zero_shot(backbone, labels, splits, informal)
    if "embedding_knn" in systems:
        report["embedding_knn"] = embedding_knn(backbone, splits, informal, labels)
    with tempfile.TemporaryDirectory() as temp:
        work = Path(args.output_dir or temp)
        work.mkdir(parents=True, exist_ok=True)
        if "setfit" in systems:
            report["setfit"] = setfit_peer(backbone, splits, informal, labels, args.smoke, work)
        os.environ["HF_DATASETS_CACHE"] = str(work / "datasets-cache")  # no preprocessing cache hits
        trained = {name: [] for name in ("seed_design", "default") if name in systems} | variants
        for name, flags in trained.items():
            files = data_flags
            if name == "seed_design":  # its own files, of the single-token targets of the same splits
                files = single_token_files(work, splits, AutoTokenizer.from_pretrained(backbone))
                flags = SEED_DESIGN_FLAGS
            wall = train(work / name, common + files + flags, work / f"{name}.log")
            report[name] = evaluate_model(WordMapper.from_pretrained(work / name), splits, informal)
            report[name]["train_wall_s"] = wall
        if not args.skip_add_labels:
            report["add_labels"] = {
                name: add_labels_experiment(work / f"add-labels-{name}", splits,
                                            common + data_flags + trained.get(name, []),
                                            3 if args.smoke else args.held_out_classes)
                for name in add_labels_systems}
    fraction_work.cleanup()
    print_tables(report, list(variants))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
