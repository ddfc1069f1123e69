"""Fitting the decoding step on validation, from one pass of the model over the validation phrases:

- temperature scaling: one scalar `T` that divides the logits so that the softmax probabilities are calibrated;
  the argmax (and so accuracy) does not change, only how much the probabilities can be trusted (abstention with
  `min_score` relies on them);
- the memory weight: how much of the nearest stored phrases' vote to mix in, chosen by accuracy@1 (then @k);
  with a memory, the temperature is fitted for each weight on the mixed probabilities, which are what users get.

Both are stored in the `DecodingConfig`.
"""

import math

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


def decoded_nll(probabilities: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean negative log of the probability mass on each row's golds (rows without a gold are ignored)."""
    gold = multi_hot(labels, probabilities.shape[-1]).bool()
    has_gold = gold.any(dim=-1)
    mass = (probabilities * gold).sum(dim=-1)[has_gold]
    return float(-mass.clamp(min=1e-12).log().mean())


def _golden_section_minimum(f, low: float, high: float, iterations: int = 40) -> float:
    """The argument in [low, high] minimising a unimodal `f`."""
    ratio = (5**0.5 - 1) / 2
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iterations):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = f(d)
    return (a + b) / 2


def fit_memory_weight(decoder: WordMappingDecoder, logits: torch.Tensor, embeddings: torch.Tensor,
                      phrases: list[str], labels: torch.Tensor, weights=MEMORY_WEIGHTS, k: int = 5,
                      calibrate: bool = True) -> tuple[float, float, dict[float, tuple[float, float]]]:
    """Choose the memory weight (and, with `calibrate`, the temperature for it) on validation.

    For each weight in `weights`, the temperature minimising the golds' negative log-likelihood under the decoded
    probabilities (classifier and memory vote mixed, so the mixture is what gets calibrated); then the weight whose
    decoded probabilities score best: accuracy@1, then @k, then the smaller weight. Without `calibrate` the
    decoder's temperature stays. Returns (weight, temperature, {weight: (accuracy@1, accuracy@k)}).
    """
    labels = torch.as_tensor(labels).long()
    if labels.dim() == 1:
        labels = labels.unsqueeze(-1)
    config, kept = decoder.config, decoder.config.temperature
    vote = decoder.memory_vote(embeddings, logits.shape[-1])  # the same for every weight and temperature
    fits = {}
    try:
        for weight in weights:
            def nll(log_temperature: float, weight=weight) -> float:
                config.temperature = math.exp(log_temperature)
                return decoded_nll(decoder.probabilities(logits, embeddings, phrases, memory_weight=weight,
                                                         vote=vote), labels)

            if calibrate:
                config.temperature = math.exp(_golden_section_minimum(
                    nll, math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)))
            probabilities = decoder.probabilities(logits, embeddings, phrases, memory_weight=weight, vote=vote)
            fits[weight] = (config.temperature, top_k_hits(probabilities, labels, k))
    finally:
        config.temperature = kept
    best = max(weights, key=lambda weight: (fits[weight][1], -weight))
    return best, fits[best][0], {weight: hits for weight, (_, hits) in fits.items()}


__all__ = ["fit_temperature", "fit_memory_weight", "gold_log_likelihood", "decoded_nll", "top_k_hits",
           "MEMORY_WEIGHTS"]
