"""Neutral chat events to a Response: the stream events in OpenAI's order, and the final object as their fold.

`ResponseBuilder.feed(event)` turns one ChatEvent into the stream events it causes and updates the response it
builds; a non-streamed request feeds the same events and answers with the result, so the two cannot disagree.
Order (as OpenAI sends it): response.created, response.in_progress, then per output item
`output_item.added` → (message: `content_part.added`, `output_text.delta`…, `output_text.done`,
`content_part.done`) / (function call: `function_call_arguments.delta`…, `.done`) / (custom tool call:
`custom_tool_call_input.delta`, `.done`) → `output_item.done`, and last `response.completed` or
`response.incomplete` (max_output_tokens reached). A failure after the stream has started is an `error` event
followed by `response.failed`. Every event's `sequence_number` counts from 0, set as it is framed.
app/streaming.py drives both: the stream through `ResponseEvents`, the whole answer through `from_result`.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Iterator

import msgspec

from app import sse
from app.openai.errors import error_body
from app.responses import schemas as s
from app.responses.convert import Converted, ToolName, text_config_out
from runtime.errors import ServiceError
from runtime.tools.freeform import INPUT
from runtime.result import ChatResult, ReasoningBlock, TextBlock
from runtime.types import ChatEvent, ChatFinished, FinishReason, Logprobs, ReasoningDelta, TextDelta, TokenLogprob, \
    ToolCallArgs, ToolCallStart, Usage


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def usage_out(usage: Usage) -> s.UsageOut:
    return s.UsageOut(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens,
                      s.InputTokensDetails(usage.cached_tokens), s.OutputTokensDetails(usage.reasoning_tokens))


def _logprobs(entries: list[TokenLogprob]) -> list[s.TokenLogprob]:
    return [s.TokenLogprob(e.token, list(e.data), e.logprob, [s.TopLogprob(t.token, list(t.data), t.logprob)
                                                               for t in e.top]) for e in entries]


def snapshot(rid: str, model: str, req: s.ResponsesRequest, converted: Converted) -> s.ResponseObject:
    """The response as it starts (in_progress), with the request's settings echoed."""
    return s.ResponseObject(
        id=rid, created_at=int(time.time()), model=model, status="in_progress", instructions=req.instructions,
        max_output_tokens=req.max_output_tokens, metadata=req.metadata or {},
        parallel_tool_calls=converted.chat.tool_choice.parallel, previous_response_id=req.previous_response_id,
        reasoning=req.reasoning, store=req.store, temperature=converted.chat.sampling.temperature,
        text=text_config_out(req.text), tool_choice=converted.tool_choice_out, tools=converted.tools_out,
        top_logprobs=req.top_logprobs, top_p=converted.chat.sampling.top_p, truncation=req.truncation or "disabled",
        user=req.user,
    )


class _OpenCall:
    def __init__(self, index: int, item: s.FunctionCallOut | s.CustomToolCallOut) -> None:
        self.index = index  # the call's index among this response's calls
        self.item = item
        self.arguments: list[str] = []


class ResponseBuilder:
    """The response of one run, built event by event. `response` starts as the in_progress snapshot."""

    def __init__(self, response: s.ResponseObject, names: dict[str, ToolName]) -> None:
        self.response = response
        self._names = names
        self._open: s.OutputMessage | s.ReasoningOut | _OpenCall | None = None
        self._pending_logprobs: list[TokenLogprob] = []
        self._calls: list[_OpenCall] = []

    @property
    def _output_index(self) -> int:
        return len(self.response.output) - 1

    def start(self) -> Iterator[s.Event]:
        yield s.ResponseCreated(response=self.response)
        yield s.ResponseInProgress(response=self.response)

    def feed(self, event: ChatEvent) -> Iterator[s.Event]:
        match event:
            case Logprobs():
                self._pending_logprobs.extend(event.tokens)
            case TextDelta():
                if event.text:
                    yield from self._text(event.text)
            case ReasoningDelta():
                if event.text:
                    yield from self._reasoning(event.text)
            case ToolCallStart():
                yield from self._close(completed=True)
                yield from self._start_call(event)
            case ToolCallArgs():
                call = self._calls[event.index]
                call.arguments.append(event.fragment)
                if isinstance(call.item, s.FunctionCallOut) and event.fragment:
                    yield s.FunctionCallArgumentsDelta(item_id=call.item.id, output_index=self._output_index,
                                                       delta=event.fragment)
            case ChatFinished():
                yield from self._finish(event)

    def _text(self, text: str) -> Iterator[s.Event]:
        if not isinstance(self._open, s.OutputMessage):
            yield from self._close(completed=True)
            message = s.OutputMessage(new_id("msg"), "in_progress", [])
            self.response.output.append(message)
            self._open = message
            yield s.OutputItemAdded(output_index=self._output_index, item=message)
            part = s.OutputText("")
            message.content.append(part)
            yield s.ContentPartAdded(item_id=message.id, output_index=self._output_index, content_index=0,
                                     part=part)
        message = self._open
        part = message.content[0]
        part.text += text
        logprobs = _logprobs(self._pending_logprobs)
        self._pending_logprobs = []
        part.logprobs.extend(logprobs)
        yield s.OutputTextDelta(item_id=message.id, output_index=self._output_index, content_index=0, delta=text,
                                logprobs=logprobs)

    def _reasoning(self, text: str) -> Iterator[s.Event]:
        """A reasoning model's thinking: a reasoning item whose content is its text (as OpenAI's open-weight
        models return it; no summary is made)."""
        if not isinstance(self._open, s.ReasoningOut):
            yield from self._close(completed=True)
            item = s.ReasoningOut(new_id("rs"), [], [s.ReasoningText("")], "in_progress")
            self.response.output.append(item)
            self._open = item
            yield s.OutputItemAdded(output_index=self._output_index, item=item)
        item = self._open
        assert isinstance(item.content, list)
        item.content[0].text += text
        yield s.ReasoningTextDelta(item_id=item.id, output_index=self._output_index, content_index=0, delta=text)

    def _start_call(self, event: ToolCallStart) -> Iterator[s.Event]:
        name = self._names.get(event.name, ToolName("function", event.name))
        namespace = name.namespace if name.namespace is not None else msgspec.UNSET
        item: s.FunctionCallOut | s.CustomToolCallOut
        if name.kind == "custom":
            item = s.CustomToolCallOut(new_id("ctc"), event.id, name.name, "", "in_progress", namespace)
        else:
            item = s.FunctionCallOut(new_id("fc"), event.id, name.name, "", "in_progress", namespace)
        call = _OpenCall(event.index, item)
        self._calls.append(call)
        self.response.output.append(item)
        self._open = call
        yield s.OutputItemAdded(output_index=self._output_index, item=item)

    def _close(self, *, completed: bool) -> Iterator[s.Event]:
        """End the open item: `completed`, or cut off by the token limit."""
        open_item, self._open = self._open, None
        index = self._output_index
        status = "completed" if completed else "incomplete"
        if isinstance(open_item, s.OutputMessage):
            part = open_item.content[0]
            yield s.OutputTextDone(item_id=open_item.id, output_index=index, content_index=0, text=part.text,
                                   logprobs=part.logprobs)
            yield s.ContentPartDone(item_id=open_item.id, output_index=index, content_index=0, part=part)
            open_item.status = status
            yield s.OutputItemDone(output_index=index, item=open_item)
        elif isinstance(open_item, s.ReasoningOut):
            assert isinstance(open_item.content, list)
            yield s.ReasoningTextDone(item_id=open_item.id, output_index=index, content_index=0,
                                      text=open_item.content[0].text)
            open_item.status = status
            yield s.OutputItemDone(output_index=index, item=open_item)
        elif isinstance(open_item, _OpenCall):
            item = open_item.item
            arguments = "".join(open_item.arguments)
            if isinstance(item, s.FunctionCallOut):
                item.arguments = arguments
                yield s.FunctionCallArgumentsDone(item_id=item.id, output_index=index, arguments=arguments,
                                                  name=item.name)
            else:
                item.input = _custom_input(arguments)
                if item.input:
                    yield s.CustomToolCallInputDelta(item_id=item.id, output_index=index, delta=item.input)
                yield s.CustomToolCallInputDone(item_id=item.id, output_index=index, input=item.input)
            item.status = status
            yield s.OutputItemDone(output_index=index, item=item)

    def _finish(self, finished: ChatFinished) -> Iterator[s.Event]:
        # A call is complete once the parser closed it, a message unless the token limit cut it off.
        if isinstance(self._open, _OpenCall):
            cut_off = self._open.index >= finished.tool_calls
        else:
            cut_off = finished.reason is FinishReason.LENGTH
        yield from self._close(completed=not cut_off)
        response = self.response
        response.usage = usage_out(finished.usage)
        if finished.reason is FinishReason.LENGTH:
            response.status = "incomplete"
            response.incomplete_details = s.IncompleteDetails("max_output_tokens")
        else:
            response.status = "completed"
            response.completed_at = int(time.time())

    def end(self) -> s.Event:
        if self.response.status == "incomplete":
            return s.ResponseIncomplete(response=self.response)
        return s.ResponseCompleted(response=self.response)

    def fail(self, err: ServiceError) -> Iterator[s.Event]:
        body = error_body(err).error
        yield s.ErrorEvent(message=body.message, code=body.code or body.type, param=body.param)
        self.response.status = "failed"
        self.response.error = s.ErrorOut("server_error" if err.status >= 500 else "invalid_prompt", body.message)
        yield s.ResponseFailed(response=self.response)


def _custom_input(arguments: str) -> str:
    """A custom tool's call carries its input as the one string argument."""
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return arguments
    return value.get(INPUT, "") if isinstance(value, dict) and isinstance(value.get(INPUT), str) \
        else arguments


def from_result(builder: ResponseBuilder, result: ChatResult) -> s.ResponseObject:
    """The non-streamed answer: the run's events, as its result holds them, fed to the builder the stream uses
    (all logprobs go with the first text, which the whole answer does not tell apart)."""
    for event in _events(result):
        for _ in builder.feed(event):
            pass
    return builder.response


def _events(result: ChatResult) -> Iterator[ChatEvent]:
    if result.logprobs:
        yield Logprobs(tuple(result.logprobs))
    for block in result.blocks:
        if isinstance(block, TextBlock):
            yield TextDelta(block.text)
        elif isinstance(block, ReasoningBlock):
            yield ReasoningDelta(block.text)
        else:
            yield ToolCallStart(block.index, block.id, block.name)
            yield ToolCallArgs(block.index, block.arguments)
    assert result.finished is not None  # the run owner hands over only finished results
    yield result.finished


class ResponseEvents:
    """The stream as a StreamEncoder (app/streaming.py drives it): each event an SSE record named by its
    `type`, numbered from 0; keep-alives as SSE comments (the SDKs skip them)."""

    def __init__(self, builder: ResponseBuilder) -> None:
        self.builder = builder
        self._sequence = 0

    def _records(self, events: Iterable[s.Event]) -> bytes:
        out = []
        for event in events:
            event.sequence_number = self._sequence
            self._sequence += 1
            out.append(sse.named(str(type(event).__struct_config__.tag), event))
        return b"".join(out)

    def start(self) -> bytes:
        return self._records(self.builder.start())

    def event(self, index: int, event: ChatEvent) -> bytes:
        return self._records(self.builder.feed(event))

    def flush(self) -> bytes:
        return b""

    def keep_alive(self) -> bytes:
        return sse.COMMENT

    def end(self) -> bytes:
        return self._records([self.builder.end()])

    def error(self, err: ServiceError) -> bytes:
        return self._records(self.builder.fail(err))
