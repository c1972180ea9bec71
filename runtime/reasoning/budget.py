"""The thinking budget: one tracker both engines run.

The CPU engine pushes each sampled token into a tracker and, before sampling, asks it for a forced token;
on SGLang the same tracker runs inside a custom logit processor (`ThinkingBudgetProcessor`), replayed over the
request's output ids at every step, as SGLang's own ThinkingBudgetLogitProcessor does
(sglang/srt/sampling/custom_logit_processor.py in 0.5.23). A forced token is the only one left with a finite
logit, so sampling, the grammar and penalties cannot pick another.

The markers are found in the output's bytes, not its token ids: a grammar that admits text lets a model spell
`<|channel|>analysis<|message|>` with ordinary tokens, which a match on the canonical ids never sees (the
region then never opened, and the budget never applied). Each token's bytes come from the control's small
table (runtime/reasoning/markers.py); a token outside it holds no part of a marker. Forcing still forces the
canonical ids.

Counting: a reasoning token holds some of the region's text (neither marker's bytes only). With a budget of N
the region holds exactly N tokens before the end marker is forced (the marker's own tokens come on top).
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

from runtime.reasoning.markers import WHITESPACE, spelling_of
from runtime.types import MarkerSpelling, ThinkingControl

_OTHER = b"\0"  # the text of a token outside the table: it holds no part of a marker, and is not whitespace


class _State(enum.Enum):
    LEAD = "lead"  # nothing but whitespace so far (or the start marker's beginning): the region may still open
    INSIDE = "inside"
    DONE = "done"  # closed, or never opened


class ThinkingTracker:
    def __init__(self, control: ThinkingControl) -> None:
        self._c = control
        self._bytes = control.markers.token_bytes
        self._state = _State.INSIDE if control.starts_inside else _State.LEAD
        self._lead = b""  # LEAD: the output without its leading whitespace (a beginning of the start marker)
        self._recent: list[bytes] = []  # INSIDE: the last tokens' text, enough to hold all but one end byte
        self._forcing: tuple[int, ...] = ()  # the sequence being forced
        self._forced = 0  # how much of it has been pushed
        self._count = 0  # tokens pushed
        self.used = 0  # reasoning tokens so far

    @classmethod
    def replay(cls, control: ThinkingControl, output_ids: Any) -> ThinkingTracker:
        tracker = cls(control)
        for token in output_ids:
            tracker.push(int(token))
        return tracker

    def forced(self) -> int | None:
        """The token the next step must produce, or None when sampling is free."""
        if self._forcing:
            return self._forcing[self._forced]
        c = self._c
        if self._state is _State.INSIDE and c.budget is not None and self.used >= c.budget:
            return c.forced_ids[0]
        if self._state is _State.LEAD and c.force_open and not self._count:
            return c.start_ids[0]
        return None

    def push(self, token: int) -> None:
        c = self._c
        if not self._forcing and self.forced() is not None:  # this token begins a forced sequence
            self._forcing = c.start_ids if self._state is _State.LEAD else c.forced_ids
        if self._forcing:
            self._forced += 1
            if self._forced == len(self._forcing):
                self._forcing, self._forced = (), 0
        self._count += 1
        text = self._bytes.get(token, _OTHER)
        if self._state is _State.LEAD:
            self._push_lead(text)
        elif self._state is _State.INSIDE:
            self._push_inside(text)

    @property
    def inside(self) -> bool:
        return self._state is _State.INSIDE

    def _push_lead(self, text: bytes) -> None:
        start = self._c.markers.start
        lead = self._lead + text if self._lead else text.lstrip(WHITESPACE)
        if lead.startswith(start):
            self._state, self._lead = _State.INSIDE, b""
            if len(lead) > len(start):  # the token goes on past the marker: its rest is the region's
                self._push_inside(lead[len(start):])
        elif start.startswith(lead):
            self._lead = lead
        else:
            self._state, self._lead = _State.DONE, b""

    def _push_inside(self, text: bytes) -> None:
        """`text`: one token's (or the rest of the token that opened the region)."""
        end = self._c.markers.end
        self.used += 1
        self._recent.append(text)
        window = b"".join(self._recent)
        at = window.find(end, max(0, len(window) - len(text) - len(end) + 1))  # a match ending in this token
        if at >= 0:
            # The tokens that begin at or after the marker hold none of the region's text.
            offset = len(window)
            for piece in reversed(self._recent):
                offset -= len(piece)
                if offset < at:
                    break
                self.used -= 1
            self._state, self._recent = _State.DONE, []
            return
        while len(self._recent) > 1 and len(window) - len(self._recent[0]) >= len(end) - 1:
            window = window[len(self._recent.pop(0)):]  # keep only what a match could still use


class ThinkingBudgetProcessor:
    """SGLang's custom logit processor contract (`CustomLogitProcessor.__call__(logits, custom_param_list)`),
    where each row's params carry our ThinkingControl as plain JSON (`control_params`: the marker table
    included, for SGLang's scheduler has output ids and no tokenizer of ours) and SGLang adds the request as
    `__req__` (schedule_batch.py `Req.__init__`, a weak proxy with `output_ids`). SGLang unpickles it in the
    scheduler (`_cache_from_str`; `from_str` makes a new instance each time), importing this module there; it
    needs no sglang import itself."""

    # Marker tables by key, decoded once per scheduler process rather than once per row and step (few: one per
    # served model's reasoning format).
    _spellings: ClassVar[dict[str, MarkerSpelling]] = {}

    def __call__(self, logits: Any, custom_param_list: list[dict[str, Any] | None] | None = None) -> Any:
        for row, params in enumerate(custom_param_list or ()):
            if not params or "thinking" not in params or params.get("__req__") is None:
                continue
            control = control_from_params(params["thinking"], self._spellings)
            forced = ThinkingTracker.replay(control, params["__req__"].output_ids).forced()
            if forced is not None:
                logits[row, :] = -float("inf")
                logits[row, forced] = 0.0
        return logits

    @classmethod
    def to_str(cls) -> str:
        """SGLang's `CustomLogitProcessor.to_str` shape. A plain pickle of the class (a reference to this module,
        not its code) is also a valid dill stream, so no dill is needed here."""
        import json
        import pickle

        return json.dumps({"callable": pickle.dumps(cls).hex()})


def control_params(control: ThinkingControl) -> dict[str, Any]:
    """A ThinkingControl as custom_params values (JSON-safe: they cross SGLang's msgpack IPC; bytes as hex)."""
    markers = control.markers
    return {"start_ids": list(control.start_ids), "forced_ids": list(control.forced_ids),
            "start": markers.start.hex(), "end": markers.end.hex(), "key": markers.key,
            "token_bytes": {str(token): data.hex() for token, data in markers.token_bytes.items()},
            "starts_inside": control.starts_inside, "budget": control.budget, "force_open": control.force_open}


def control_from_params(params: dict[str, Any], spellings: dict[str, MarkerSpelling] | None = None) -> ThinkingControl:
    """`spellings`: marker tables already decoded, by key (read and filled)."""
    markers = spellings.get(params["key"]) if spellings is not None else None
    if markers is None:
        markers = spelling_of(bytes.fromhex(params["start"]), bytes.fromhex(params["end"]),
                              {int(token): bytes.fromhex(data) for token, data in params["token_bytes"].items()})
        if spellings is not None:
            if len(spellings) >= 8:
                spellings.clear()
            spellings[params["key"]] = markers
    return ThinkingControl(tuple(params["start_ids"]), tuple(params["forced_ids"]), markers,
                           bool(params["starts_inside"]), params["budget"], bool(params["force_open"]))
