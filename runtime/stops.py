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
    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
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
        keep = self._longest_partial_suffix(buffer)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return StopResult(buffer[: len(buffer) - keep])

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held

    def _longest_partial_suffix(self, buffer: str) -> int:
        """Length of the longest suffix of `buffer` that is a proper prefix of some stop string."""
        return max(partial_suffix(buffer, stop) for stop in self._stops)


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
