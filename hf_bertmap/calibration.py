"""Fitting the decoding step after training (`fit_decoding`): the training phrases stored in its memory, then, from
one pass of the model over the validation phrases:

- temperature scaling: one scalar `T` that divides the logits so that the softmax probabilities are calibrated;
  the argmax (and so accuracy) does not change, only how much the probabilities can be trusted (abstention with
  `min_score` relies on them);
- the memory vote: how much of the nearest stored phrases' vote to mix in (the memory weight) and from which
  closeness of the nearest stored phrase it counts at all, chosen together by accuracy@1 (then @k, then the
  negative log-likelihood); with a memory, the temperature is fitted for each setting on the mixed probabilities,
  which are what users get.

Both are stored in the `DecodingConfig`, which is replaced, never changed in place: the settings tried on the way
are passed by value (`dataclasses.replace`).
"""

import dataclasses
import math
from typing import TYPE_CHECKING

import torch
from datasets import Dataset

from .data import gold_ids
from .decoding_bertmap import WordMappingDecoder, multi_hot
from .metrics import calibration_error, load_metric

if TYPE_CHECKING:
    from .inference import WordMapper

MEMORY_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
# The nearest stored phrase's cosine similarity at which the vote stops counting; None: it always counts.
MEMORY_CLOSENESSES = (None, 0.5, 0.6, 0.7, 0.8, 0.9)
DEFAULT_MEMORY_WEIGHT = 0.3  # without a validation split to choose it on
# The decoding step is fitted on at most this many (validation phrase, output word) logits: 134 MB of float32 per
# copy, all of a few thousand phrases over a few hundred words, the first few hundred over tens of thousands.
MAX_FIT_LOGITS = 2**25

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0
# Each memory setting is scored at its best temperature on this grid (each 1.1 times the one before), the chosen one
# then refined between its grid neighbours.
TEMPERATURE_STEP = math.log(1.1)
TEMPERATURE_GRID = tuple(MIN_TEMPERATURE * math.exp(i * TEMPERATURE_STEP)
                         for i in range(int(math.log(MAX_TEMPERATURE / MIN_TEMPERATURE) / TEMPERATURE_STEP) + 1))


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


def top_k_hits(probabilities: torch.Tensor, labels: torch.Tensor, k: int,
               columns: torch.Tensor | None = None) -> tuple[float, float]:
    """accuracy@1 and accuracy@k (the `word_mapping` metric's) of `probabilities` (n, num_labels) against gold ids
    `labels` (n, max_golds), -100 padded; `columns` (n, m): the word id of each column of `probabilities` when
    they are (n, m) probabilities of some words only (`ReducedFit`)."""
    ranked = probabilities.topk(min(k, probabilities.shape[-1]), dim=-1).indices
    ranked = (ranked if columns is None else columns.gather(1, ranked)).tolist()
    references = [[gold for gold in row if gold >= 0] for row in labels.tolist()]
    results = load_metric().compute(predictions=ranked, references=references, k=k)
    return results["accuracy"], results["accuracy_at_k"]


def decoded_nll(probabilities: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean negative log of the probability mass on each row's golds (rows without a gold are ignored)."""
    gold = multi_hot(labels, probabilities.shape[-1]).bool()
    has_gold = gold.any(dim=-1)
    mass = (probabilities * gold).sum(dim=-1)[has_gold]
    return float(-mass.clamp(min=1e-12).log().mean())


def _golden_section_minimum(f, low: float, high: float, iterations: int = 24) -> float:
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


class ReducedFit:
    """The validation logits cut to the words that can change a setting's score, so that the many (weight,
    closeness, temperature) settings tried cost little with tens of thousands of output words: per phrase, its
    golds, its `k` best words by the classifier, every word of its memory vote and, for a stored phrase, its stored
    words. `probabilities` gives `WordMappingDecoder.decompose`'s probabilities of those words exactly (a word left
    out has at most the `k`-th kept word's share of the classifier and no vote, so top-`k` and the golds' mass are
    unchanged); each temperature still normalises over every word once."""

    def __init__(self, decoding: WordMappingDecoder, logits: torch.Tensor, embeddings: torch.Tensor,
                 phrases: list[str], labels: torch.Tensor, k: int):
        num_labels = logits.shape[-1]
        self.logits = logits.float()
        vote = decoding.memory_vote(embeddings, num_labels)
        keep = multi_hot(labels, num_labels).bool() | (vote.votes > 0)
        keep.scatter_(1, self.logits.topk(min(k, num_labels), dim=-1).indices, True)
        memory_golds = decoding.memory.golds
        self.stored = torch.tensor([decoding.memory.index.get(phrase) is not None for phrase in phrases])
        known = torch.zeros_like(keep)
        for row in self.stored.nonzero().flatten().tolist():
            i = decoding.memory.index[phrases[row]]
            known[row] = multi_hot(memory_golds[i : i + 1].to(keep.device), num_labels)[0].bool()
        keep |= known
        # the kept words first; a row keeping fewer than the widest keeps some others too, which changes nothing
        self.columns = keep.float().topk(int(keep.sum(dim=-1).max()), dim=-1).indices  # (n, m)
        self.kept_logits = self.logits.gather(1, self.columns)
        self.votes = vote.votes.gather(1, self.columns)
        self.closest = vote.closest
        self.known = known.gather(1, self.columns)
        self.gold = multi_hot(labels, num_labels).bool().gather(1, self.columns)
        self.has_gold = (labels >= 0).any(dim=-1)
        self.normalizers: dict[float, torch.Tensor] = {}

    def probabilities(self, config) -> torch.Tensor:
        """(n, m) decoded probabilities of the kept words under `config` (temperature, memory weight and
        closeness), as `decompose` gives them."""
        temperature = config.temperature
        if temperature not in self.normalizers:  # over every word, once per temperature
            self.normalizers[temperature] = (self.logits / temperature).logsumexp(dim=-1, keepdim=True)
        classifier = (self.kept_logits / temperature - self.normalizers[temperature]).exp()
        share = config.memory_share(self.closest) if config.memory_weight > 0 else torch.zeros_like(self.closest)
        probabilities = (1 - share).unsqueeze(-1) * classifier + share.unsqueeze(-1) * self.votes
        if self.stored.any():  # a stored phrase: only its stored words, ranked by the classifier
            ranked = (classifier[self.stored] + 1e-12) * self.known[self.stored]
            probabilities[self.stored] = ranked / ranked.sum(dim=-1, keepdim=True)
        return probabilities

    def nll(self, probabilities: torch.Tensor) -> float:
        """`decoded_nll` of the kept words' probabilities."""
        mass = (probabilities * self.gold).sum(dim=-1)[self.has_gold]
        return float(-mass.clamp(min=1e-12).log().mean())


def fit_memory_vote(decoding: WordMappingDecoder, logits: torch.Tensor, embeddings: torch.Tensor,
                    phrases: list[str], labels: torch.Tensor, weights=MEMORY_WEIGHTS,
                    closenesses=MEMORY_CLOSENESSES, k: int = 5, calibrate: bool = True) -> tuple[dict, dict]:
    """Choose the memory weight and closeness (and, with `calibrate`, the temperature for them) on validation.

    For each (weight, closeness), the temperature of `TEMPERATURE_GRID` minimising the golds' negative
    log-likelihood under the decoded probabilities (classifier and memory vote mixed, so the mixture is what gets
    calibrated); then the setting whose decoded probabilities score best: accuracy@1, then @k, then the smaller
    negative log-likelihood, then the smaller weight; its temperature is then refined between the grid's
    neighbours. Without `calibrate` the decoding's temperature stays. Each decoding is `ReducedFit`'s, exact and
    cheap with tens of thousands of words. The decoding step is not changed.
    Returns (the chosen `{"memory_weight", "memory_closeness", "temperature"}`, {(weight, closeness): (accuracy@1,
    accuracy@k)}).
    """
    labels = torch.as_tensor(labels).long()
    if labels.dim() == 1:
        labels = labels.unsqueeze(-1)
    reduced = ReducedFit(decoding, logits, embeddings, phrases, labels, k)

    def decoded(setting: tuple[float, float | None], temperature: float) -> torch.Tensor:
        return reduced.probabilities(dataclasses.replace(decoding.config, memory_weight=setting[0],
                                                         memory_closeness=setting[1], temperature=temperature))

    def fit(setting: tuple[float, float | None], temperature: float) -> tuple[float, tuple[float, float], float]:
        probabilities = decoded(setting, temperature)
        return temperature, top_k_hits(probabilities, labels, k, reduced.columns), reduced.nll(probabilities)

    settings = [(0.0, None)] + [(w, c) for w in weights if w > 0 for c in closenesses]
    fits = {}
    for setting in settings:  # each at its best temperature of a grid shared by all (normalised once each)
        temperature = decoding.config.temperature
        if calibrate:
            temperature = min(TEMPERATURE_GRID, key=lambda t, setting=setting: reduced.nll(decoded(setting, t)))
        fits[setting] = fit(setting, temperature)
    best = max(settings, key=lambda setting: (fits[setting][1], -fits[setting][2], -setting[0]))
    if calibrate:  # the chosen setting's temperature, refined between the grid's neighbours of its best
        log_t = math.log(fits[best][0])
        fits[best] = fit(best, math.exp(_golden_section_minimum(
            lambda log_t: reduced.nll(decoded(best, math.exp(log_t))),
            max(log_t - TEMPERATURE_STEP, math.log(MIN_TEMPERATURE)),
            min(log_t + TEMPERATURE_STEP, math.log(MAX_TEMPERATURE)))))
    chosen = {"memory_weight": best[0], "memory_closeness": best[1], "temperature": fits[best][0]}
    return chosen, {setting: hits for setting, (_, hits, _) in fits.items()}


def fit_decoding(mapper: "WordMapper", train: Dataset, validation: Dataset, k: int = 5, memory: bool = True,
                 calibrate: bool = True) -> dict[str, float]:
    """Store the `train` phrases in the decoding step's memory (with `memory`, `labels` head), then, from one pass
    over the `validation` phrases (as many as `MAX_FIT_LOGITS` allows), choose the memory weight and closeness
    and, with `calibrate`, fit the temperature of the decoded (mixed) probabilities; `mapper.decoding.config` is
    replaced by the fitted one. Returns what was fitted and measured: the validation ECE before calibration is
    that of the plain classifier at temperature 1."""
    decoding, results = mapper.decoding, {}
    label2id = mapper.model.config.label2id
    if memory and mapper.model.config.head == "labels":
        rows = [(phrase, [w for w in words if w in label2id])
                for phrase, words in zip(train["phrase"], train["targets"])]
        rows = [(phrase, words) for phrase, words in rows if words]
        mapper.memorize([p for p, _ in rows], [w for _, w in rows], weight=DEFAULT_MEMORY_WEIGHT, replace=True)
        results.update(memory_size=len(rows), memory_weight=DEFAULT_MEMORY_WEIGHT)
    validation = validation.select(range(min(len(validation), max(1, MAX_FIT_LOGITS // len(label2id)))))
    if len(validation) == 0 or not (calibrate or decoding.memory is not None):
        return results
    texts, logits, pooled = [], [], []
    for batch_texts, batch_logits, batch_pooled in mapper.iter_outputs(list(validation["phrase"])):
        texts += batch_texts
        logits.append(batch_logits.cpu())
        pooled.append(batch_pooled.cpu())
    logits, pooled = torch.cat(logits), torch.cat(pooled)
    golds = gold_ids(list(validation["targets"]), label2id)
    if not (golds >= 0).any():
        return results
    before = logits.softmax(dim=-1)
    if decoding.memory is not None:
        chosen, scores = fit_memory_vote(decoding, logits, pooled, texts, golds, k=k, calibrate=calibrate)
        decoding.config = dataclasses.replace(decoding.config, **chosen)
        results.update(memory_weight=chosen["memory_weight"], memory_closeness=chosen["memory_closeness"],
                       eval_accuracy_without_memory=scores[(0.0, None)][0],
                       eval_accuracy_with_memory=scores[(chosen["memory_weight"], chosen["memory_closeness"])][0])
    elif calibrate:
        decoding.config = dataclasses.replace(decoding.config, temperature=fit_temperature(logits, golds))
    else:
        return results
    if calibrate:
        after = decoding.probabilities(logits, pooled, texts)
        results.update(temperature=decoding.config.temperature,
                       eval_ece_before_calibration=calibration_error(before.clamp(min=1e-12).log(), golds),
                       eval_ece_after_calibration=calibration_error(after.clamp(min=1e-12).log(), golds))
    return results


__all__ = ["fit_decoding", "fit_temperature", "fit_memory_vote", "gold_log_likelihood", "decoded_nll", "top_k_hits",
           "MEMORY_WEIGHTS", "MEMORY_CLOSENESSES"]
