"""Turning one step's logits into a token: penalties, temperature, top-k, top-p, min-p, seeded draws."""

from __future__ import annotations

import torch

from runtime.errors import EngineFailure
from runtime.types import SamplingParams, TokenLogprob


def finite(logits: torch.Tensor) -> torch.Tensor:
    """Logits safe to normalise: NaN becomes -inf (never drawn) and +inf the largest finite value, so softmax
    never meets inf - inf. Penalties, logit_bias and a small temperature can overflow float32 on extreme
    (but accepted) values, and a model can emit NaN; torch.multinomial raises on such a row, failing the run."""
    return torch.nan_to_num(logits, nan=float("-inf"), posinf=torch.finfo(logits.dtype).max, neginf=float("-inf"))


def _require_candidate(logits: torch.Tensor) -> None:
    if not bool((logits > float("-inf")).any()):
        raise EngineFailure("No token could be sampled: every candidate was masked or had an undefined "
                            "probability at this step.")


def apply_penalties(logits: torch.Tensor, generated: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """OpenAI-style frequency/presence penalties and the multiplicative repetition penalty, over the tokens
    generated so far (`generated` is a 1-D LongTensor)."""
    if generated.numel() == 0:
        return logits
    if params.frequency_penalty or params.presence_penalty:
        counts = torch.bincount(generated, minlength=logits.shape[-1])[: logits.shape[-1]].to(logits.dtype)
        logits = logits - params.frequency_penalty * counts - params.presence_penalty * (counts > 0).to(logits.dtype)
    if params.repetition_penalty != 1.0:
        seen = torch.unique(generated)
        picked = logits[seen]
        logits = logits.clone()
        logits[seen] = torch.where(picked > 0, picked / params.repetition_penalty, picked * params.repetition_penalty)
    return logits


def sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
    """Pick the next token from 1-D float32 logits in which forbidden tokens are already -inf. A non-finite row
    never reaches the draw (see `finite`); a row with no allowed token at all raises EngineFailure."""
    logits = finite(logits)
    _require_candidate(logits)
    if params.greedy:
        return int(torch.argmax(logits))
    logits = finite(logits / params.temperature)
    if params.top_k > 0 and params.top_k < logits.shape[-1]:
        kth = torch.topk(logits, params.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if params.min_p > 0.0:
        probs = probs.masked_fill(probs < params.min_p * probs.max(), 0.0)
    if 0.0 < params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        cumulative = torch.cumsum(sorted_probs, dim=-1)
        # Keep the smallest set whose mass reaches top_p (the first token is always kept).
        drop = cumulative - sorted_probs >= params.top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    if not bool(torch.isfinite(probs).all()) or float(probs.sum()) <= 0.0:
        return int(torch.argmax(logits))  # every candidate filtered (or, defensively, no distribution): the likeliest
    return int(torch.multinomial(probs, 1, generator=generator))


def log_distribution(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Log-probabilities of the distribution `sample` draws from, before its top-k/top-p/min-p cuts: the
    processed logits (penalties, masks) over the temperature; greedy ones as they are. SGLang reports the same."""
    logits = finite(logits)
    return torch.log_softmax(logits if params.greedy else finite(logits / params.temperature), dim=-1)


def token_logprob(token: int, distribution: torch.Tensor, top: int, vocab: list[bytes],
                  only: tuple[int, ...] = ()) -> TokenLogprob:
    """The chosen token's entry and the `top` most likely alternatives' (`vocab`: each token's bytes); with
    `only` (vLLM's logprob_token_ids), the alternatives are the chosen token and those instead."""
    alternatives: tuple[TokenLogprob, ...] = ()
    if only:
        alternatives = tuple(TokenLogprob.of(vocab, i, float(distribution[i])) for i in dict.fromkeys((token, *only)))
    elif top:
        values, ids = torch.topk(distribution, min(top, distribution.shape[-1]))
        alternatives = tuple(TokenLogprob.of(vocab, i, v) for v, i in zip(values.tolist(), ids.tolist()))
    return TokenLogprob.of(vocab, token, float(distribution[token]), alternatives)
