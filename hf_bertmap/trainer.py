"""`BertMapTrainer`: `transformers.Trainer` with the word-mapping head's own learning rate, checkpoints that name
themselves when they cannot be written, and the model card rendered from `hub_card.md` (not Trainer's generic one)
when pushing; and the checks a checkpoint passes before a run resumes from it."""

import json
import logging
import os
import re
import zipfile
from collections.abc import Callable

from transformers import Trainer
from transformers.trainer import OPTIMIZER_NAME, TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .inference import check_model_folder, check_safetensors_file
from .output_folder import apply_umask, write_error

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


class BertMapTrainer(Trainer):
    """`Trainer` whose optimizer gives every parameter outside the encoder (the head) `args.head_learning_rate`;
    `push_to_hub` uploads the card that `card_writer` writes and keeps the final model saved by `train.py`."""

    def __init__(self, *args, card_writer: Callable[[], None] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.card_writer = card_writer
        self.final_model_saved = False

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        # `push_to_hub` re-saves into the output folder; the final model is already there, written atomically.
        if _internal_call and output_dir is None and self.final_model_saved:
            return
        super().save_model(output_dir, _internal_call)

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

    def create_model_card(self, *args, **kwargs) -> None:
        if self.card_writer is not None:
            self.card_writer()
        else:
            super().create_model_card(*args, **kwargs)

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


__all__ = ["BertMapTrainer", "check_checkpoint", "last_complete_checkpoint"]
