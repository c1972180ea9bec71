"""The thinking budget on the SGLang adapter, against the contract fake (tests/fake_sglang): the same tracker
as the CPU engine, run by SGLang as a custom logit processor over each step's logits."""

from __future__ import annotations

import asyncio
import uuid
from types import ModuleType

from runtime.reasoning.markers import spelling_of
from runtime.types import EngineRequest, Finished, SamplingParams, TextDelta, ThinkingControl
from tests.test_sglang_engine import collect, started

THINK, END = 1, 2
# The markers also spelled in pieces: "</" + "think>" is </think> as well.
PIECES = {THINK: "<think>", END: "</think>", 3: "</", 4: "think>"}
MARKERS = spelling_of(b"<think>", b"</think>", {i: text.encode() for i, text in PIECES.items()})


def detokenize(ids: list[int]) -> str:
    return "".join(PIECES.get(i, chr(ord("a") + i)) for i in ids)


def thinking_request(control: ThinkingControl) -> EngineRequest:
    return EngineRequest(uuid.uuid4().hex, (5, 6, 7), SamplingParams(max_new_tokens=8), thinking=control)


def test_the_budget_is_forced_through_the_custom_logit_processor(fake_sglang: ModuleType) -> None:
    fake = fake_sglang

    async def main() -> None:
        engine = await started()
        assert engine._engine.kwargs["enable_custom_logit_processor"] is True
        control = ThinkingControl((THINK,), (END,), MARKERS, starts_inside=True, budget=2)
        fake.control.scripts.append(fake.Script(proposed_ids=[5, 6, 7, 8, 9], detokenize=detokenize,
                                                finish=fake.length(5)))
        events = await collect(engine, thinking_request(control))
        call = engine._engine.calls[-1]
        assert call["custom_logit_processor"] and call["sampling_params"]["custom_params"]["thinking"]["budget"] == 2
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "fg</think>ij"
        finished = events[-1]
        assert isinstance(finished, Finished) and finished.usage.reasoning_tokens == 2
        await engine.close()

    asyncio.run(main())


def test_force_open_and_counting_without_a_budget(fake_sglang: ModuleType) -> None:
    fake = fake_sglang

    async def main() -> None:
        engine = await started()
        opened = ThinkingControl((THINK,), (END,), MARKERS, budget=1, force_open=True)
        fake.control.scripts.append(fake.Script(proposed_ids=[5, 6, 7, 8], detokenize=detokenize,
                                                finish=fake.length(4)))
        events = await collect(engine, thinking_request(opened))
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "<think>g</think>i"
        assert events[-1].usage.reasoning_tokens == 1
        # Counting only: no processor is sent, the count comes from the final output ids.
        counted = ThinkingControl((THINK,), (END,), MARKERS, starts_inside=True)
        fake.control.scripts.append(fake.Script(proposed_ids=[5, 6, END, 8], detokenize=detokenize,
                                                finish=fake.length(4)))
        events = await collect(engine, thinking_request(counted))
        assert engine._engine.calls[-1]["custom_logit_processor"] is None
        assert events[-1].usage.reasoning_tokens == 2
        await engine.close()

    asyncio.run(main())


def test_a_marker_spelled_in_pieces_is_seen_by_the_processor_and_the_count(fake_sglang: ModuleType) -> None:
    """The processor in SGLang's scheduler has the output ids and no tokenizer: the params carry the marker
    table, so a `</think>` the model wrote as "</" "think>" closes the region there too."""
    fake = fake_sglang

    async def main() -> None:
        engine = await started()
        control = ThinkingControl((THINK,), (END,), MARKERS, starts_inside=True, budget=3)
        fake.control.scripts.append(fake.Script(proposed_ids=[5, 3, 4, 8, 9, 10, 11], detokenize=detokenize,
                                                finish=fake.length(7)))
        events = await collect(engine, thinking_request(control))
        # Closed by the model's own spelling after one reasoning token: nothing forced, all of it counted so.
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "f</think>ijkl"
        assert events[-1].usage.reasoning_tokens == 1
        await engine.close()

    asyncio.run(main())
