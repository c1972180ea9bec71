"""Fuzzing a live server: schemathesis cases from its /openapi.json (valid and invalid), and malformed bodies
of our own (broken JSON, deep nesting, wrong types, huge numbers, odd content types). Every answer is recorded
by status; tests/test_fuzz.py asserts none is a 5xx, and `python -m tests.fuzzing URL N` runs a bigger pass and
prints the counts."""

from __future__ import annotations

import collections
import json
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

REQUEST_TIMEOUT_S = 60  # a queue wait (bounded by the server's --max-queue-wait) plus a short generation
TIMED_OUT = 999  # the status recorded for a request that got no answer in time: a failure, like a 5xx
POST_ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/messages/count_tokens",
               "/tokenize", "/detokenize", "/v1/responses")


@dataclass
class Tally:
    by_status: collections.Counter = field(default_factory=collections.Counter)
    server_errors: list[str] = field(default_factory=list)

    def record(self, label: str, status: int, body: object, answer: str) -> None:
        self.by_status[status] += 1
        if status >= 500:  # TIMED_OUT included
            self.server_errors.append(f"{label} -> {status}\nbody: {body!r:.600}\nanswer: {answer[:600]}")


def fuzz_schema(base_url: str, examples: int, tally: Tally, model: str,
                headers: dict[str, str] | None = None) -> None:
    """`examples` schemathesis cases per route and mode (positive, negative). Valid cases name the served
    model (a random name is only a 404 and would test nothing past it)."""
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json", headers=headers or {})
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def call(case: schemathesis.Case) -> None:
                if mode is GenerationMode.POSITIVE and isinstance(case.body, dict) and "model" in case.body:
                    case.body["model"] = model
                label = f"{case.method} {case.path} ({mode.value})"
                try:
                    response = case.call(base_url=base_url, session=session, headers=headers,
                                         timeout=REQUEST_TIMEOUT_S)
                except requests.Timeout:
                    tally.record(label, TIMED_OUT, case.body, f"no answer within {REQUEST_TIMEOUT_S} s")
                    return
                tally.record(label, response.status_code, case.body, response.text)

            call()


def malformed_bodies(rng: random.Random, model: str) -> Iterator[tuple[str, bytes, str]]:
    """(path, body, content type) forever: each a small variation on a valid request, broken one way."""
    chat = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    message = {"model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
    bases = {"/v1/chat/completions": chat, "/v1/completions": {"model": model, "prompt": "hi", "max_tokens": 4},
             "/v1/messages": message, "/v1/messages/count_tokens": {"model": model, "messages": message["messages"]},
             "/tokenize": {"prompt": "hi"}, "/detokenize": {"tokens": [1, 2]},
             "/v1/responses": {"model": model, "input": [{"role": "user", "content": "hi"}], "max_output_tokens": 4}}
    odd_values = [None, True, -1, 0, 2**63, -(2**63) - 1, 1e308, -1e308, 1.5, "", "x" * 5000, "\u0000", "\ud800",
                  [], {}, [[]], {"type": "weird"}, [None], "NaN", 10**400]

    def deep(depth: int) -> str:
        opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
        return opener * depth + "1" + closer * depth

    def deep_schema(depth: int) -> bytes:
        return (b'{"type":"object","properties":{"a":' * depth + b'{"type":"string"}' + b"}}" * depth)

    breakers: list[Callable[[str, dict], tuple[bytes, str]]] = [
        lambda p, b: (json.dumps(b)[: rng.randrange(1, len(json.dumps(b)))].encode(), "application/json"),
        lambda p, b: (deep(rng.choice([100, 1000, 10000, 100000])).encode(), "application/json"),
        lambda p, b: (json.dumps({**b, rng.choice(list(b)): rng.choice(odd_values)}).encode(), "application/json"),
        lambda p, b: (json.dumps({**b, "messages": [{"role": rng.choice(["user", "assistant", "tool", "system",
                                                                         "x", None]),
                                                     "content": rng.choice(odd_values)}]}).encode(),
                      "application/json"),
        lambda p, b: (json.dumps(b)[:-1].encode() + b', "tools": [{"type": "function", "name": "f", "input_schema": '
                      + deep_schema(rng.choice([50, 500, 3000])) + b', "function": {"name": "f", "parameters": '
                      + deep_schema(rng.choice([50, 500, 3000])) + b"}}]}", "application/json"),
        lambda p, b: (rng.randbytes(rng.randrange(0, 200)), rng.choice(["application/json", "text/plain", ""])),
        lambda p, b: (json.dumps(rng.choice(odd_values)).encode(), "application/json"),
        lambda p, b: (json.dumps(b).encode(), rng.choice(["text/plain", "multipart/form-data",
                                                          "application/x-www-form-urlencoded", "application/xml"])),
        lambda p, b: (b"\xef\xbb\xbf" + json.dumps(b).encode(), "application/json"),
        lambda p, b: (json.dumps({**b, "n": rng.choice([0, 1, 2, 5, 100, -1])}).encode(), "application/json"),
    ]
    while True:
        path = rng.choice(POST_ROUTES)
        body, content_type = rng.choice(breakers)(path, bases[path])
        yield path, body, content_type


def fuzz_malformed(base_url: str, count: int, tally: Tally, model: str, seed: int = 0,
                   headers: dict[str, str] | None = None) -> None:
    rng = random.Random(seed)
    session = requests.Session()
    bodies = malformed_bodies(rng, model)
    for _ in range(count):
        path, body, content_type = next(bodies)
        sent = {**(headers or {}), **({"Content-Type": content_type} if content_type else {})}
        if path.startswith("/v1/messages"):
            sent["anthropic-version"] = "2023-06-01"
        try:
            response = session.post(base_url + path, data=body, headers=sent, timeout=REQUEST_TIMEOUT_S)
        except requests.Timeout:
            tally.record(f"POST {path} (malformed)", TIMED_OUT, body[:300], f"no answer within {REQUEST_TIMEOUT_S} s")
            continue
        tally.record(f"POST {path} (malformed)", response.status_code, body[:300], response.text)


if __name__ == "__main__":
    url, examples, malformed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    model = sys.argv[4] if len(sys.argv) > 4 else "test-model"
    tally = Tally()
    fuzz_schema(url, examples, tally, model)
    print("schemathesis:", dict(sorted(tally.by_status.items())), sum(tally.by_status.values()), flush=True)
    own = Tally()
    fuzz_malformed(url, malformed, own, model)
    print("malformed:", dict(sorted(own.by_status.items())), sum(own.by_status.values()))
    for error in tally.server_errors + own.server_errors:
        print("----\n" + error)
