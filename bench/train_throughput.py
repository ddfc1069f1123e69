"""Training throughput of `Trainer` + `BertForWordMapping` against a bare PyTorch loop, side by side in one run.

Same model init, optimizer (Trainer's AdamW implementation, encoder 1e-4 / head 3e-3), batch size, number of timed
steps and the *same batches in the same order*: the built-in WordNet training split (with its augmented copies) is
shuffled once with a fixed seed, and both loops read it sequentially, so padding (which depends on which phrases
share a batch) is identical. Each loop runs `--repeats` times, alternating with the Trainer under bfloat16
autocast (`--bf16 true`); the table shows the median and the spread. Also the effect of padding every batch to the
maximum length and of length-grouped batches against dynamic padding.

Model FLOP utilisation (MFU): the model FLOPs of the timed batches (bench/flops.py: counted from the model's shapes
and each batch's padded length, fixed layers forward only) per second, over the best matrix-multiply rate this
machine reaches in the same run (fp32 for the fp32 loops, bf16 for the bf16 one).

    python bench/train_throughput.py                 # the default recipe: all-mpnet-base-v2, lower 8 layers fixed
    python bench/train_throughput.py --backbone all-MiniLM-L6-v2
    python bench/train_throughput.py --smoke --backbone PATH_TO_TINY_BERT

Prints a table and one JSON line (field `trainer_over_bare`: the median Trainer rate over the median bare rate).
"""

import argparse
import json
import platform
import statistics
import time

import torch
from flops import matmul_peak_flops, word_mapper_flops
from torch.utils.data import DataLoader
from transformers import AutoConfig, AutoModel, AutoTokenizer, TrainerCallback, set_seed

from hf_bertmap.arguments import DEFAULT_BACKBONE, BertMapTrainingArguments, DataArguments, ModelArguments
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


def fresh_model(backbone: str, labels: list[str], frozen_layers: int):
    """The default recipe's model: its head over `labels`, the embeddings and first `frozen_layers` layers fixed."""
    set_seed(0)
    encoder = AutoModel.from_pretrained(backbone)
    model = build_model(ModelArguments(model_name_or_path=backbone), labels, encoder)
    if frozen_layers:
        model.freeze_encoder_layers(frozen_layers)
    return model


def default_frozen_layers(backbone: str, num_labels: int) -> int:
    args = ModelArguments(model_name_or_path=backbone)
    config = AutoConfig.from_pretrained(backbone)
    return args.head_plan(config.num_hidden_layers, args.head, num_labels).freeze_layers


def trainer_samples_per_s(backbone, labels, frozen_layers, dataset, collator, batch_size, warmup, steps,
                          group_by_length=False, bf16=False):
    timer = StepTimer(warmup)
    args = BertMapTrainingArguments(
        output_dir="/tmp/bertmap-bench", max_steps=warmup + steps, per_device_train_batch_size=batch_size,
        learning_rate=1e-4, head_learning_rate=3e-3, save_strategy="no", eval_strategy="no",
        load_best_model_at_end=False, logging_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True,
        dataloader_pin_memory=False, seed=0, bf16=bf16,
        train_sampling_strategy="group_by_length" if group_by_length else "sequential",
    )
    trainer = BertMapTrainer(model=fresh_model(backbone, labels, frozen_layers), args=args, train_dataset=dataset,
                             data_collator=collator, callbacks=[timer])
    trainer.train()
    return steps * batch_size / (timer.end - timer.start)


def bare_samples_per_s(backbone, labels, frozen_layers, dataset, collator, batch_size, warmup, steps):
    model = fresh_model(backbone, labels, frozen_layers).train()
    head = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    encoder = [p for n, p in model.named_parameters() if n.startswith("encoder.") and p.requires_grad]
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
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument("--freeze_layers", type=int, default=None,
                        help="encoder layers fixed (default: train.py's default for the backbone)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each loop (median and spread reported)")
    parser.add_argument("--smoke", action="store_true", help="a few steps, for the test suite")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.warmup, args.batch_size, args.repeats = 3, 1, 8, 2
    peaks = {"fp32": matmul_peak_flops(torch.float32, **({"sizes": (128,), "seconds": 0.05} if args.smoke else {})),
             "bf16": matmul_peak_flops(torch.bfloat16, **({"sizes": (128,), "seconds": 0.05} if args.smoke else {}))}

    backbone = resolve_backbone(args.backbone)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    data_args = DataArguments(max_train_samples=200 if args.smoke else None)
    splits = load_splits(data_args)
    labels = label_list_for("labels", splits["train"], tokenizer)
    frozen = default_frozen_layers(backbone, len(labels)) if args.freeze_layers is None else args.freeze_layers
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

    common = dict(backbone=backbone, labels=labels, frozen_layers=frozen, batch_size=args.batch_size,
                  warmup=args.warmup, steps=args.steps)
    runs: dict[str, list[float]] = {"bare": [], "trainer": [], "trainer_bf16": []}
    for _ in range(args.repeats):  # alternate, so a slow spell of the machine hits all three
        runs["bare"].append(bare_samples_per_s(dataset=train, collator=dynamic, **common))
        runs["trainer"].append(trainer_samples_per_s(dataset=train, collator=dynamic, **common))
        runs["trainer_bf16"].append(trainer_samples_per_s(dataset=train, collator=dynamic, bf16=True, **common))
    bare, trainer = statistics.median(runs["bare"]), statistics.median(runs["trainer"])
    trainer_bf16 = statistics.median(runs["trainer_bf16"])

    # The model FLOPs of the timed batches (the same ones in every sequential loop), per phrase.
    config = fresh_model(backbone, labels, frozen).config
    timed = range(args.warmup, args.warmup + args.steps)
    lengths = [len(dynamic([dict(f) for f in train.select(range(i * args.batch_size, (i + 1) * args.batch_size))])
                   ["input_ids"][0]) for i in timed]
    flops_per_phrase = sum(word_mapper_flops(config, args.batch_size, n, frozen_layers=frozen) for n in lengths) \
        / (args.steps * args.batch_size)

    def mfu(samples_per_s: float, peak: str) -> float:
        return round(samples_per_s * flops_per_phrase / peaks[peak], 4)

    padded = trainer_samples_per_s(dataset=train, collator=PadToMax(tokenizer), **common)
    grouped = trainer_samples_per_s(dataset=train, collator=dynamic, group_by_length=True, **common)
    results = {
        "backbone": args.backbone, "frozen_layers": frozen, "batch_size": args.batch_size, "timed_steps": args.steps,
        "repeats": args.repeats, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": platform.machine(),
        "bare_samples_per_s": round(bare, 2),
        "trainer_samples_per_s": round(trainer, 2),
        "bare_runs": [round(r, 2) for r in runs["bare"]],
        "trainer_runs": [round(r, 2) for r in runs["trainer"]],
        "trainer_bf16_samples_per_s": round(trainer_bf16, 2),
        "trainer_bf16_runs": [round(r, 2) for r in runs["trainer_bf16"]],
        "trainer_over_bare": round(trainer / bare, 3),
        "bf16_over_fp32": round(trainer_bf16 / trainer, 3),
        "mean_padded_length": round(sum(lengths) / len(lengths), 2),
        "model_gflops_per_phrase": round(flops_per_phrase / 1e9, 4),
        "matmul_peak_gflops": {name: round(peak / 1e9, 1) for name, peak in peaks.items()},
        "mfu": {"bare": mfu(bare, "fp32"), "trainer": mfu(trainer, "fp32"), "trainer_bf16": mfu(trainer_bf16, "bf16")},
        "trainer_over_bare_runs": [round(t / b, 3) for t, b in zip(runs["trainer"], runs["bare"])],
        "trainer_pad_to_max_length_samples_per_s": round(padded, 2),
        "trainer_group_by_length_samples_per_s": round(grouped, 2),
        "dynamic_over_pad_to_max": round(trainer / padded, 3),
    }
    print(f"{'loop (same batches, same order)':<36}{'median samples/s':>17}{'min':>8}{'max':>8}{'MFU':>8}")
    for name, key in (("bare PyTorch loop", "bare"), ("Trainer, dynamic padding", "trainer"),
                      ("Trainer, bf16 autocast", "trainer_bf16")):
        print(f"{name:<36}{results[key + '_samples_per_s']:>17.1f}{min(runs[key]):>8.1f}{max(runs[key]):>8.1f}"
              f"{results['mfu'][key]:>8.3f}")
    for name, key in (("Trainer, padded to max_length", "trainer_pad_to_max_length_samples_per_s"),
                      ("Trainer, group_by_length", "trainer_group_by_length_samples_per_s")):
        print(f"{name:<36}{results[key]:>17.1f}")
    print(f"trainer_over_bare {results['trainer_over_bare']} (per repeat: {results['trainer_over_bare_runs']}); "
          f"bf16 over fp32 {results['bf16_over_fp32']}")
    print(f"model FLOPs {results['model_gflops_per_phrase']} GFLOP per phrase (mean padded length "
          f"{results['mean_padded_length']}); matmul peak {results['matmul_peak_gflops']} GFLOP/s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
