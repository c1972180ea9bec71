"""Server-sent events from raw bytes, stamped with the time their bytes arrived.

Parsed by hand rather than by an SDK so the client measures when each chunk reached it, not when a
library chose to hand it over.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str | None  # the `event:` line, when the server sent one (Anthropic does, OpenAI does not)
    data: str
    arrived: float  # time.perf_counter() of the read that completed this event


class SseDecoder:
    """Feed network reads in; get back the events each read completed."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes, arrived: float) -> list[SseEvent]:
        self._buffer += chunk
        events: list[SseEvent] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                return events
            line = self._buffer[:end].rstrip(b"\r").decode("utf-8")
            self._buffer = self._buffer[end + 1 :]
            if not line:  # a blank line dispatches the event
                if self._data:
                    events.append(SseEvent(self._event, "\n".join(self._data), arrived))
                self._event, self._data = None, []
                continue
            if line.startswith(":"):  # a comment (keep-alive)
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._event = value

    def close(self, arrived: float) -> list[SseEvent]:
        """An event the server did not end with a blank line still counts."""
        tail = self.feed(b"\n\n", arrived) if (self._buffer or self._data) else []
        return tail
