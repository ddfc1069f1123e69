"""Training throughput of `Trainer` + `BertForWordMapping` against a bare PyTorch loop, side by side in one run.

Same model init, optimizer (Trainer's AdamW implementation, encoder 1e-4 / head 3e-3), batch size, number of timed
steps and the *same batches in the same order*: the built-in WordNet training split (with its augmented copies) is
shuffled once with a fixed seed, and both loops read it sequentially, so padding (which depends on which phrases
share a batch) is identical. Each loop runs `--repeats` times, alternating; the table shows the median and the
spread. Also the effect of padding every batch to the maximum length and of length-grouped batches against dynamic
padding.

    python bench/train_throughput.py                 # all-MiniLM-L6-v2, batch 32, 30 timed steps, 3 repeats
    python bench/train_throughput.py --smoke --backbone PATH_TO_TINY_BERT

Prints a table and one JSON line (field `trainer_over_bare`: the median Trainer rate over the median bare rate).
"""

import argparse
import json
import platform
import statistics
import time

import torch
from torch.utils.data import DataLoader
from transformers import AutoModel, AutoTokenizer, TrainerCallback, set_seed

from hf_bertmap.arguments import BertMapTrainingArguments, DataArguments, ModelArguments
from hf_bertmap.backbones import resolve_backbone
from hf_bertmap.data import WordMappingCollator, label_list_for, load_splits, preprocess_splits
from hf_bertmap.trainer import BertMapTrainer
from hf_bertmap.training import build_model


class StepTimer(TrainerCallback):
    """Wall time of the training steps after the first `warmup` ones."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end = warmup, None, None

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.end = time.perf_counter()


def fresh_model(backbone: str, labels: list[str]):
    set_seed(0)
    return build_model(ModelArguments(model_name_or_path=backbone), labels, AutoModel.from_pretrained(backbone))


def trainer_samples_per_s(backbone, labels, dataset, collator, batch_size, warmup, steps, group_by_length=False):
    timer = StepTimer(warmup)
    args = BertMapTrainingArguments(
        output_dir="/tmp/bertmap-bench", max_steps=warmup + steps, per_device_train_batch_size=batch_size,
        learning_rate=1e-4, head_learning_rate=3e-3, save_strategy="no", eval_strategy="no",
        load_best_model_at_end=False, logging_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True,
        dataloader_pin_memory=False, seed=0,
        train_sampling_strategy="group_by_length" if group_by_length else "sequential",
    )
    trainer = BertMapTrainer(model=fresh_model(backbone, labels), args=args, train_dataset=dataset,
                             data_collator=collator, callbacks=[timer])
    trainer.train()
    return steps * batch_size / (timer.end - timer.start)


def bare_samples_per_s(backbone, labels, dataset, collator, batch_size, warmup, steps):
    model = fresh_model(backbone, labels).train()
    head = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    encoder = [p for n, p in model.named_parameters() if n.startswith("encoder.")]
    # The optimizer implementation Trainer picks (transformers 5: fused AdamW on CPU too), so only the loop differs.
    optimizer_cls, optimizer_kwargs = BertMapTrainer.get_optimizer_cls_and_kwargs(
        BertMapTrainingArguments(output_dir="/tmp/bertmap-bench", use_cpu=True, report_to="none"))
    optimizer_kwargs.pop("lr", None)
    optimizer = optimizer_cls([{"params": encoder, "lr": 1e-4}, {"params": head, "lr": 3e-3}], **optimizer_kwargs)
    columns = ["input_ids", "attention_mask", "token_type_ids", "labels"]
    loader = DataLoader(dataset.remove_columns([c for c in dataset.column_names if c not in columns]),
                        batch_size=batch_size, shuffle=False, collate_fn=collator)
    batches = iter(loader)
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        batch = next(batches)
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="all-MiniLM-L6-v2")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each loop (median and spread reported)")
    parser.add_argument("--smoke", action="store_true", help="a few steps, for the test suite")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.warmup, args.batch_size, args.repeats = 3, 1, 8, 2

    backbone = resolve_backbone(args.backbone)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    data_args = DataArguments(max_train_samples=200 if args.smoke else None)
    splits = load_splits(data_args)
    labels = label_list_for("labels", splits["train"], tokenizer)
    dataset = preprocess_splits(splits, labels, tokenizer, data_args, seed=0, cache_root="/tmp/bertmap-bench-cache")
    train = dataset["train"].remove_columns(["phrase", "targets"]).shuffle(seed=0).flatten_indices()
    dynamic = WordMappingCollator(tokenizer)

    class PadToMax(WordMappingCollator):
        def __call__(self, features):
            for f in features:
                pad = data_args.max_seq_length - len(f["input_ids"])
                f["input_ids"] = f["input_ids"] + [tokenizer.pad_token_id] * pad
                f["attention_mask"] = f["attention_mask"] + [0] * pad
                if "token_type_ids" in f:
                    f["token_type_ids"] = f["token_type_ids"] + [0] * pad
            return super().__call__(features)

    common = dict(backbone=backbone, labels=labels, batch_size=args.batch_size, warmup=args.warmup, steps=args.steps)
    runs: dict[str, list[float]] = {"bare": [], "trainer": []}
    for _ in range(args.repeats):  # alternate, so a slow spell of the machine hits both
        runs["bare"].append(bare_samples_per_s(dataset=train, collator=dynamic, **common))
        runs["trainer"].append(trainer_samples_per_s(dataset=train, collator=dynamic, **common))
    bare, trainer = statistics.median(runs["bare"]), statistics.median(runs["trainer"])
    padded = trainer_samples_per_s(dataset=train, collator=PadToMax(tokenizer), **common)
    grouped = trainer_samples_per_s(dataset=train, collator=dynamic, group_by_length=True, **common)
    results = {
        "backbone": args.backbone, "batch_size": args.batch_size, "timed_steps": args.steps,
        "repeats": args.repeats, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": platform.machine(),
        "bare_samples_per_s": round(bare, 2),
        "trainer_samples_per_s": round(trainer, 2),
        "bare_runs": [round(r, 2) for r in runs["bare"]],
        "trainer_runs": [round(r, 2) for r in runs["trainer"]],
        "trainer_over_bare": round(trainer / bare, 3),
        "trainer_over_bare_runs": [round(t / b, 3) for t, b in zip(runs["trainer"], runs["bare"])],
        "trainer_pad_to_max_length_samples_per_s": round(padded, 2),
        "trainer_group_by_length_samples_per_s": round(grouped, 2),
        "dynamic_over_pad_to_max": round(trainer / padded, 3),
    }
    print(f"{'loop (same batches, same order)':<36}{'median samples/s':>17}{'min':>8}{'max':>8}")
    for name, key in (("bare PyTorch loop", "bare"), ("Trainer, dynamic padding", "trainer")):
        print(f"{name:<36}{results[key + '_samples_per_s']:>17.1f}{min(runs[key]):>8.1f}{max(runs[key]):>8.1f}")
    for name, key in (("Trainer, padded to max_length", "trainer_pad_to_max_length_samples_per_s"),
                      ("Trainer, group_by_length", "trainer_group_by_length_samples_per_s")):
        print(f"{name:<36}{results[key]:>17.1f}")
    print(f"trainer_over_bare {results['trainer_over_bare']} (per repeat: {results['trainer_over_bare_runs']})")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
