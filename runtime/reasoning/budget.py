"""The thinking budget, in token ids: one tracker both engines run.

The CPU engine pushes each sampled token into a tracker and, before sampling, asks it for a forced token;
on SGLang the same tracker runs inside a custom logit processor (`ThinkingBudgetProcessor`), replayed over the
request's output ids at every step, as SGLang's own ThinkingBudgetLogitProcessor does
(sglang/srt/sampling/custom_logit_processor.py in 0.5.23). A forced token is the only one left with a finite
logit, so sampling, the grammar and penalties cannot pick another.

Counting: tokens strictly inside the region (neither marker) are reasoning tokens. With a budget of N the
region holds exactly N before the end marker is forced (the marker's own tokens come on top).
"""

from __future__ import annotations

import enum
from typing import Any

from runtime.types import ThinkingControl


class _State(enum.Enum):
    LEAD = "lead"  # nothing but whitespace so far: the region may still open
    INSIDE = "inside"
    DONE = "done"  # closed, or never opened


class ThinkingTracker:
    def __init__(self, control: ThinkingControl) -> None:
        self._c = control
        self._state = _State.INSIDE if control.starts_inside else _State.LEAD
        self._recent: list[int] = []  # the last few tokens, to match multi-token markers
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
        self._recent = (self._recent + [token])[-max(len(c.start_ids), len(c.end_ids)):]
        if self._state is _State.LEAD:
            if self._ends_with(c.start_ids):
                self._state = _State.INSIDE
            elif token not in c.lead_ids and not self._is_start_prefix():
                self._state = _State.DONE
        elif self._state is _State.INSIDE:
            self.used += 1
            if self._ends_with(c.end_ids):
                self.used -= len(c.end_ids)
                self._state = _State.DONE

    @property
    def inside(self) -> bool:
        return self._state is _State.INSIDE

    def _ends_with(self, marker: tuple[int, ...]) -> bool:
        return bool(marker) and tuple(self._recent[-len(marker):]) == marker

    def _is_start_prefix(self) -> bool:
        """Whether the output ends with an unfinished start marker (a multi-token one still coming)."""
        start = self._c.start_ids
        return any(tuple(self._recent[-k:]) == start[:k] for k in range(1, len(start)) if len(self._recent) >= k)


class ThinkingBudgetProcessor:
    """SGLang's custom logit processor contract (`CustomLogitProcessor.__call__(logits, custom_param_list)`),
    where each row's params carry our ThinkingControl as plain JSON (`control_params`) and SGLang adds the
    request as `__req__` (schedule_batch.py `Req.__init__`, a weak proxy with `output_ids`). SGLang unpickles it
    in the scheduler (`_cache_from_str`), importing this module there; it needs no sglang import itself."""

    def __call__(self, logits: Any, custom_param_list: list[dict[str, Any] | None] | None = None) -> Any:
        for row, params in enumerate(custom_param_list or ()):
            if not params or "thinking" not in params or params.get("__req__") is None:
                continue
            control = control_from_params(params["thinking"])
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
    """A ThinkingControl as custom_params values (JSON-safe: they cross SGLang's msgpack IPC)."""
    return {"start_ids": list(control.start_ids), "end_ids": list(control.end_ids),
            "forced_ids": list(control.forced_ids), "starts_inside": control.starts_inside,
            "budget": control.budget, "force_open": control.force_open, "lead_ids": sorted(control.lead_ids)}


def control_from_params(params: dict[str, Any]) -> ThinkingControl:
    return ThinkingControl(tuple(params["start_ids"]), tuple(params["end_ids"]), tuple(params["forced_ids"]),
                           bool(params["starts_inside"]), params["budget"], bool(params["force_open"]),
                           frozenset(params["lead_ids"]))
