"""Fine-tune a word mapper with `transformers.Trainer`: parse -> data -> model -> train -> evaluate -> save -> card.

`train.py` and `bertmap train` call `main()`; see `train.py`'s docstring for the launch lines.
"""

import json
import logging
import os
import shutil
import sys
from collections.abc import Callable

import datasets
import torch
import transformers
from huggingface_hub import HfApi, get_token
from transformers import AutoConfig, AutoModel, AutoTokenizer, HfArgumentParser, Trainer, set_seed
from transformers.trainer_utils import get_last_checkpoint

from .arguments import BertMapTrainingArguments, DataArguments, ModelArguments
from .backbones import hub_id, resolve_backbone
from .calibration import fit_temperature
from .configuration_bertmap import BertMapConfig
from .data import (
    WordMappingCollator,
    check_vocab_targets,
    describe_splits,
    label_list_for,
    load_splits,
    preprocess_splits,
)
from .inference import WEIGHTS_FILE, WordMapper, check_safetensors_file
from .metrics import build_compute_metrics, calibration_error, load_metric, top_k_logits
from .model_card import render_model_card, save_card_context
from .modeling_bertmap import BertForWordMapping

logger = logging.getLogger(__name__)

EXAMPLE_PHRASES = ["fishy", "valuable", "large", "very chonky"]
TOP_K = 5
MEMORY_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)  # tried on validation
DEFAULT_MEMORY_WEIGHT = 0.3  # without a validation split


class BertMapTrainer(Trainer):
    """`Trainer` that gives the word-mapping head its own learning rate, pushes our model card (not the generic
    one) and does not re-save over the atomically written final model when pushing."""

    def __init__(self, *args, head_learning_rate: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.head_learning_rate = head_learning_rate
        self.card_writer: Callable[[], None] | None = None
        self.final_model_saved = False

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        # `push_to_hub` re-saves into the output folder; the final model is already there, written atomically.
        if _internal_call and output_dir is None and self.final_model_saved:
            return
        super().save_model(output_dir, _internal_call)

    def create_model_card(self, *args, **kwargs) -> None:
        # `push_to_hub` calls this before uploading: keep our card (rendered from hub_card.md with real results)
        # rather than the generic Trainer card.
        if self.card_writer is not None:
            self.card_writer()
        else:
            super().create_model_card(*args, **kwargs)

    def create_optimizer(self, model=None):
        opt_model = self.model if model is None else model
        if self.optimizer is None and self.head_learning_rate is not None:
            decay = set(self.get_decay_parameter_names(opt_model))
            groups: dict[tuple[bool, bool], list] = {}
            for name, param in opt_model.named_parameters():
                if param.requires_grad:
                    is_head = not name.startswith("encoder.")
                    groups.setdefault((is_head, name in decay), []).append(param)
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            self.optimizer = optimizer_cls(
                [
                    {"params": params, "weight_decay": self.args.weight_decay if decays else 0.0,
                     "lr": self.head_learning_rate if is_head else self.args.learning_rate}
                    for (is_head, decays), params in groups.items()
                ],
                **optimizer_kwargs,
            )
        return super().create_optimizer(model)


def parse_args(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, BertMapTrainingArguments]:
    """Parse the command line, or a single `.json`/`.yaml` file holding the same arguments."""
    parser = HfArgumentParser((ModelArguments, DataArguments, BertMapTrainingArguments))
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(yaml_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def setup_logging(training_args: BertMapTrainingArguments) -> None:
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    logging.getLogger("hf_bertmap").setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def build_model(model_args: ModelArguments, label_names: list[str], lowercase: bool) -> BertForWordMapping:
    """A fresh word mapper on a pretrained encoder, with `label_names` as its output words."""
    path = resolve_backbone(model_args.model_name_or_path)
    hub_kwargs = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision,
                  "token": model_args.token, "trust_remote_code": model_args.trust_remote_code}
    encoder = AutoModel.from_pretrained(path, **hub_kwargs)
    config = BertMapConfig(
        encoder_config=encoder.config.to_dict(),
        pooling=model_args.pooling,
        head=model_args.head,
        scoring=model_args.scoring,
        classifier_dropout=model_args.classifier_dropout,
        label_smoothing=model_args.label_smoothing,
        min_score=model_args.min_score,
        lowercase=lowercase,
        id2label=dict(enumerate(label_names)),
    )
    model = BertForWordMapping(config)
    missing, unexpected = model.encoder.load_state_dict(encoder.state_dict(), strict=False)
    if missing:
        raise RuntimeError(f"{path}: the encoder's weights lack {missing}")
    if unexpected:  # e.g. BERT's pooler when pooling != "pooler"
        logger.info(f"Encoder weights not used by pooling={config.pooling!r}: {unexpected}")
    model.tie_weights()
    return model


def is_bertmap_checkpoint(model_args: ModelArguments) -> bool:
    path = resolve_backbone(model_args.model_name_or_path)
    config = AutoConfig.from_pretrained(path, cache_dir=model_args.cache_dir, revision=model_args.model_revision,
                                        token=model_args.token, trust_remote_code=model_args.trust_remote_code)
    return config.model_type == BertMapConfig.model_type


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, training_args = parse_args(argv)
    setup_logging(training_args)
    logger.warning(
        f"Process rank: {training_args.process_index}, device: {training_args.device}, n_gpu: {training_args.n_gpu}, "
        f"distributed training: {training_args.parallel_mode.value == 'distributed'}, "
        f"16-bits training: {training_args.fp16 or training_args.bf16}"
    )
    logger.info(f"Training/evaluation parameters {training_args}")
    set_seed(training_args.seed)
    if training_args.push_to_hub and not (training_args.hub_token or get_token()):
        raise ValueError("--push_to_hub needs a Hub token: run `hf auth login`, set HF_TOKEN or pass --hub_token")
    resume_from_checkpoint = resolve_resume(training_args) if training_args.do_train else None

    # Data first: every bad input is reported before a model is loaded or anything is written.
    splits = load_splits(data_args, cache_dir=model_args.cache_dir, seed=training_args.seed)
    if training_args.do_train and len(splits["train"]) == 0:
        raise ValueError("No training phrases (is --max_train_samples 0?); nothing to train on")
    backbone = resolve_backbone(model_args.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(
        resolve_backbone(model_args.tokenizer_name) if model_args.tokenizer_name else backbone,
        cache_dir=model_args.cache_dir, revision=model_args.model_revision, token=model_args.token,
        trust_remote_code=model_args.trust_remote_code,
    )
    if is_bertmap_checkpoint(model_args):
        model = BertForWordMapping.from_pretrained(backbone, cache_dir=model_args.cache_dir,
                                                   revision=model_args.model_revision, token=model_args.token)
        label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if training_args.do_train and model.config.memory_size > 0:  # stale once training moves the encoder
            model.write_memory(torch.zeros(0, model.config.encoder_config.hidden_size), torch.zeros(0, 1))
        if model.config.head == "vocab":
            check_vocab_targets(splits, tokenizer)
    else:
        if model_args.head == "vocab":
            check_vocab_targets(splits, tokenizer)
        label_names = label_list_for(model_args.head, splits["train"], tokenizer)
        model = build_model(model_args, label_names, data_args.lowercase)
        if model_args.init_head_from_label_names:
            names = tokenizer(label_names, padding=True, truncation=True, max_length=data_args.max_seq_length,
                              return_tensors="pt")
            model.initialize_head_from_inputs(names["input_ids"], names["attention_mask"])
    if model_args.freeze_word_embeddings:
        model.encoder.get_input_embeddings().weight.requires_grad_(False)
    data_counts = describe_splits(splits)
    logger.info(f"Data: {data_counts}; {len(label_names)} output words")

    with training_args.main_process_first(desc="dataset preprocessing"):
        tokenized = preprocess_splits(splits, label_names, tokenizer, data_args, training_args.seed,
                                      cache_root=model_args.cache_dir or datasets.config.HF_DATASETS_CACHE)
    data_counts["train (with modifier copies)"] = describe_splits({"train": tokenized["train"]})["train"]

    trainer = BertMapTrainer(
        model=model,
        head_learning_rate=model_args.head_learning_rate,
        args=training_args,
        train_dataset=tokenized["train"] if training_args.do_train else None,
        eval_dataset=tokenized["validation"] if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=WordMappingCollator(tokenizer),
        compute_metrics=build_compute_metrics(k=TOP_K),
        preprocess_logits_for_metrics=top_k_logits(TOP_K),
    )

    if training_args.push_to_hub and training_args.hub_revision and trainer.is_world_process_zero():
        HfApi().create_branch(trainer.hub_model_id, branch=training_args.hub_revision, exist_ok=True,
                              token=training_args.hub_token)

    split_metrics: dict[str, dict[str, float]] = {}
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
        split_metrics["train"] = dict(train_result.metrics, train_samples=len(tokenized["train"]))
        trainer.log_metrics("train", split_metrics["train"])
        trainer.save_state()
    if training_args.do_train and model_args.calibrate and len(tokenized["validation"]) > 0:
        split_metrics["calibration"] = calibrate(trainer, tokenized["validation"])
        logger.info(f"Temperature scaling on validation: {split_metrics['calibration']}")
    if training_args.do_train and model_args.memory and trainer.model.config.head == "labels":
        mapper = WordMapper(trainer.model, tokenizer, max_length=data_args.max_seq_length)
        split_metrics["memory"] = build_memory(mapper, splits)
        logger.info(f"Memory of training phrases: {split_metrics['memory']}")
    for split, prefix, enabled in (("validation", "eval", training_args.do_eval),
                                   ("test", "test", training_args.do_predict)):
        if not enabled or len(tokenized[split]) == 0:
            continue
        metrics = trainer.evaluate(eval_dataset=tokenized[split], metric_key_prefix=prefix)
        split_metrics[prefix] = dict(metrics, **{f"{prefix}_samples": len(tokenized[split])})
        trainer.log_metrics(prefix, split_metrics[prefix])
    results = {key: value for metrics in split_metrics.values() for key, value in metrics.items()}

    def write_card(folder: str) -> None:
        if "test_accuracy" in results:
            write_model_card(folder, trainer.model.config, results, data_counts, model_args, data_args, training_args)

    if training_args.do_train:
        save_final_model(trainer, WordMapper(trainer.model, tokenizer, max_length=data_args.max_seq_length),
                         split_metrics, write_card)
        trainer.card_writer = lambda: write_card(training_args.output_dir)
    else:
        for prefix, metrics in split_metrics.items():
            trainer.save_metrics(prefix, metrics)
    if trainer.is_world_process_zero():
        mapper = WordMapper(trainer.model, tokenizer, max_length=data_args.max_seq_length)
        min_score = mapper.model.config.min_score
        for phrase, top in zip(EXAMPLE_PHRASES, mapper.predict(EXAMPLE_PHRASES, top_k=3, min_score=0.0)):
            unsure = f" (below min_score {min_score}: predict() gives no word)" if top[0][1] < min_score else ""
            print(f"{phrase:>12} -> " + ", ".join(f"{word} ({p:.2f})" for word, p in top) + unsure)
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="Train word mapper with hf_bertmap", revision=training_args.hub_revision)
    return results


def calibrate(trainer: Trainer, dataset: datasets.Dataset) -> dict[str, float]:
    """Fit temperature scaling on `dataset`'s logits and store it in the model's config; the validation ECE before
    and after."""
    preprocess, compute = trainer.preprocess_logits_for_metrics, trainer.compute_metrics
    trainer.preprocess_logits_for_metrics = trainer.compute_metrics = None  # full logits, no metrics
    try:
        output = trainer.predict(dataset, metric_key_prefix="calibration")
    finally:
        trainer.preprocess_logits_for_metrics, trainer.compute_metrics = preprocess, compute
    logits, labels = torch.as_tensor(output.predictions).float(), torch.as_tensor(output.label_ids)
    fitted = fit_temperature(logits, labels)  # the logits are already divided by the current temperature
    config = trainer.model.config
    config.temperature = config.temperature * fitted
    return {"temperature": config.temperature,
            "eval_ece_before_calibration": calibration_error(logits, labels),
            "eval_ece_after_calibration": calibration_error(logits / fitted, labels)}


def build_memory(mapper: WordMapper, splits: datasets.DatasetDict) -> dict[str, float]:
    """Store the training phrases in the model's memory; choose its weight by validation accuracy@1 (then @5)."""
    known = mapper.model.config.label2id
    rows = [(phrase, [w for w in words if w in known]) for phrase, words in
            zip(splits["train"]["phrase"], splits["train"]["targets"])]
    rows = [(phrase, words) for phrase, words in rows if words]
    mapper.memorize([phrase for phrase, _ in rows], [words for _, words in rows], weight=DEFAULT_MEMORY_WEIGHT,
                    replace=True)
    validation = splits["validation"]
    if len(validation) == 0:
        return {"memory_size": len(rows), "memory_weight": DEFAULT_MEMORY_WEIGHT}
    metric = load_metric()
    references = [[known[w] for w in words if w in known] for words in validation["targets"]]
    scores = {}
    for weight in MEMORY_WEIGHTS:
        mapper.model.config.memory_weight = weight
        probabilities = mapper.predict_proba(list(validation["phrase"]))
        top = probabilities.topk(min(TOP_K, probabilities.shape[-1]), dim=-1).indices.tolist()
        result = metric.compute(predictions=top, references=references, k=TOP_K)
        scores[weight] = (result["accuracy"], result["accuracy_at_k"])
    best = max(MEMORY_WEIGHTS, key=lambda weight: (scores[weight], -weight))
    mapper.model.config.memory_weight = best
    return {"memory_size": len(rows), "memory_weight": best, "eval_accuracy_without_memory": scores[0.0][0],
            "eval_accuracy_with_memory": scores[best][0]}


def resolve_resume(training_args: BertMapTrainingArguments) -> str | None:
    """`--resume_from_checkpoint last` (or `true`) -> the newest `checkpoint-*` in the output folder, checked."""
    value = training_args.resume_from_checkpoint
    if value is None:
        return None
    if value.lower() in ("last", "true"):
        last = get_last_checkpoint(training_args.output_dir) if os.path.isdir(training_args.output_dir) else None
        if last is None:
            raise ValueError(f"--resume_from_checkpoint {value}: no checkpoint-* folder in {training_args.output_dir}")
        value = last
    if not os.path.isdir(value):
        raise ValueError(f"--resume_from_checkpoint: no such folder: {value}")
    weights = os.path.join(value, WEIGHTS_FILE)
    if os.path.isfile(weights):
        check_safetensors_file(weights)
    return value


def save_final_model(trainer: Trainer, mapper: WordMapper, split_metrics: dict[str, dict[str, float]],
                     write_card: Callable[[str], None]) -> None:
    """Write the final model, tokenizer, pipeline code, results and card, then swap them into the output folder.

    Everything is written to `OUTPUT.saving/` first; the output folder's other entries (checkpoints, trainer
    state) move in beside them, and two renames put the complete folder in place. Until then the previous model
    in the output folder stays loadable; a crash between the renames leaves it in `OUTPUT.previous/` and the new
    one in `OUTPUT.saving/`.
    """
    output_dir = os.path.normpath(trainer.args.output_dir)
    staging, previous = f"{output_dir}.saving", f"{output_dir}.previous"
    if trainer.is_world_process_zero() and os.path.isdir(staging):
        shutil.rmtree(staging)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(staging)  # every rank takes part (sharded models are gathered); the main process writes
    if trainer.is_world_process_zero():
        mapper.save_pretrained(staging)
        for prefix, metrics in split_metrics.items():
            write_json(os.path.join(staging, f"{prefix}_results.json"), metrics)
        write_json(os.path.join(staging, "all_results.json"),
                   {k: v for metrics in split_metrics.values() for k, v in metrics.items()})
        write_card(staging)
        os.makedirs(output_dir, exist_ok=True)
        for name in os.listdir(output_dir):
            if not os.path.exists(os.path.join(staging, name)):
                os.rename(os.path.join(output_dir, name), os.path.join(staging, name))
        if os.path.isdir(previous):
            shutil.rmtree(previous)
        os.rename(output_dir, previous)
        os.rename(staging, output_dir)
        shutil.rmtree(previous)
    trainer.accelerator.wait_for_everyone()
    trainer.final_model_saved = True


def write_json(path: str, payload: dict) -> None:
    with open(path, "w") as f:
        json.dump(payload, f, indent=4, sort_keys=True)


def write_model_card(folder, config, results, data_counts, model_args, data_args, training_args) -> None:
    """Write `README.md` (rendered from `hub_card.md`) and its inputs into `folder`."""
    builtin = data_args.train_file is None and data_args.dataset_name is None
    name = model_args.model_name_or_path
    base_model = hub_id(name)
    hyperparameters = {
        "backbone": base_model or name, "pooling": config.pooling, "head": config.head,
        "learning_rate": training_args.learning_rate,
        "head_learning_rate": model_args.head_learning_rate or training_args.learning_rate,
        "epochs": training_args.num_train_epochs,
        "train_batch_size": training_args.per_device_train_batch_size * max(1, training_args.world_size),
        "label_smoothing": config.label_smoothing, "modifier copies": data_args.augment_copies,
        "scoring": config.scoring, "head initialised from label names": model_args.init_head_from_label_names,
        "frozen word embeddings": model_args.freeze_word_embeddings,
        "temperature (fitted on validation)": round(config.temperature, 4),
        "memory": f"{config.memory_size} training phrases, weight {config.memory_weight}",
        "max_seq_length": data_args.max_seq_length, "seed": training_args.seed,
    }
    context = {
        "results": {k: v for k, v in results.items() if k.startswith("test_")},
        "data_counts": data_counts,
        "hyperparameters": hyperparameters,
        "base_model": base_model,
    }
    if not builtin:
        context.update(dataset_name=data_args.dataset_name or os.path.basename(data_args.train_file),
                       dataset_description=f"User data: `{data_args.dataset_name or data_args.train_file}`.",
                       data_license="")
    save_card_context(folder, **context)
    repo_id = training_args.hub_model_id or os.path.basename(os.path.abspath(training_args.output_dir))
    render_model_card(config, repo_id=repo_id, **context).save(os.path.join(folder, "README.md"))


__all__ = ["main", "parse_args", "build_model"]
