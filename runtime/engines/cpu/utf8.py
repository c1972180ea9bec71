"""Only valid UTF-8, ever: a per-step mask over tokens whose bytes would break the encoding.

Byte-level vocabularies contain tokens that are single bytes or partial characters, and a model can string
them into byte sequences that are not UTF-8 (overlong forms, surrogates, stray continuation bytes). Decoded,
those become U+FFFD — and xgrammar's JSON grammar accepts them structurally, counting one "character" where the
text then shows two or three, so a `maxLength` could be broken. Masking them keeps every output, constrained
or not, valid UTF-8 that means what the grammar counted.
"""

from __future__ import annotations

import torch

# Well-formed UTF-8 (Unicode Table 3-7): lead byte -> allowed range of the second byte, and total length.
_LEADS: dict[int, tuple[int, int, int]] = {}
for _b in range(0xC2, 0xE0):
    _LEADS[_b] = (0x80, 0xBF, 2)
_LEADS[0xE0] = (0xA0, 0xBF, 3)
for _b in (*range(0xE1, 0xED), 0xEE, 0xEF):
    _LEADS[_b] = (0x80, 0xBF, 3)
_LEADS[0xED] = (0x80, 0x9F, 3)  # not the surrogates
_LEADS[0xF0] = (0x90, 0xBF, 4)
for _b in range(0xF1, 0xF4):
    _LEADS[_b] = (0x80, 0xBF, 4)
_LEADS[0xF4] = (0x80, 0x8F, 4)  # not above U+10FFFF


def _incomplete_tail(data: bytes) -> bytes | None:
    """The trailing bytes of an unfinished character, or None when `data` is not a valid UTF-8 prefix.
    (Python's incremental decoder accepts some invalid prefixes, such as a surrogate's first two bytes.)"""
    start = 0  # where the current character began
    need = 0  # continuation bytes still expected
    low, high = 0x80, 0xBF  # the range allowed for the next continuation byte
    for i, byte in enumerate(data):
        if need:
            if not low <= byte <= high:
                return None
            need -= 1
            low, high = 0x80, 0xBF
        elif byte < 0x80:
            continue
        elif byte in _LEADS:
            low, high, length = _LEADS[byte]
            need, start = length - 1, i
        else:
            return None
    return data[start:] if need else b""


class Utf8Guard:
    def __init__(self, decoded_vocab: list[bytes], vocab_size: int, always_allowed: tuple[int, ...]) -> None:
        self._bytes = decoded_vocab
        self._size = vocab_size
        self._always = [i for i in always_allowed if i < vocab_size]
        # From a character boundary: tokens that are not valid UTF-8 on their own (possibly ending mid-character).
        self._invalid_at_boundary = torch.zeros(vocab_size, dtype=torch.bool)
        for i, data in enumerate(decoded_vocab[:vocab_size]):
            if _incomplete_tail(data) is None:
                self._invalid_at_boundary[i] = True
        self._invalid_at_boundary[self._always] = False
        # Only tokens starting with a continuation byte can finish a pending character.
        self._continuations = [i for i, data in enumerate(decoded_vocab[:vocab_size]) if data and 0x80 <= data[0] <= 0xBF]

    def forbidden(self, pending: bytes) -> torch.Tensor:
        """Tokens that may not come next, given the unfinished character `pending` (usually empty)."""
        if not pending:
            return self._invalid_at_boundary
        mask = torch.ones(self._size, dtype=torch.bool)
        for i in self._continuations:
            if _incomplete_tail(pending + self._bytes[i]) is not None:
                mask[i] = False
        mask[self._always] = False  # a stop token may still end the output
        return mask

    def advance(self, pending: bytes, token_id: int) -> bytes:
        """The unfinished character after `token_id`."""
        if token_id >= len(self._bytes):
            return pending
        return _incomplete_tail(pending + self._bytes[token_id]) or b""
