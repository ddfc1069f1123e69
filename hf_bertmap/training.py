"""Fine-tune a word mapper with `transformers.Trainer`, in phases: arguments -> data -> model -> train -> fit the
decoding step on validation -> evaluate -> save and card.

`train.py` and `bertmap train` call `main()`; see `train.py`'s docstring for the launch lines.
"""

import contextlib
import logging
import os
import sys

import datasets
import transformers
from huggingface_hub import HfApi, get_token
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    EarlyStoppingCallback,
    HfArgumentParser,
    PreTrainedModel,
    TrainerCallback,
    set_seed,
)

from .arguments import BertMapTrainingArguments, DataArguments, HeadPlan, ModelArguments
from .backbones import resolve_backbone
from .calibration import fit_decoding
from .configuration_bertmap import BertMapConfig
from .data import (
    WordMappingCollator,
    check_described,
    check_max_seq_length,
    check_vocab_targets,
    describe_splits,
    label_list_for,
    load_splits,
    preprocess_splits,
)
from .decoding_bertmap import DecodingConfig, WordMappingDecoder
from .inference import WordMapper
from .metrics import build_compute_metrics, top_k_logits
from .model_card import EXAMPLE_PHRASES, BertMapCardData, ModelCardCallback
from .modeling_bertmap import BertForWordMapping
from .output_folder import OutputFolder
from .pair_files import read_label_descriptions, read_label_file
from .plots import save_pictures
from .trainer import BertMapTrainer, checkpoint_to_resume, log_metrics, write_results

logger = logging.getLogger(__name__)

TOP_K = 5


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
    output = OutputFolder.for_run(training_args, model_args.model_name_or_path)
    resume = checkpoint_to_resume(training_args.resume_from_checkpoint, training_args.output_dir) \
        if training_args.do_train else None
    locked = output is not None and training_args.process_index == 0
    with output.lock() if locked else contextlib.nullcontext():
        return run(model_args, data_args, training_args, output, resume, callbacks)


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
    mapper, plan = load_mapper(model_args, data_args, splits, training_args.do_train)
    config = mapper.model.config
    if training_args.do_train and plan.freeze_layers:
        num_layers = config.encoder_config.num_hidden_layers
        mapper.model.freeze_encoder_layers(plan.freeze_layers)
        logger.info(f"Training the top {num_layers - plan.freeze_layers} of the encoder's {num_layers} layers "
                    "and the head")
    if training_args.do_train and plan.freeze_head:
        mapper.model.classifier.freeze()
        logger.info(f"The head's {config.num_labels} rows stay at the label names' embeddings"
                    if config.head == "labels" else "Words are scored by their text alone (no learned rows)")
    label_names = mapper.words
    data_counts = describe_splits(splits)
    logger.info(f"Data: {data_counts}; {len(label_names)} output words")
    with training_args.main_process_first(desc="dataset preprocessing"):
        tokenized = preprocess_splits(splits, label_names, mapper.tokenizer, data_args, training_args.seed,
                                      cache_root=model_args.cache_dir or datasets.config.HF_DATASETS_CACHE)
    data_counts["train (augmented)"] = describe_splits({"train": tokenized["train"]})["train"]
    card_data = BertMapCardData.for_run(model_args, data_args, config, data_counts, splits, plan)

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
            callbacks=[ModelCardCallback(card_data), *(callbacks or [])]
            + ([EarlyStoppingCallback(training_args.early_stopping_patience)]
               if training_args.early_stopping_patience else []),
        )
        if training_args.push_to_hub and training_args.hub_revision and main_process:
            HfApi().create_branch(trainer.hub_model_id, branch=training_args.hub_revision, exist_ok=True,
                                  token=training_args.hub_token)
        train_result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
        split_metrics["train"] = dict(train_result.metrics, train_samples=len(tokenized["train"]))
        log_metrics("train", split_metrics["train"], main_process)
        # The model without the mixed-precision autocast `accelerate` wrapped its forward in: the decoding step is
        # fitted and the splits scored in the precision the saved model serves in.
        model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
        mapper = WordMapper(model, mapper.tokenizer, source_folder=mapper.source_folder, card_data=card_data)

    # 5. Fit the decoding step on validation: temperature, memory of training phrases and its weight.
    if training_args.do_train:
        split_metrics["decoding"] = fit_decoding(mapper, splits["train"], splits["validation"], k=TOP_K,
                                                 memory=model_args.memory, calibrate=model_args.calibrate)
        logger.info(f"Decoding fitted on validation: {split_metrics['decoding']}")

    # 6. Evaluate through the decoding step, as users get the words.
    test_predictions: tuple[list[float], list[bool]] = ([], [])
    for split, prefix, enabled in (("validation", "eval", training_args.do_eval),
                                   ("test", "test", training_args.do_predict),
                                   ("test_everyday", "test_everyday", training_args.do_predict)):
        if enabled and split in splits and len(splits[split]) > 0:
            phrases, targets = list(splits[split]["phrase"]), list(splits[split]["targets"])
            metrics, ranking, hits = mapper.evaluate(phrases, targets, k=TOP_K, return_ranking=True)
            split_metrics[prefix] = {f"{prefix}_{key}": value for key, value in metrics.items()}
            split_metrics[prefix][f"{prefix}_samples"] = len(splits[split])
            log_metrics(prefix, split_metrics[prefix], main_process)
            if prefix == "test":
                test_predictions = ([row[0] for row in ranking.scores], hits)
    results = {key: value for metrics in split_metrics.values() for key, value in metrics.items()}
    card_data.results = {key: value for key, value in results.items() if key.startswith("test_")}
    card_data.decoding_results = split_metrics.get("decoding", {})

    # 7. Save (atomically) with the card, show the task's examples, push.
    def write_card(folder: str) -> None:
        if "test_accuracy" in results:
            card_data.pictures = save_pictures(folder, trainer.state.log_history, *test_predictions)
            card_data.write(folder, config, mapper.decoding.config,
                            trainer.hub_model_id or os.path.basename(training_args.output_dir))

    if trainer is not None:
        trainer.save_final_model(output, split_metrics, write_card)
    elif output is not None and main_process:
        output.save(lambda folder: write_results(folder, split_metrics))
    if main_process:
        show_examples(mapper)
    if training_args.push_to_hub and main_process:
        trainer.push_output_folder()
    return results


def load_mapper(model_args: ModelArguments, data_args: DataArguments, splits: datasets.DatasetDict,
                do_train: bool) -> tuple[WordMapper, HeadPlan]:
    """The model to train or evaluate, its tokenizer and decoding step: a bertmap checkpoint as saved (its memory
    dropped when training moves its encoder), or a new head over the training targets on a backbone encoder or on
    the encoder of a bertmap checkpoint whose words do not cover them; and the head's settings
    (`ModelArguments.head_plan`), known once the output words are."""
    path = resolve_backbone(model_args.model_name_or_path)
    hub_kwargs = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision, "token": model_args.token}
    tokenizer = AutoTokenizer.from_pretrained(
        resolve_backbone(model_args.tokenizer_name) if model_args.tokenizer_name else path,
        trust_remote_code=model_args.trust_remote_code, **hub_kwargs)
    config = AutoConfig.from_pretrained(path, trust_remote_code=model_args.trust_remote_code, **hub_kwargs)
    check_max_seq_length(data_args.max_seq_length, getattr(config, "encoder_config", config), tokenizer)
    descriptions = (read_label_descriptions(data_args.label_descriptions, data_args.lowercase)
                    if data_args.label_descriptions else None)
    encoder, pooling = None, None
    if config.model_type == BertMapConfig.model_type:
        if data_args.label_file is not None:
            raise ValueError(f"--label_file gives a new head its output words; {model_args.model_name_or_path} is a "
                             "bertmap model with its own (add words to it with WordMapper.add_labels)")
        model = BertForWordMapping.from_pretrained(path, **hub_kwargs)
        unknown = sorted({w for words in splits["train"]["targets"] for w in words} - set(model.config.label2id))
        if not (do_train and unknown):
            plan = model_args.head_plan(model.config.encoder_config.num_hidden_layers, model.config.head,
                                        model.config.num_labels)
            if do_train:  # stale once training moves the encoder; fitted anew after training
                model.decoding.memory = None
            if model.config.head == "vocab":
                check_vocab_targets(splits, tokenizer)
            mapper = WordMapper(model, tokenizer, source_folder=path if os.path.isdir(path) else None)
            if descriptions is not None and model.config.head == "text":
                mapper.set_word_texts(descriptions)
            return mapper, plan
        logger.warning(f"{model_args.model_name_or_path} has {model.config.num_labels} output words, not the "
                       f"training targets {unknown[:5]}{' ...' if len(unknown) > 5 else ''}: a new head over the "
                       f"training targets on its encoder (pooling {model.config.pooling!r})")
        encoder, pooling = model.encoder, model.config.pooling
    elif not do_train:
        raise ValueError(f"--do_train false evaluates a trained model: {model_args.model_name_or_path} is not a "
                         "bertmap model (its config's model_type is not 'bertmap')")
    if model_args.head == "vocab":
        check_vocab_targets(splits, tokenizer)
    if data_args.label_file is not None and model_args.head == "vocab":
        raise ValueError("--label_file lists output words of --head labels or text; --head vocab outputs the "
                         "vocabulary")
    extra = read_label_file(data_args.label_file, data_args.lowercase) if data_args.label_file else ()
    label_names = label_list_for(model_args.head, splits["train"], tokenizer, extra)
    if encoder is None:
        encoder = AutoModel.from_pretrained(path, trust_remote_code=model_args.trust_remote_code, **hub_kwargs)
    plan = model_args.head_plan(encoder.config.num_hidden_layers, model_args.head, len(label_names))
    model = build_model(model_args, label_names, encoder, plan, pooling)
    model.decoding = WordMappingDecoder(DecodingConfig(min_score=model_args.min_score,
                                                      max_length=data_args.max_seq_length,
                                                      lowercase=data_args.lowercase))
    mapper = WordMapper(model, tokenizer)
    check_described(descriptions, label_names, data_args.label_descriptions)
    if model_args.head == "text":
        mapper.set_word_texts(descriptions)
    elif model_args.init_head_from_label_names:
        mapper.model.classifier.initialize_from(
            mapper.embed(mapper.word_texts(label_names, descriptions), normalized=True))
    return mapper, plan


def build_model(model_args: ModelArguments, label_names: list[str], encoder: PreTrainedModel,
                plan: HeadPlan | None = None, pooling: str | None = None) -> BertForWordMapping:
    """A fresh word mapper on the pretrained `encoder`'s weights, with `label_names` as its output words; the head's
    settings from `plan` (else the config's defaults), the pooling from `pooling` (else `--pooling`)."""
    config = BertMapConfig(
        encoder_config=encoder.config.to_dict(),
        pooling=pooling or model_args.pooling,
        head=model_args.head,
        head_scoring=plan.head_scoring if plan else model_args.head_scoring,
        label_refresh_steps=plan.label_refresh_steps if plan else model_args.label_refresh_steps,
        label_gradient_words=model_args.label_gradient_words,
        label_hard_negatives=model_args.label_hard_negatives,
        label_training_softmax=model_args.label_training_softmax,
        classifier_dropout=model_args.classifier_dropout,
        id2label=dict(enumerate(label_names)),
    )
    model = BertForWordMapping(config)
    missing, unexpected = model.encoder.load_state_dict(encoder.state_dict(), strict=False)
    if missing:
        raise RuntimeError(f"{encoder.name_or_path}: the encoder's weights lack {missing}")
    if unexpected:  # e.g. BERT's pooler when pooling != "pooler"
        logger.info(f"Encoder weights not used by pooling={config.pooling!r}: {unexpected}")
    model.tie_weights()
    return model


def show_examples(mapper: WordMapper) -> None:
    """Print the task's own examples with the model's top words, as a person would try it."""
    min_score = mapper.decoding.config.min_score
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


__all__ = ["main", "parse_args", "build_model"]
