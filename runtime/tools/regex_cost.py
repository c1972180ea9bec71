"""What a JSON-schema `pattern` costs xgrammar to compile, estimated from the regex alone.

xgrammar 0.2.7 turns a regex into grammar rules, unrolling each bounded repetition up to 128 copies (above
that it keeps one repeated rule), and then precomputes, for every state, which vocabulary tokens may follow.
Measured with a 49k vocabulary on 2 cores (the default model's; a 151k one is about 3x slower):

- One repetition costs about its bound: `[a-z]{0,1000}` 0.27 s, `.{0,100}` 0.63 s.
- Nested repetitions multiply: `((a{0,20}){0,20}){0,20}` (8,000 positions) 11 s, `((a{0,30}){0,30}){0,30}`
  minutes.
- Worse when the repeated body has a variable length: a string then splits into the repetitions in many
  ways, and each way is a parse the mask precomputation follows. `(.{0,5}){0,5}` 1.8 s, `(.{0,6}){0,6}` 3.1 s,
  `(.{0,2}){0,20}` 9 s, `(.{0,8}){0,8}` over 20 s, although each has under 100 positions.
- A body that starts or ends with a character nothing else in it matches (`(\\d{1,3}\\.){3}`, `(/[^/]+)+`)
  splits one way only: IPv4, e-mail, path and semver patterns compile in milliseconds.

So the estimate, in "positions": an atom is 1; a sequence or alternation adds its parts; a repetition
multiplies its body by its count (bounded count, or `min + 1` for an open one: the loop is one rule; above 128,
256), and a variable-length body that is not delimited and may repeat squares that product.

The parser takes ECMA-262 syntax as JSON Schema uses it and never fails: what it does not know it reads as
an atom (xgrammar refuses invalid patterns when it compiles them; the estimate only needs their shape).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

# Above this many copies xgrammar 0.2.7 repeats one rule instead of unrolling (RepetitionRangeExpander's
# kUnzipThreshold); such a repetition measured flat at about 256 positions' cost whatever its bound.
UNROLL_LIMIT = 128
ROLLED_COST = 256
# Estimates are capped here: enough to compare with any budget, small enough to stay cheap to compute.
COST_CAP = 10**12
# Groups nested deeper than this are not read on: the pattern is estimated at COST_CAP (and the parser, which
# recurses per group, stays far from Python's recursion limit).
MAX_GROUP_DEPTH = 100
# Longer patterns are estimated at COST_CAP unread (real ones, e-mail and URL validators included, are shorter;
# reading one costs a few microseconds a character).
MAX_PATTERN_CHARS = 2048

CharTest = Callable[[str], bool]


def _any(_: str) -> bool:
    return True


_ESCAPE_CLASSES: dict[str, CharTest] = {
    "d": lambda c: "0" <= c <= "9",
    "w": lambda c: c.isascii() and (c.isalnum() or c == "_"),
    "s": lambda c: c.isspace(),
}
_ESCAPE_CHARS = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "0": "\0"}


@dataclass(frozen=True, slots=True)
class Shape:
    """A regex node's estimated cost and the lengths of what it matches (max None: unbounded)."""

    cost: int
    min_len: int
    max_len: int | None
    first: str | None = None  # the one literal character every match starts with, where there is one
    last: str | None = None  # likewise for the end
    atoms: tuple[CharTest, ...] = ()  # each atom's character test, for the delimiter check

    @property
    def fixed(self) -> bool:
        return self.max_len == self.min_len


_EMPTY = Shape(0, 0, 0)


def _atom(test: CharTest, literal: str | None = None) -> Shape:
    return Shape(1, 1, 1, literal, literal, (test,))


def _edge(parts: list[Shape]) -> str | None:
    """The literal the first of `parts` that matches anything at all must start with (None if optional)."""
    for p in parts:
        if p.max_len != 0:
            return p.first if p.min_len > 0 else None
    return None


def _concat(parts: list[Shape]) -> Shape:
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return _EMPTY
    max_len: int | None = 0
    for p in parts:
        max_len = None if max_len is None or p.max_len is None else max_len + p.max_len
    reversed_parts = [Shape(p.cost, p.min_len, p.max_len, p.last) for p in reversed(parts)]
    return Shape(min(sum(p.cost for p in parts), COST_CAP), sum(p.min_len for p in parts), max_len,
                 _edge(parts), _edge(reversed_parts), tuple(t for p in parts for t in p.atoms))


def _alternation(branches: list[Shape]) -> Shape:
    if len(branches) == 1:
        return branches[0]
    lengths = [b.max_len for b in branches]
    return Shape(min(sum(b.cost for b in branches), COST_CAP), min(b.min_len for b in branches),
                 None if None in lengths else max(x for x in lengths if x is not None),
                 atoms=tuple(t for b in branches for t in b.atoms))


def _delimited(body: Shape) -> bool:
    """The body starts (or ends) with a literal character that no other atom of it matches: consecutive
    copies then split a string one way only."""
    return any(d is not None and sum(1 for test in body.atoms if test(d)) == 1 for d in (body.first, body.last))


def repetition_count(low: int, high: int | None) -> int:
    """How many copies of its body a repetition puts in the grammar."""
    count = high if high is not None else low + 1
    return ROLLED_COST if count > UNROLL_LIMIT else count


def _repeat(body: Shape, low: int, high: int | None) -> Shape:
    count = repetition_count(low, high)
    cost = body.cost * count
    if count > 1 and not body.fixed and not _delimited(body):
        cost = cost * cost
    max_len = None if high is None or body.max_len is None else body.max_len * high
    return Shape(min(cost, COST_CAP), body.min_len * low, max_len, atoms=body.atoms)


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.at = 0
        self.largest_bound = 0  # the largest {m,n} number seen
        self.depth = 0  # groups open at the cursor

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def take(self) -> str:
        c = self.peek()
        self.at += 1
        return c

    def alternation(self) -> Shape:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.at += 1
            branches.append(self.sequence())
        return _alternation(branches)

    def sequence(self) -> Shape:
        parts: list[Shape] = []
        while self.peek() not in ("", "|", ")"):
            parts.append(self.quantified(self.atom()))
        return _concat(parts)

    def atom(self) -> Shape:
        c = self.take()
        if c in "^$":
            return _EMPTY
        if c == ".":
            return _atom(lambda ch: ch != "\n")
        if c == "[":
            return _atom(self.char_class())
        if c == "(":
            return self.group()
        if c == "\\":
            return self.escape()
        return _atom(lambda ch, x=c: ch == x, c)

    def group(self) -> Shape:
        if self.depth >= MAX_GROUP_DEPTH:
            self.at = len(self.text)
            return Shape(COST_CAP, 0, None)
        lookaround = False
        if self.text.startswith("?", self.at):
            self.at += 1
            if self.text.startswith(("=", "!"), self.at):
                lookaround = True
                self.at += 1
            elif self.text.startswith(("<=", "<!"), self.at):
                lookaround = True
                self.at += 2
            elif self.peek() == "<":  # a named group
                end = self.text.find(">", self.at)
                self.at = end + 1 if end != -1 else len(self.text)
            elif self.peek() == ":":
                self.at += 1
        self.depth += 1
        inner = self.alternation()
        self.depth -= 1
        if self.peek() == ")":
            self.at += 1
        return Shape(inner.cost, 0, 0) if lookaround else inner

    def escape(self) -> Shape:
        c = self.take()
        if c in "bB":
            return _EMPTY
        if c.lower() in _ESCAPE_CLASSES:
            test = _ESCAPE_CLASSES[c.lower()]
            return _atom(test if c.islower() else (lambda ch, t=test: not t(ch)))
        if c in "pP" and self.peek() == "{":  # a Unicode property: some class of characters
            end = self.text.find("}", self.at)
            self.at = end + 1 if end != -1 else len(self.text)
            return _atom(_any)
        if c in "xu":
            return _atom(*self.code_point(c))
        literal = _ESCAPE_CHARS.get(c, c)
        return _atom(lambda ch, x=literal: ch == x, literal) if literal else _atom(_any)

    def code_point(self, kind: str) -> tuple[CharTest, str | None]:
        """`\\xHH`, `\\uHHHH` or `\\u{H...}` after the cursor (consumed): its character's test."""
        if kind == "u" and self.peek() == "{":
            end = self.text.find("}", self.at)
            digits, self.at = self.text[self.at + 1 : end], end + 1 if end != -1 else len(self.text)
        else:
            size = 2 if kind == "x" else 4
            digits, self.at = self.text[self.at : self.at + size], self.at + size
        try:
            char = chr(int(digits, 16))
        except (ValueError, OverflowError):
            return _any, None
        return (lambda ch: ch == char), char

    def char_class(self) -> CharTest:
        negated = self.peek() == "^"
        if negated:
            self.at += 1
        items: list[CharTest] = []
        first = True
        while self.peek() and (self.peek() != "]" or first):
            first = False
            c = self.take()
            if c == "\\":
                e = self.take()
                if e.lower() in _ESCAPE_CLASSES:
                    test = _ESCAPE_CLASSES[e.lower()]
                    items.append(test if e.islower() else (lambda ch, t=test: not t(ch)))
                    continue
                if e in "xu":
                    items.append(self.code_point(e)[0])
                    continue
                if e in "pP":
                    items.append(_any)
                    continue
                c = _ESCAPE_CHARS.get(e, e)
            if self.peek() == "-" and self.text[self.at + 1 : self.at + 2] not in ("]", ""):
                self.at += 1
                end = self.take()
                if end == "\\":
                    end = _ESCAPE_CHARS.get(self.take(), "\uffff")
                items.append(lambda ch, lo=c, hi=end: lo <= ch <= hi)
            else:
                items.append(lambda ch, x=c: ch == x)
        if self.peek() == "]":
            self.at += 1
        if negated:
            return lambda ch: not any(t(ch) for t in items)
        return lambda ch: any(t(ch) for t in items)

    def quantified(self, body: Shape) -> Shape:
        while True:
            c = self.peek()
            if c in ("*", "+", "?"):
                self.at += 1
                low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
            elif c == "{" and (bounds := self.braces()) is not None:
                low, high = bounds
            else:
                return body
            if self.peek() in ("?", "+"):  # lazy or possessive: the same language
                self.at += 1
            body = _repeat(body, low, high)

    def braces(self) -> tuple[int, int | None] | None:
        """`{n}`, `{n,}` or `{n,m}` at the cursor (consumed), else None (a literal brace)."""
        end = self.text.find("}", self.at)
        if end == -1:
            return None
        low, comma, high = self.text[self.at + 1 : end].partition(",")
        if not low.isdigit() or (high and not high.isdigit()):
            return None
        # A 5,000-digit bound is no number xgrammar would unroll either: clamp before int() refuses it.
        low_n = int(low) if len(low) < 12 else COST_CAP
        high_n = (int(high) if len(high) < 12 else COST_CAP) if high else (None if comma else low_n)
        self.at = end + 1
        self.largest_bound = max(self.largest_bound, low_n, high_n or 0)
        return low_n, high_n


@dataclass(frozen=True, slots=True)
class PatternCost:
    positions: int  # the estimate
    largest_bound: int  # the largest {m,n} number in it


@functools.lru_cache(maxsize=1024)
def pattern_cost(pattern: str) -> PatternCost:
    if len(pattern) > MAX_PATTERN_CHARS:
        return PatternCost(COST_CAP, 0)
    parser = _Parser(pattern)
    shape = parser.alternation()
    while parser.at < len(parser.text):  # a stray ")": read on, as a literal
        parser.at += 1
        shape = _concat([shape, parser.alternation()])
    return PatternCost(shape.cost, parser.largest_bound)
