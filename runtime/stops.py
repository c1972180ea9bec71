"""Stop strings over a stream of text deltas.

Text that could be the beginning of a stop string is held back until it is known not to be one, so a
stop string is never partly emitted.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class StopResult:
    text: str  # safe to emit now
    matched: str | None = None  # set when a stop string ended generation


class StopMatcher:
    """Each stop string's KMP state (how much of it the text so far ends with) is carried from one push to the
    next, so a push costs its own length per stop string, whatever the stop strings' lengths: what to hold back
    is the longest of those states, and a match is found with `str.find` over the held text and the new."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(dict.fromkeys(s for s in stops if s))
        self._failure = [_failure(stop) for stop in self._stops]
        self._state = [0] * len(self._stops)
        self._held = ""

    def push(self, text: str) -> StopResult:
        if not self._stops:
            return StopResult(text)
        buffer = self._held + text
        first: tuple[int, str] | None = None
        for stop in self._stops:
            at = buffer.find(stop)
            if at >= 0 and (first is None or at < first[0]):
                first = (at, stop)
        if first is not None:
            self._held = ""
            return StopResult(buffer[: first[0]], matched=first[1])
        keep = 0
        for i, stop in enumerate(self._stops):
            self._state[i] = state = _advance(stop, self._failure[i], self._state[i], text)
            keep = max(keep, state)
        keep = min(keep, len(buffer))
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return StopResult(buffer[: len(buffer) - keep])

    def flush(self) -> str:
        """What is held back; matching starts afresh (the text that follows is not a continuation of it)."""
        held, self._held = self._held, ""
        self._state = [0] * len(self._stops)
        return held


def _failure(pattern: str) -> list[int]:
    """KMP's failure function: for each prefix, the length of its longest proper prefix that is also a suffix."""
    failure = [0] * len(pattern)
    k = 0
    for i in range(1, len(pattern)):
        while k and pattern[i] != pattern[k]:
            k = failure[k - 1]
        if pattern[i] == pattern[k]:
            k += 1
        failure[i] = k
    return failure


def _advance(pattern: str, failure: list[int], state: int, text: str) -> int:
    """The state after `text`: the longest prefix of `pattern` that the text so far ends with, short of all of it
    (a whole match is `push`'s to find)."""
    last = len(pattern) - 1
    if len(text) >= last:  # only the text's last len - 1 characters can be part of what it ends with
        state, text = 0, text[len(text) - last:] if last else ""
    for ch in text:
        while state and (state > last or pattern[state] != ch):
            state = failure[state - 1]
        if pattern[state] == ch:
            state += 1
    return state if state <= last else failure[last]


def partial_suffix(buffer: str, marker: str) -> int:
    """Length of the longest suffix of `buffer` that is a proper prefix of `marker`: text that must be held
    back while streaming, since it may yet turn out to be `marker`. Only the lengths n where marker[n - 1] is
    the buffer's last character can match, so those alone are tried (a few per marker, not one per length)."""
    if not buffer:
        return 0
    last = buffer[-1]
    at = marker.rfind(last, 0, min(len(marker) - 1, len(buffer)))
    while at >= 0:
        if buffer.endswith(marker[: at + 1]):
            return at + 1
        at = marker.rfind(last, 0, at)
    return 0


# Each stop string is matched on every token of the output, on the event loop: bounded so that one request
# cannot slow the others (OpenAI allows 4; vLLM and SGLang set no bound; lm-eval sends a handful).
MAX_STOPS = 256
MAX_STOP_CHARS = 1024


def check_stops(stops: tuple[str, ...], param: str) -> None:
    """A 400 naming `param` (the dialect's field) for more stop strings than MAX_STOPS or a longer one."""
    if len(stops) > MAX_STOPS:
        raise InvalidRequest(f"At most {MAX_STOPS} stop strings per request; got {len(stops)}.", param=param)
    for i, stop in enumerate(stops):
        if len(stop) > MAX_STOP_CHARS:
            raise InvalidRequest(f"A stop string may be at most {MAX_STOP_CHARS} characters; the one at index {i} "
                                 f"has {len(stop)}.", param=param)
