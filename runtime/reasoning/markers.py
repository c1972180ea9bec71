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
    return bool(token) and _spells_any(token, [_pieces(marker)])


def marker_spelling(start: str, end: str, vocab: Sequence[bytes]) -> MarkerSpelling:
    """The markers and the bytes of every token (by id; `vocab`: each token's bytes) that can spell part of
    one or is only whitespace."""
    start_bytes, end_bytes = start.encode(), end.encode()
    markers = [_pieces(start_bytes), _pieces(end_bytes)]
    table = {i: token for i, token in enumerate(vocab)
             if token and (not token.strip(WHITESPACE) or _spells_any(token, markers))}
    return spelling_of(start_bytes, end_bytes, table)


_Pieces = tuple[bytes, tuple[bytes, ...], tuple[bytes, ...]]


def _pieces(marker: bytes) -> _Pieces:
    """The marker, its proper prefixes and its proper suffixes (tuples, which bytes.endswith and startswith try
    in C: the table of a 200k-token vocabulary took 2 s on a busy 2-core machine, once per server)."""
    return marker, tuple(marker[:k] for k in range(1, len(marker))), tuple(marker[-k:] for k in range(1, len(marker)))


def _spells_any(token: bytes, markers: list[_Pieces]) -> bool:
    return any(marker and (marker in token or token in marker or token.endswith(beginnings)
                           or token.startswith(endings)) for marker, beginnings, endings in markers)


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
