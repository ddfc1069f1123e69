"""`BertMapTrainer`: `transformers.Trainer` with the word-mapping head's own learning rate and the model card
rendered from `hub_card.md` (not Trainer's generic one) when pushing."""

from collections.abc import Callable

from transformers import Trainer


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


__all__ = ["BertMapTrainer"]
