"""How a model can spell the thinking markers: by their canonical tokens, or by any other tokens whose text
joins into the same bytes (a grammar that admits text admits `<|channel|>` as `<`, `|`, `channel`, `|>`).

The budget tracker (budget.py) finds the markers in the output's bytes. It needs the bytes of only the tokens
that can take part in a marker, and of whitespace (which may come before the region opens): every other token
stands for text that holds no part of one. That table is small (hundreds of tokens where the vocabulary has
hundreds of thousands), so SGLang's processor, which has output ids and no tokenizer, can carry it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.types import MarkerSpelling

WHITESPACE = b" \t\n\r"


def spells_part(token: bytes, marker: bytes) -> bool:
    """Whether `token` can take part in spelling `marker`: it holds the marker, lies inside it, begins it
    (a suffix of the token is a prefix of the marker) or ends it (a prefix of the token is a suffix)."""
    if not token or not marker:
        return False
    if marker in token or token in marker:
        return True
    # Quick refusals first: a token that begins a marker ends with one of its bytes, one that ends it begins so.
    if token[-1] in marker and any(token.endswith(marker[:k]) for k in range(1, len(marker))):
        return True
    return token[0] in marker and any(token.startswith(marker[-k:]) for k in range(1, len(marker)))


def marker_spelling(start: str, end: str, vocab: Sequence[bytes]) -> MarkerSpelling:
    """The markers and the bytes of every token (by id; `vocab`: each token's bytes) that can spell part of
    one or is only whitespace."""
    start_bytes, end_bytes = start.encode(), end.encode()
    table = {i: token for i, token in enumerate(vocab)
             if token and (not token.strip(WHITESPACE) or spells_part(token, start_bytes)
                           or spells_part(token, end_bytes))}
    return spelling_of(start_bytes, end_bytes, table)


def spelling_of(start: bytes, end: bytes, token_bytes: Mapping[int, bytes]) -> MarkerSpelling:
    """A MarkerSpelling with its key: a digest of all it holds, by which SGLang's processor caches it."""
    digest = hashlib.sha256(start + b"\0" + end)
    for token, data in sorted(token_bytes.items()):
        digest.update(b"%d:%s\0" % (token, data.hex().encode()))
    return MarkerSpelling(start, end, dict(token_bytes), digest.hexdigest()[:32])


def vocabulary_bytes(tokenizer: Any) -> list[bytes]:
    """Each token's bytes, from xgrammar's TokenizerInfo (as the engines name tokens): it knows byte-level,
    SentencePiece and byte-fallback vocabularies."""
    import xgrammar as xgr

    return list(xgr.TokenizerInfo.from_huggingface(tokenizer).decoded_vocab)
