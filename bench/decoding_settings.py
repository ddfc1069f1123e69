"""The decoding step's memory settings on a trained model: how many stored phrases vote (`memory_neighbors`) and how
sharply their similarities are weighed (`memory_temperature`), against the saved ones.

For each pair of settings, the memory weight and temperature are fitted on the validation split exactly as
`train.py` fits them (`calibration.fit_memory_vote`), then the test split and the informal set are scored. The
model runs once per split; every setting decodes the same logits and embeddings.

    python bench/decoding_settings.py --model bertmap-attributes     # a folder written by `python train.py`
    python bench/decoding_settings.py --model PATH --smoke           # two settings, for the test suite

Prints a table and one JSON line.
"""

import argparse
import dataclasses
import json
import time

import torch

from hf_bertmap import WordMapper
from hf_bertmap.arguments import DataArguments
from hf_bertmap.calibration import fit_memory_vote, top_k_hits
from hf_bertmap.data import gold_ids, load_informal_eval, load_splits

NEIGHBORS = (5, 10, 30, 100)
TEMPERATURES = (0.02, 0.05, 0.1, 0.2)


def outputs(mapper: WordMapper, phrases: list[str]) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    texts, logits, pooled = [], [], []
    for batch_texts, batch_logits, batch_pooled in mapper.iter_outputs(phrases):
        texts += batch_texts
        logits.append(batch_logits)
        pooled.append(batch_pooled)
    return texts, torch.cat(logits), torch.cat(pooled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a trained model folder with a memory")
    parser.add_argument("--smoke", action="store_true", help="two settings only")
    args = parser.parse_args()
    start = time.perf_counter()
    mapper = WordMapper.from_pretrained(args.model)
    decoding = mapper.decoding
    if decoding.memory is None:
        raise SystemExit(f"{args.model}: the model has no memory to tune")
    label2id = mapper.model.config.label2id
    splits = load_splits(DataArguments(lowercase=decoding.config.lowercase))
    sets = {"validation": splits["validation"], "test": splits["test"],
            "informal": load_informal_eval(decoding.config.lowercase)}
    scored = {name: (*outputs(mapper, list(data["phrase"])), gold_ids(list(data["targets"]), label2id))
              for name, data in sets.items()}
    settings = [(n, t) for n in NEIGHBORS for t in TEMPERATURES]
    saved = (decoding.config.memory_neighbors, decoding.config.memory_temperature)
    if args.smoke:
        settings = [saved, (5, 0.2)]
    rows = []
    for neighbors, temperature in settings:
        trial = type(decoding)(dataclasses.replace(decoding.config, memory_neighbors=neighbors,
                                                   memory_temperature=temperature), decoding.memory)
        texts, logits, pooled, golds = scored["validation"]
        chosen, _ = fit_memory_vote(trial, logits, pooled, texts, golds)
        trial.config = dataclasses.replace(trial.config, **chosen)
        weight = chosen["memory_weight"]
        row = {"memory_neighbors": neighbors, "memory_temperature": temperature, "memory_weight": weight,
               "saved": (neighbors, temperature) == saved}
        for name in ("validation", "test", "informal"):
            texts, logits, pooled, golds = scored[name]
            top1, top5 = top_k_hits(trial.probabilities(logits, pooled, texts), golds, 5)
            row[f"{name}_top1"], row[f"{name}_top5"] = round(top1, 4), round(top5, 4)
        rows.append(row)
    print("| neighbors | temperature | weight | validation top-1 | test top-1 / top-5 | informal top-1 / top-5 |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        mark = " (saved)" if row["saved"] else ""
        print(f"| {row['memory_neighbors']}{mark} | {row['memory_temperature']} | {row['memory_weight']} | "
              f"{row['validation_top1']:.4f} | {row['test_top1']:.4f} / {row['test_top5']:.4f} | "
              f"{row['informal_top1']:.4f} / {row['informal_top5']:.4f} |")
    print(json.dumps({"bench": "decoding_settings", "model": args.model, "rows": rows,
                      "seconds": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    main()
