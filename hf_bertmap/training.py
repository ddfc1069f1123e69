"""Fine-tune a word mapper with `transformers.Trainer`, in phases: arguments -> data -> model -> train -> fit the
decoding step on validation -> evaluate -> save and card.

`train.py` and `bertmap train` call `main()`; see `train.py`'s docstring for the launch lines.
"""

import contextlib
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable

import datasets
import torch
import transformers
from huggingface_hub import HfApi, get_token
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    EarlyStoppingCallback,
    HfArgumentParser,
    TrainerCallback,
    set_seed,
)
from accelerate.utils import broadcast_object_list
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import get_last_checkpoint

from .arguments import LOGIT_SCALE_INIT, BertMapTrainingArguments, DataArguments, ModelArguments
from .backbones import hub_id, resolve_backbone
from .calibration import fit_memory_weight, fit_temperature
from .configuration_bertmap import BertMapConfig
from .data import (
    WordMappingCollator,
    check_vocab_targets,
    describe_splits,
    gold_ids,
    is_builtin,
    label_list_for,
    load_splits,
    preprocess_splits,
    read_label_file,
)
from .decoding_bertmap import DecodingConfig, WordMappingDecoder
from .inference import WordMapper
from .metrics import build_compute_metrics, calibration_error, gold_lists, top_k_logits
from .model_card import epoch_results, framework_versions, load_card_context, render_model_card, save_card_context
from .modeling_bertmap import BertForWordMapping
from .output_folder import OutputFolder, write_error
from .plots import save_pictures
from .trainer import BertMapTrainer, check_checkpoint, last_complete_checkpoint

logger = logging.getLogger(__name__)

EXAMPLE_PHRASES = ["fishy", "valuable", "large", "very chonky"]
TOP_K = 5
DEFAULT_MEMORY_WEIGHT = 0.3  # without a validation split to choose it on
# The decoding step is fitted on at most this many (validation phrase, output word) logits: 134 MB of float32 per
# copy, all of a few thousand phrases over a few hundred words, the first 433 phrases over 77,503 words.
MAX_FIT_LOGITS = 2**25


def main(argv: list[str] | None = None, callbacks: list[TrainerCallback] | None = None) -> dict[str, float]:
    """Train, fit the decoding step, evaluate and save; returns every metric (also in `all_results.json`)."""
    # 1. Arguments, logging, seed; Hub and output-folder checks before any work; one run at a time per folder.
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
    output = output_folder(model_args, training_args)
    resume_from_checkpoint = resolve_resume(training_args) if training_args.do_train else None
    locked = output is not None and training_args.process_index == 0
    with output.lock() if locked else contextlib.nullcontext():
        return run(model_args, data_args, training_args, output, resume_from_checkpoint, callbacks)


def run(model_args: ModelArguments, data_args: DataArguments, training_args: BertMapTrainingArguments,
        output: OutputFolder | None, resume_from_checkpoint: str | None,
        callbacks: list[TrainerCallback] | None) -> dict[str, float]:
    """Phases 2 to 7 of `main`, with the output folder checked and locked."""
    # 2. Data: every bad input is reported before a model is loaded or anything is written.
    splits = load_splits(data_args, cache_dir=model_args.cache_dir, seed=training_args.seed)
    if training_args.do_train and len(splits["train"]) == 0:
        raise ValueError("No training phrases (is --max_train_samples 0, or --train_file missing? "
                         "--do_train false only evaluates); nothing to train on")

    # 3. Model, tokenizer and decoding step: a new head on a backbone, or a bertmap checkpoint to train on.
    mapper = load_mapper(model_args, data_args, splits, training_args.do_train)
    num_layers = mapper.model.config.encoder_config.num_hidden_layers
    config = mapper.model.config
    frozen = model_args.frozen_layers(num_layers, config.head, config.num_labels) if training_args.do_train else 0
    if frozen:
        mapper.model.freeze_encoder_layers(frozen)
        logger.info(f"Training the top {num_layers - frozen} of the encoder's {num_layers} layers and the head")
    if training_args.do_train and model_args.large_head(config.head, config.num_labels)[1]:
        mapper.model.freeze_head()
        logger.info(f"The head's {config.num_labels} rows stay at the label names' embeddings")
    label_names = mapper.labels
    data_counts = describe_splits(splits)
    logger.info(f"Data: {data_counts}; {len(label_names)} output words")
    with training_args.main_process_first(desc="dataset preprocessing"):
        tokenized = preprocess_splits(splits, label_names, mapper.tokenizer, data_args, training_args.seed,
                                      cache_root=model_args.cache_dir or datasets.config.HF_DATASETS_CACHE)
    data_counts["train (augmented)"] = describe_splits({"train": tokenized["train"]})["train"]

    # 4. Train, choosing the checkpoint on validation accuracy of the plain classifier.
    main_process = training_args.process_index == 0
    split_metrics: dict[str, dict[str, float]] = {}
    trainer = None
    if training_args.do_train:
        trainer = BertMapTrainer(
            model=mapper.model,
            args=training_args,
            train_dataset=tokenized["train"],
            eval_dataset=tokenized["validation"],
            processing_class=mapper.tokenizer,
            data_collator=WordMappingCollator(mapper.tokenizer),
            compute_metrics=build_compute_metrics(k=TOP_K),
            preprocess_logits_for_metrics=top_k_logits(TOP_K),
            callbacks=list(callbacks or []) + ([EarlyStoppingCallback(training_args.early_stopping_patience)]
                                               if training_args.early_stopping_patience else []),
        )
        if training_args.push_to_hub and training_args.hub_revision and main_process:
            HfApi().create_branch(trainer.hub_model_id, branch=training_args.hub_revision, exist_ok=True,
                                  token=training_args.hub_token)
        train_result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
        split_metrics["train"] = dict(train_result.metrics, train_samples=len(tokenized["train"]))
        log_metrics("train", split_metrics["train"], main_process)
        mapper = WordMapper(trainer.model, mapper.tokenizer, source_folder=mapper.source_folder)

    # 5. Fit the decoding step on validation: temperature, memory of training phrases and its weight.
    if training_args.do_train:
        split_metrics["decoding"] = fit_decoding(mapper, splits, model_args)
        logger.info(f"Decoding fitted on validation: {split_metrics['decoding']}")

    # 6. Evaluate through the decoding step, as users get the words.
    test_predictions: tuple[list[float], list[bool]] = ([], [])
    for split, prefix, enabled in (("validation", "eval", training_args.do_eval),
                                   ("test", "test", training_args.do_predict)):
        if enabled and len(splits[split]) > 0:
            phrases, targets = list(splits[split]["phrase"]), list(splits[split]["targets"])
            golds = gold_lists(targets, mapper.model.config.label2id)
            ranked = mapper.rank(phrases, k=TOP_K, golds=golds)
            metrics = mapper.evaluate(phrases, targets, k=TOP_K, ranked=ranked)
            split_metrics[prefix] = {f"{prefix}_{key}": value for key, value in metrics.items()}
            split_metrics[prefix][f"{prefix}_samples"] = len(splits[split])
            log_metrics(prefix, split_metrics[prefix], main_process)
            if prefix == "test":
                hits = [ids[0] in gold for ids, gold in zip(ranked.ids, golds)]
                test_predictions = ([row[0] for row in ranked.scores], hits)
    results = {key: value for metrics in split_metrics.values() for key, value in metrics.items()}

    # 7. Save (atomically), write the card, show the task's examples, push.
    def write_card(folder: str) -> None:
        if "test_accuracy" in results:
            pictures = save_pictures(folder, trainer.state.log_history, *test_predictions)
            write_model_card(folder, mapper, results, split_metrics.get("decoding", {}), data_counts, splits,
                             model_args, data_args, training_args, trainer.state.log_history, pictures)

    if trainer is not None:
        save_final_model(trainer, mapper, output, split_metrics, write_card)
        trainer.card_writer = lambda: write_card(training_args.output_dir)
    elif output is not None and main_process:
        output.save(lambda folder: write_results(folder, split_metrics))
    if main_process:
        show_examples(mapper)
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="Train word mapper with hf_bertmap", revision=training_args.hub_revision)
    return results


def load_mapper(model_args: ModelArguments, data_args: DataArguments, splits: datasets.DatasetDict,
                do_train: bool) -> WordMapper:
    """The model to train or evaluate, its tokenizer and decoding step: a bertmap checkpoint as saved (its memory
    dropped when training moves its encoder), or a new head over the training targets on a backbone encoder."""
    path = resolve_backbone(model_args.model_name_or_path)
    hub_kwargs = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision, "token": model_args.token}
    tokenizer = AutoTokenizer.from_pretrained(
        resolve_backbone(model_args.tokenizer_name) if model_args.tokenizer_name else path,
        trust_remote_code=model_args.trust_remote_code, **hub_kwargs)
    config = AutoConfig.from_pretrained(path, trust_remote_code=model_args.trust_remote_code, **hub_kwargs)
    if config.model_type == BertMapConfig.model_type:
        if data_args.label_file is not None:
            raise ValueError(f"--label_file gives a new head its output words; {model_args.model_name_or_path} is a "
                             "bertmap model with its own (add words to it with WordMapper.add_labels)")
        model = BertForWordMapping.from_pretrained(path, **hub_kwargs)
        if do_train:  # stale once training moves the encoder; fitted anew after training
            model.decoder.memory = None
        if model.config.head == "vocab":
            check_vocab_targets(splits, tokenizer)
        return WordMapper(model, tokenizer, source_folder=path if os.path.isdir(path) else None)

    if not do_train:
        raise ValueError(f"--do_train false evaluates a trained model: {model_args.model_name_or_path} is not a "
                         "bertmap model (its config's model_type is not 'bertmap')")
    if model_args.head == "vocab":
        check_vocab_targets(splits, tokenizer)
    if data_args.label_file is not None and model_args.head != "labels":
        raise ValueError("--label_file lists output words of --head labels; --head vocab outputs the vocabulary")
    extra = read_label_file(data_args.label_file, data_args.lowercase) if data_args.label_file else ()
    label_names = label_list_for(model_args.head, splits["train"], tokenizer, extra)
    model = build_model(model_args, label_names, path, hub_kwargs)
    model.decoder = WordMappingDecoder(DecodingConfig(min_score=model_args.min_score,
                                                      max_length=data_args.max_seq_length,
                                                      lowercase=data_args.lowercase))
    mapper = WordMapper(model, tokenizer)
    if model_args.init_head_from_label_names:
        mapper.model.initialize_head(mapper.embed(label_names, normalized=True))
    return mapper


def build_model(model_args: ModelArguments, label_names: list[str], path: str, hub_kwargs: dict) -> BertForWordMapping:
    """A fresh word mapper on the pretrained encoder at `path`, with `label_names` as its output words."""
    encoder = AutoModel.from_pretrained(path, trust_remote_code=model_args.trust_remote_code, **hub_kwargs)
    cosine_head = model_args.large_head(model_args.head, len(label_names))[0]
    config = BertMapConfig(
        encoder_config=encoder.config.to_dict(),
        pooling=model_args.pooling,
        head=model_args.head,
        logit_scale_init_value=LOGIT_SCALE_INIT if cosine_head else None,
        classifier_dropout=model_args.classifier_dropout,
        label_smoothing=model_args.label_smoothing,
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


def fit_decoding(mapper: WordMapper, splits: datasets.DatasetDict, model_args: ModelArguments) -> dict[str, float]:
    """Store the training phrases in the memory, then, from one pass over the validation phrases (as many as
    `MAX_FIT_LOGITS` allows), choose the memory weight and fit the temperature of the decoded (mixed)
    probabilities. Returns what was fitted and measured: the validation ECE before calibration is that of the
    plain classifier at temperature 1."""
    decoder, results = mapper.decoder, {}
    label2id = mapper.model.config.label2id
    if model_args.memory and mapper.model.config.head == "labels":
        rows = [(phrase, [w for w in words if w in label2id])
                for phrase, words in zip(splits["train"]["phrase"], splits["train"]["targets"])]
        rows = [(phrase, words) for phrase, words in rows if words]
        mapper.memorize([p for p, _ in rows], [w for _, w in rows], weight=DEFAULT_MEMORY_WEIGHT, replace=True)
        results.update(memory_size=len(rows), memory_weight=DEFAULT_MEMORY_WEIGHT)
    validation = splits["validation"]
    validation = validation.select(range(min(len(validation), max(1, MAX_FIT_LOGITS // len(label2id)))))
    if len(validation) == 0 or not (model_args.calibrate or decoder.memory is not None):
        return results
    texts, logits, pooled = [], [], []
    for batch_texts, batch_logits, batch_pooled in mapper.forward(list(validation["phrase"])):
        texts += batch_texts
        logits.append(batch_logits.cpu())
        pooled.append(batch_pooled.cpu())
    logits, pooled = torch.cat(logits), torch.cat(pooled)
    golds = gold_ids(list(validation["targets"]), label2id)
    if not (golds >= 0).any():
        return results
    before = logits.softmax(dim=-1)
    if decoder.memory is not None:
        weight, temperature, scores = fit_memory_weight(decoder, logits, pooled, texts, golds, k=TOP_K,
                                                        calibrate=model_args.calibrate)
        decoder.config.memory_weight, decoder.config.temperature = weight, temperature
        results.update(memory_weight=weight, eval_accuracy_without_memory=scores[0.0][0],
                       eval_accuracy_with_memory=scores[weight][0])
    elif model_args.calibrate:
        decoder.config.temperature = fit_temperature(logits, golds)
    else:
        return results
    if model_args.calibrate:
        after = decoder.probabilities(logits, pooled, texts)
        results.update(temperature=decoder.config.temperature,
                       eval_ece_before_calibration=calibration_error(before.clamp(min=1e-12).log(), golds),
                       eval_ece_after_calibration=calibration_error(after.clamp(min=1e-12).log(), golds))
    return results


def show_examples(mapper: WordMapper) -> None:
    """Print the task's own examples with the model's top words, as a person would try it."""
    min_score = mapper.decoder.config.min_score
    for phrase, top in zip(EXAMPLE_PHRASES, mapper.predict(EXAMPLE_PHRASES, top_k=3, min_score=0.0)):
        unsure = f" (below min_score {min_score}: predict() gives no word)" if top[0][1] < min_score else ""
        print(f"{phrase:>12} -> " + ", ".join(f"{word} ({p:.2f})" for word, p in top) + unsure)


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


def output_folder(model_args: ModelArguments, training_args: BertMapTrainingArguments) -> OutputFolder | None:
    """The checked output folder (`output_folder.py`'s policy), its resolved path set as `--output_dir`; None for
    an evaluation without `--output_dir`, which writes nothing. An evaluation never writes into the model folder
    it reads."""
    if training_args.output_dir is None:
        return None
    output = OutputFolder.prepare(training_args.output_dir, training_args.overwrite_output_dir)
    model = model_args.model_name_or_path
    if not training_args.do_train and os.path.isdir(model) and os.path.realpath(model) == output.path:
        raise ValueError(f"--output_dir {training_args.output_dir} is the model folder being evaluated, whose results "
                         "stay as they are; choose another folder for this evaluation's results")
    training_args.output_dir = output.path
    return output


def resolve_resume(training_args: BertMapTrainingArguments) -> str | None:
    """`--resume_from_checkpoint last` (or `true`) -> the newest complete `checkpoint-*` in the output folder; any
    checkpoint is checked (`check_checkpoint`) before a model is loaded."""
    value = training_args.resume_from_checkpoint
    if value is None:
        return None
    if value.lower() in ("last", "true"):
        output_dir = training_args.output_dir
        has_any = os.path.isdir(output_dir) and get_last_checkpoint(output_dir) is not None
        if not has_any:
            raise ValueError(f"--resume_from_checkpoint {value}: no checkpoint-* folder in {output_dir}")
        last = last_complete_checkpoint(output_dir)
        if last is None:
            raise ValueError(f"--resume_from_checkpoint {value}: no complete checkpoint-* folder in {output_dir} "
                             "(each one's problem is logged above)")
        return last
    check_checkpoint(value)
    return value


def save_final_model(trainer: BertMapTrainer, mapper: WordMapper, output: OutputFolder,
                     split_metrics: dict[str, dict[str, float]], write_card: Callable[[str], None]) -> None:
    """Write the final model, tokenizer, decoding step, pipeline code, trainer state, results and card into a new
    staging folder beside the output folder, then put them in place (`OutputFolder.commit`): the output folder
    holds the whole previous model until the whole new one replaces it. If writing fails, the output folder is
    unchanged and the staging folder, named in the error, keeps what was written."""
    main_process = trainer.is_world_process_zero()
    staging = broadcast_object_list([output.begin() if main_process else None])[0]
    try:
        trainer.save_model(staging)  # every rank takes part (sharded models are gathered); the main process writes
        if main_process:
            mapper.save_pretrained(staging)
            state = dataclasses.replace(trainer.state, best_model_checkpoint=portable_checkpoint(
                trainer.state.best_model_checkpoint, output.path))
            state.save_to_json(os.path.join(staging, TRAINER_STATE_NAME))
            write_results(staging, split_metrics)
            write_card(staging)
    except Exception as err:
        error = write_error(err, staging)
        if error is not None:
            raise OSError(f"{error}; {output.path} is unchanged") from err
        raise
    if main_process:
        output.commit(staging)
    trainer.accelerator.wait_for_everyone()
    trainer.final_model_saved = True


def portable_checkpoint(path: str | None, output_dir: str) -> str | None:
    """A checkpoint's path as saved in the final `trainer_state.json`: relative to the output folder."""
    return os.path.relpath(path, output_dir) if path and os.path.isabs(path) else path


def write_results(folder: str, split_metrics: dict[str, dict[str, float]]) -> None:
    """`PREFIX_results.json` per split and `all_results.json`, as `Trainer.save_metrics` names them."""
    for prefix, metrics in split_metrics.items():
        write_json(os.path.join(folder, f"{prefix}_results.json"), metrics)
    write_json(os.path.join(folder, "all_results.json"),
               {k: v for metrics in split_metrics.values() for k, v in metrics.items()})


def write_json(path: str, payload: dict) -> None:
    with open(path, "w") as f:
        json.dump(payload, f, indent=4, sort_keys=True)


def log_metrics(split: str, metrics: dict[str, float], main_process: bool) -> None:
    """Print a split's metrics the way `Trainer.log_metrics` does, from the main process."""
    if main_process:
        print(f"***** {split} metrics *****")
        for key in sorted(metrics):
            value = metrics[key]
            print(f"  {key} = {value:.4f}" if isinstance(value, float) else f"  {key} = {value}")


def write_model_card(folder: str, mapper: WordMapper, results: dict[str, float], decoding_results: dict[str, float],
                     data_counts: dict, splits: datasets.DatasetDict, model_args: ModelArguments,
                     data_args: DataArguments, training_args: BertMapTrainingArguments, log_history: list[dict],
                     pictures: list[str]) -> None:
    """Write `README.md` (rendered from `hub_card.md`) and its inputs into `folder`."""
    config = mapper.model.config
    name = model_args.model_name_or_path
    base_model = base_model_of(name)
    hyperparameters = {
        "backbone": base_model or os.path.basename(os.path.normpath(name)),  # a Hub id, never a local path "pooling": config.pooling, "head": config.head,
        "learning_rate": training_args.learning_rate,
        "head_learning_rate": training_args.head_learning_rate or training_args.learning_rate,
        "epochs": training_args.num_train_epochs,
        "train_batch_size": training_args.per_device_train_batch_size * max(1, training_args.world_size),
        "frozen encoder layers": model_args.frozen_layers(config.encoder_config.num_hidden_layers, config.head,
                                                          config.num_labels),
        "cosine head": config.logit_scale_init_value is not None,
        "head rows fixed": model_args.large_head(config.head, config.num_labels)[1],
        "label_smoothing": config.label_smoothing, "modifier copies": data_args.augment_copies,
        "misspelt copies": data_args.misspellings, "comparatives": data_args.comparatives,
        "head initialised from label names": model_args.init_head_from_label_names,
        "max_seq_length": data_args.max_seq_length, "seed": training_args.seed,
    }
    context = {
        "results": {k: v for k, v in results.items() if k.startswith("test_")},
        "decoding_results": decoding_results,
        "data_counts": data_counts,
        "hyperparameters": hyperparameters,
        "base_model": base_model,
        "license": model_args.license,
        "language": model_args.language,
        "training_results": epoch_results(log_history),
        "framework_versions": framework_versions(),
        "pictures": pictures,
    }
    if is_builtin(data_args):
        context["widget"] = EXAMPLE_PHRASES
    else:
        source = data_args.dataset_name or data_args.train_file
        examples = splits["test"] if len(splits["test"]) else splits["validation"]
        context.update(dataset_name=data_args.dataset_name,
                       dataset_description=f"User data: `{os.path.basename(source)}`.",
                       data_license="", limitations=[], widget=list(examples["phrase"][:3]))
    save_card_context(folder, **context)
    repo_id = training_args.hub_model_id or os.path.basename(os.path.abspath(training_args.output_dir))
    render_model_card(config, mapper.decoder.config, repo_id=repo_id, **context).save(os.path.join(folder, "README.md"))


def base_model_of(name: str) -> str | None:
    """The Hub id a card's `base_model` may name: a packaged backbone's Hub id, a Hub id as given, a bertmap
    checkpoint's own base model; None for a local folder with none."""
    context = load_card_context(name) if os.path.isdir(name) else None
    if context is not None:
        return context.get("base_model")
    return hub_id(name)


__all__ = ["main", "parse_args", "build_model", "fit_decoding"]
