"""Fitting the decoding step on validation, from one pass of the model over the validation phrases:

- temperature scaling: one scalar `T` that divides the logits so that the softmax probabilities are calibrated;
  the argmax (and so accuracy) does not change, only how much the probabilities can be trusted (abstention with
  `min_score` relies on them);
- the memory weight: how much of the nearest stored phrases' vote to mix in, chosen by accuracy@1 (then @k).

Both are stored in the `DecodingConfig`.
"""

import torch

from .decoding_bertmap import WordMappingDecoder
from .modeling_bertmap import multi_hot

MEMORY_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)

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


def top_k_hits(probabilities: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[float, float]:
    """accuracy@1 and accuracy@k of `probabilities` (n, num_labels) against gold ids `labels` (n, max_golds)."""
    gold = multi_hot(labels, probabilities.shape[-1]).bool()
    top = probabilities.topk(min(k, probabilities.shape[-1]), dim=-1).indices
    hits = gold.gather(1, top)  # (n, k)
    return float(hits[:, 0].float().mean()), float(hits.any(dim=-1).float().mean())


def choose_memory_weight(decoder: WordMappingDecoder, logits: torch.Tensor, embeddings: torch.Tensor,
                         phrases: list[str], labels: torch.Tensor, weights=MEMORY_WEIGHTS,
                         k: int = 5) -> tuple[float, dict[float, tuple[float, float]]]:
    """The weight in `weights` whose decoded probabilities score best (accuracy@1, then @k, then the smaller
    weight) on the validation `logits`, pooled `embeddings` and normalised `phrases`; and every weight's scores."""
    labels = torch.as_tensor(labels).long()
    if labels.dim() == 1:
        labels = labels.unsqueeze(-1)
    scores = {weight: top_k_hits(decoder.probabilities(logits, embeddings, phrases, memory_weight=weight), labels, k)
              for weight in weights}
    return max(weights, key=lambda weight: (scores[weight], -weight)), scores


__all__ = ["fit_temperature", "gold_log_likelihood", "choose_memory_weight", "top_k_hits", "MEMORY_WEIGHTS"]
