"""Grammar compile time of each tool format for Claude Code's 24-tool set (tests/claude_code/request.py).

    python -m bench.tool_format_compile [--model PATH] [--repeat N] [--formats NAME,NAME]

Each format's structural tag for the set (tool_choice auto and required, the schemas relaxed as a request's
are) is compiled with xgrammar against one tokenizer, the same for every format so the figures compare
(default: the default model's, a 49k vocabulary; compile time grows with the vocabulary). A fresh compiler
per compile, so no cache helps. Prints one line per format and mode: the median of `--repeat` compiles.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import xgrammar as xgr
from transformers import AutoConfig, AutoTokenizer

from runtime.model import DEFAULT_MODEL, resolve_model_path
from runtime.tools.registry import format_names, get_format
from runtime.tools.schemas import normalise_parameters, relax
from runtime.types import Tool, ToolChoice, ToolChoiceMode
from tests.claude_code.request import tools as claude_code_tools


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model whose tokenizer compiles the grammars")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--formats", default=",".join(format_names()[1:]), help="comma-separated formats to compile")
    args = parser.parse_args()
    path = resolve_model_path(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=AutoConfig.from_pretrained(path).vocab_size)
    tools = tuple(Tool(t["name"], t["description"], normalise_parameters(t["input_schema"], "tools"))
                  for t in claude_code_tools())
    schemas = {t.name: relax(t.parameters)[0] for t in tools}
    print(f"{len(tools)} tools, tokenizer of {path} ({info.vocab_size} tokens), {args.threads} compile threads")
    for name in args.formats.split(","):
        fmt = get_format(name)
        for mode in (ToolChoiceMode.AUTO, ToolChoiceMode.REQUIRED):
            tag = json.dumps(fmt.structural_tag(tools, schemas, ToolChoice(mode, None, True), None), ensure_ascii=False)
            seconds = []
            for _ in range(args.repeat):
                compiler = xgr.GrammarCompiler(info, max_threads=args.threads, cache_enabled=False)
                start = time.perf_counter()
                compiler.compile_structural_tag(tag)
                seconds.append(time.perf_counter() - start)
            print(f"{name:14} {mode.value:9} {statistics.median(seconds):6.2f} s")


if __name__ == "__main__":
    main()
