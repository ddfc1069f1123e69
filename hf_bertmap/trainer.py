"""`BertMapTrainer`: `transformers.Trainer` with the word-mapping head's own learning rate, length-grouped batches
that a resumed run draws again, checkpoints that name themselves when they cannot be written, the final save into
the output folder and its push; the checks a checkpoint passes before a run resumes from it; the results files."""

import dataclasses
import json
import logging
import os
import re
import zipfile
from collections.abc import Callable

import torch
from accelerate.utils import broadcast_object_list
from huggingface_hub import HfApi
from transformers import Trainer, TrainerCallback
from transformers.trainer import OPTIMIZER_NAME, TRAINER_STATE_NAME
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from .endpoint_handler import write_endpoint_handler
from .model_folder import check_model_folder, check_safetensors_file
from .output_folder import ALL_RESULTS_FILE, OutputFolder, apply_umask, write_error

logger = logging.getLogger(__name__)

CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def check_checkpoint(folder: str) -> None:
    """Refuse a checkpoint a run cannot resume from exactly, naming the file: no trainer state (a checkpoint cut
    short), no optimizer state (resuming would restart AdamW from zero), or an unreadable weights, state or pickle
    file (truncated by a full disk or a kill)."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--resume_from_checkpoint: no such folder: {folder}")
    state = os.path.join(folder, TRAINER_STATE_NAME)
    if not os.path.isfile(state):
        raise FileNotFoundError(f"{state}: missing, so {folder} is incomplete (its save was cut short)")
    try:
        with open(state, encoding="utf-8") as f:
            json.load(f)
    except ValueError as err:
        raise OSError(f"{state}: corrupt or unreadable ({err})") from None
    check_model_folder(folder)
    if not any(name.startswith("optimizer") for name in os.listdir(folder)):
        raise FileNotFoundError(f"{os.path.join(folder, OPTIMIZER_NAME)}: missing, so resuming from {folder} would "
                                "start a fresh optimizer; resume from a checkpoint saved without --save_only_model")
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.endswith(".safetensors"):
            check_safetensors_file(path)
        elif name.endswith((".pt", ".pth", ".bin")):  # torch.save's zip archives
            try:
                with zipfile.ZipFile(path) as archive:
                    bad = archive.testzip()
            except (OSError, zipfile.BadZipFile) as err:
                raise OSError(f"{path}: corrupt or unreadable ({err})") from None
            if bad is not None:
                raise OSError(f"{path}: corrupt ({bad} fails its checksum)")


def checkpoint_to_resume(value: str | None, output_dir: str) -> str | None:
    """`--resume_from_checkpoint` resolved and checked before a model is loaded: `last` (or `true`) is the newest
    complete `checkpoint-*` in `output_dir`; any checkpoint must pass `check_checkpoint`."""
    if value is None:
        return None
    if value.lower() in ("last", "true"):
        if not os.path.isdir(output_dir) or get_last_checkpoint(output_dir) is None:
            raise ValueError(f"--resume_from_checkpoint {value}: no checkpoint-* folder in {output_dir}")
        last = last_complete_checkpoint(output_dir)
        if last is None:
            raise ValueError(f"--resume_from_checkpoint {value}: no complete checkpoint-* folder in {output_dir} "
                             "(each one's problem is logged above)")
        return last
    check_checkpoint(value)
    return value


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest `checkpoint-N` in `output_dir` that passes `check_checkpoint`; newer ones that do not are named
    in a warning and skipped."""
    steps = sorted(((int(m.group(1)), name) for name in os.listdir(output_dir)
                    if (m := CHECKPOINT.match(name)) and os.path.isdir(os.path.join(output_dir, name))), reverse=True)
    for _, name in steps:
        try:
            check_checkpoint(os.path.join(output_dir, name))
            return os.path.join(output_dir, name)
        except OSError as err:
            logger.warning(f"Skipping {name}: {err}")
    return None


class SeededLengthGroupedSampler(LengthGroupedSampler, TrainerCallback):
    """`LengthGroupedSampler` whose shuffle depends on the seed and the epoch only, not on the global random state
    (the state at a resume point is not the one at its epoch's start): a run resumed mid-epoch draws the batches of
    the run it continues, with any number of processes. As a callback it learns each epoch at the epoch's start,
    which `Trainer`'s own `set_epoch` does not reach in a resumed epoch's batch-skipping loader of several
    processes."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths, generator=torch.Generator())
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator.manual_seed(self.seed + epoch)

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.set_epoch(int(state.epoch + 1e-6))  # 1.6 when resuming at step 8 of 5-step epochs: epoch 1


class BertMapTrainer(Trainer):
    """`Trainer` whose optimizer gives every parameter outside the encoder (the head) `args.head_learning_rate`;
    whose checkpoints name their folder when they cannot be written and get the user's file permissions; which
    draws length-grouped batches seeded by epoch (`SeededLengthGroupedSampler`, so a resumed run draws them again),
    saves the final model atomically into the output folder (`save_final_model`) and pushes it
    (`push_output_folder`)."""

    def _save_checkpoint(self, model, trial) -> None:
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        try:
            super()._save_checkpoint(model, trial)
        except Exception as err:
            error = write_error(err, folder)
            if error is None:
                raise
            raise error from err
        if self.args.should_save and os.path.isdir(folder):
            apply_umask(folder)

    def save_final_model(self, output: OutputFolder, split_metrics: dict[str, dict[str, float]],
                         write_card: Callable[[str], None]) -> None:
        """Write the final model (weights, config, code, pipeline, decoding step), tokenizer, training arguments,
        trainer state, results and card into a new staging folder beside the output folder, then put them in place
        (`OutputFolder.commit`): the output folder holds the whole previous model until the whole new one replaces
        it. If writing fails, the output folder is unchanged and the staging folder, named in the error, keeps what
        was written."""
        main_process = self.is_world_process_zero()
        staging = broadcast_object_list([output.begin() if main_process else None])[0]
        try:
            self.save_model(staging)  # the one writer of the model; every rank takes part (sharded weights gather)
            if main_process:
                best = self.state.best_model_checkpoint  # saved relative to the output folder
                best = os.path.relpath(best, output.path) if best and os.path.isabs(best) else best
                dataclasses.replace(self.state, best_model_checkpoint=best).save_to_json(
                    os.path.join(staging, TRAINER_STATE_NAME))
                write_results(staging, split_metrics)
                write_card(staging)
                write_endpoint_handler(staging)
        except Exception as err:
            error = write_error(err, staging)
            if error is not None:
                raise OSError(f"{error}; {output.path} is unchanged") from err
            raise
        if main_process:
            output.commit(staging)
        self.accelerator.wait_for_everyone()

    def push_output_folder(self) -> None:
        """Upload the output folder (the final model, its card and results; not the checkpoints) to the Hub repo,
        once the checkpoint pushes still under way have finished, as `Trainer.push_to_hub` does."""
        if self.push_in_progress is not None:
            self.push_in_progress.wait_until_done()
        HfApi().upload_folder(repo_id=self.hub_model_id, folder_path=self.args.output_dir, token=self.args.hub_token,
                              commit_message="Train word mapper with hf_bertmap", revision=self.args.hub_revision,
                              ignore_patterns=["_*", f"{PREFIX_CHECKPOINT_DIR}-*"])

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is LengthGroupedSampler:
            seed = self.args.seed if self.args.data_seed is None else self.args.data_seed
            sampler = SeededLengthGroupedSampler(sampler.batch_size, sampler.lengths, seed)
            for old in [c for c in self.callback_handler.callbacks if isinstance(c, SeededLengthGroupedSampler)]:
                self.remove_callback(old)
            self.add_callback(sampler)
        return sampler

    def create_optimizer(self, model=None):
        opt_model = self.model if model is None else model
        head_learning_rate = getattr(self.args, "head_learning_rate", None)
        if self.optimizer is None and head_learning_rate is not None:
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
                     "lr": head_learning_rate if is_head else self.args.learning_rate}
                    for (is_head, decays), params in groups.items()
                ],
                **optimizer_kwargs,
            )
        return super().create_optimizer(model)


def write_results(folder: str, split_metrics: dict[str, dict[str, float]]) -> None:
    """`PREFIX_results.json` per split and `all_results.json`, as `Trainer.save_metrics` names them."""
    everything = {key: value for metrics in split_metrics.values() for key, value in metrics.items()}
    for name, payload in [*((f"{prefix}_results.json", m) for prefix, m in split_metrics.items()),
                          (ALL_RESULTS_FILE, everything)]:
        with open(os.path.join(folder, name), "w") as f:
            json.dump(payload, f, indent=4, sort_keys=True)


def log_metrics(split: str, metrics: dict[str, float], main_process: bool) -> None:
    """Print a split's metrics the way `Trainer.log_metrics` does, from the main process."""
    if main_process:
        print(f"***** {split} metrics *****")
        for key in sorted(metrics):
            value = metrics[key]
            print(f"  {key} = {value:.4f}" if isinstance(value, float) else f"  {key} = {value}")


__all__ = ["BertMapTrainer", "check_checkpoint", "checkpoint_to_resume", "last_complete_checkpoint", "log_metrics",
           "write_results"]
