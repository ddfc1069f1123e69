"""Temperature scaling: one scalar `T` that divides the logits so that the softmax probabilities are calibrated.

Fitted on validation logits after training and stored as `config.temperature`; the argmax (and so accuracy) does
not change, only how much the probabilities can be trusted (`predict(..., min_score=...)` relies on them).
"""

import torch

from .modeling_bertmap import multi_hot

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0


def gold_log_likelihood(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per row, the log of the probability mass on the row's gold ids (`labels`: (batch, max_golds), -100 padded).

    With several golds, the mass on any of them is what counts: the probability that the top word is right.
    Rows without any gold give `-inf`.
    """
    gold = multi_hot(labels, logits.shape[-1]).bool()
    log_probs = logits.log_softmax(dim=-1)
    return log_probs.masked_fill(~gold, float("-inf")).logsumexp(dim=-1)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The temperature minimising the negative log-likelihood of the golds under `softmax(logits / T)`.

    `logits`: (n, num_labels); `labels`: (n,) or (n, max_golds) gold ids padded with -100. Rows without a gold
    are ignored. The result is clamped to [0.05, 20].
    """
    logits = torch.as_tensor(logits).detach().float()
    labels = torch.as_tensor(labels).long()
    if labels.dim() == 1:
        labels = labels.unsqueeze(-1)
    has_gold = (labels >= 0).any(dim=-1)
    if not has_gold.any():
        raise ValueError("fit_temperature: no row has a gold label inside the label set")
    logits, labels = logits[has_gold], labels[has_gold]
    log_temperature = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_temperature], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = -gold_log_likelihood(logits / log_temperature.exp(), labels).mean()
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_temperature.detach().exp().clamp(MIN_TEMPERATURE, MAX_TEMPERATURE))


__all__ = ["fit_temperature", "gold_log_likelihood"]
