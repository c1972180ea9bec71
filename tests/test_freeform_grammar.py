"""runtime/tools/freeform.py: a freeform tool's grammar rewritten for its text as a JSON string. The rewritten
grammar must accept exactly the JSON-escaped forms of the texts the original accepts."""

from __future__ import annotations

import json

import pytest
import xgrammar
from xgrammar.testing import _is_grammar_accept_string as accepts

from runtime.tools.freeform import json_string_grammar

CASES = [
    (xgrammar.Grammar.from_regex(r'"[a-c\\]{1,5}"\n'), ['"ab\\"\n', '"a"\n', "ab\n", '"abcabc"\n', '"\\\\"\n']),
    (xgrammar.Grammar.from_lark('start: "*** Begin\\n" /[^\\n]+/ "\\n"'),
     ['*** Begin\nhello "x" \\ y\n', "*** Begin\n\n", "*** Begin\nx\ty\u00e9\n"]),
    (xgrammar.Grammar.from_regex(r"[^a]+"), ['b"\\\t\x01z\n', "ab", "\u4e2d"]),
    (xgrammar.Grammar.from_regex(r"[ -~]+"), ['a "b" \\ c~', "a\nb"]),
    (xgrammar.Grammar.from_regex(r"[\n\t]x"), ["\nx", "\tx", "x"]),
    (xgrammar.Grammar.from_lark('start: "a\\"b" | "\\\\"'), ['a"b', "\\", "ab"]),
]


@pytest.mark.parametrize("grammar,texts", CASES, ids=[str(i) for i in range(len(CASES))])
def test_escaped_grammar_accepts_the_escaped_texts(grammar: xgrammar.Grammar, texts: list[str]) -> None:
    ebnf = str(grammar)
    escaped = json_string_grammar(ebnf)
    for text in texts:
        as_json = json.dumps(text, ensure_ascii=False)[1:-1]
        assert accepts(escaped, as_json) == accepts(ebnf, text), (text, escaped)
        if as_json != text:  # where escaping changes the text, the raw form is no longer accepted
            assert not accepts(escaped, text)
