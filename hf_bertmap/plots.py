"""Pictures for the model card: the training curve and the reliability diagram, saved beside the model.

They need `matplotlib` (`pip install "hf_bertmap[plots]"`); without it no picture is drawn and the card renders
without them.
"""

import logging
import os

from .metrics import ECE_BINS

logger = logging.getLogger(__name__)

TRAINING_CURVE = "training_curve.png"
RELIABILITY_DIAGRAM = "reliability_diagram.png"


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed (pip install \"hf_bertmap[plots]\"): the card has no pictures")
        return None
    return plt


def save_pictures(folder: str, log_history: list[dict], confidences: list[float], hits: list[bool]) -> list[str]:
    """Draw the training curve (training loss, validation loss and accuracy per step) and the reliability diagram
    of the test predictions (accuracy against the top word's probability, in the calibration error's `ECE_BINS`
    bins) into `folder`; returns the file names drawn (none without matplotlib)."""
    plt = _pyplot()
    if plt is None:
        return []
    drawn = []
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    evals = [(e["step"], e.get("eval_loss"), e["eval_accuracy"]) for e in log_history if "eval_accuracy" in e]
    if train or evals:
        fig, loss_axis = plt.subplots(figsize=(6, 3.5))
        if train:
            loss_axis.plot(*zip(*train), label="training loss", color="tab:blue")
        if evals and all(loss is not None for _, loss, _ in evals):
            loss_axis.plot([s for s, _, _ in evals], [loss for _, loss, _ in evals], "o-", label="validation loss",
                           color="tab:orange")
        loss_axis.set_xlabel("step")
        loss_axis.set_ylabel("loss")
        if evals:
            accuracy_axis = loss_axis.twinx()
            accuracy_axis.plot([s for s, _, _ in evals], [a for _, _, a in evals], "s--", color="tab:green",
                               label="validation accuracy@1")
            accuracy_axis.set_ylabel("accuracy@1")
            accuracy_axis.set_ylim(0, 1)
            accuracy_axis.legend(loc="upper right")
        loss_axis.legend(loc="upper left")
        fig.tight_layout()
        fig.savefig(os.path.join(folder, TRAINING_CURVE), dpi=100)
        plt.close(fig)
        drawn.append(TRAINING_CURVE)
    if confidences:
        bins = ECE_BINS
        counts, correct, confidence_sums = [0] * bins, [0] * bins, [0.0] * bins
        for confidence, hit in zip(confidences, hits):
            b = min(int(confidence * bins), bins - 1)
            counts[b] += 1
            correct[b] += int(hit)
            confidence_sums[b] += confidence
        centres = [(b + 0.5) / bins for b in range(bins)]
        accuracy = [correct[b] / counts[b] if counts[b] else 0.0 for b in range(bins)]
        fig, axis = plt.subplots(figsize=(4, 4))
        axis.bar(centres, accuracy, width=1 / bins, edgecolor="black", alpha=0.7, label="accuracy in bin")
        axis.plot([0, 1], [0, 1], "k--", label="perfect calibration")
        axis.set_xlabel("top word's probability")
        axis.set_ylabel("accuracy@1")
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1)
        axis.set_title(f"test split, {len(confidences)} phrases")
        axis.legend(loc="upper left")
        fig.tight_layout()
        fig.savefig(os.path.join(folder, RELIABILITY_DIAGRAM), dpi=100)
        plt.close(fig)
        drawn.append(RELIABILITY_DIAGRAM)
    return drawn
