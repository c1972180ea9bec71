"""A tiny random-weights chat model, built offline in seconds, for tests and benchmarks.

Byte-level BPE trained on the Python standard library's sources (plus some Chinese, so multi-byte
characters are split across tokens), Qwen2.5's chat template (tools rendered Hermes-style), and a
2-layer Llama with random weights. Its output is noise — which is exactly what makes it a strong test of
grammar enforcement: any valid tool call it returns is valid because of the constraint.
"""

from __future__ import annotations

import json
import sysconfig
from dataclasses import dataclass
from pathlib import Path

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TOOL_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
_CHINESE = "北京今天天气怎么样？你是一个专业的编程助手。用Python写一个快速排序。解释什么是Docker。为以下函数生成详细的docstring。"

# Qwen2.5's chat template (abridged only in wording of the default system prompt).
CHAT_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""


TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Family:
    """A model family's chat template (a file in tests/templates, see its README for the origin) and the
    tokens its tokenizer has: `special` ones (control tokens, dropped when decoding unless asked) and
    `added` plain ones, as the family's tokenizer_config.json lists them for what the template writes."""

    template: str
    special: tuple[str, ...]
    eos: tuple[str, ...]  # the first is the tokenizer's eos_token; all end a turn
    added: tuple[str, ...] = ()
    bos: str | None = None


_DEEPSEEK = ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>")
_DEEPSEEK_TOOLS = ("<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
                   "<｜tool▁sep｜>", "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>")
_DEEPSEEK_OUTPUTS = ("<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>")
_LLAMA = ("<|end_of_text|>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>",
          "<|python_tag|>")
_GLM = ("<|endoftext|>", "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>", "<think>",
        "</think>", "<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>",
        "<tool_response>", "</tool_response>")
_KIMI = ("[EOS]", "<|im_end|>", "<|im_user|>", "<|im_assistant|>", "<|im_system|>", "<|im_middle|>", "<think>", "</think>",
         "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>", "<|tool_call_begin|>",
         "<|tool_call_argument_begin|>", "<|tool_call_end|>")

# Tiny models with a family's real template and special tokens, by the tool format they are served with.
FAMILIES = {
    "glm45": Family("GLM-4.6.jinja", _GLM, eos=("<|endoftext|>", "<|user|>", "<|observation|>")),
    "glm47": Family("GLM-4.7-Flash.jinja", _GLM, eos=("<|endoftext|>", "<|user|>", "<|observation|>")),
    "kimi_k2": Family("moonshotai-Kimi-K2-Thinking.jinja", _KIMI, eos=("<|im_end|>",)),
    # DeepSeek R1's own template (its calls as R1-0528's writes them; it renders no tool list).
    "deepseek_v3": Family("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", _DEEPSEEK + _DEEPSEEK_TOOLS + _DEEPSEEK_OUTPUTS,
                          eos=("<｜end▁of▁sentence｜>",), bos="<｜begin▁of▁sentence｜>"),
    "deepseek_v31": Family("deepseek-ai-DeepSeek-V3.1.jinja", _DEEPSEEK + _DEEPSEEK_TOOLS,
                           eos=("<｜end▁of▁sentence｜>",), bos="<｜begin▁of▁sentence｜>"),
    # The tiny BPE never saw `｜` (U+FF5C): a DSML call would cost it ~140 tokens where DeepSeek's 128k vocabulary
    # needs a fraction of that. The markers as plain added tokens keep a call within the tests' budgets.
    "deepseek_v32": Family("DeepSeek-V3.2.jinja", _DEEPSEEK, eos=("<｜end▁of▁sentence｜>",),
                           bos="<｜begin▁of▁sentence｜>", added=("<｜DSML｜", "</｜DSML｜")),
    "minimax": Family("unsloth-MiniMax-M2.jinja", ("]~!b[", "]~b]", "[e~[", "<think>", "</think>",
                                                   "<minimax:tool_call>", "</minimax:tool_call>"), eos=("[e~[",)),
    # gpt-oss: harmony's markers are special tokens; <|return|> and <|call|> end a turn.
    "harmony": Family("reasoning-openai-gpt-oss-120b.jinja", ("<|endoftext|>", "<|start|>", "<|channel|>", "<|message|>",
                                                             "<|end|>", "<|return|>", "<|call|>", "<|constrain|>"),
                      eos=("<|return|>", "<|call|>")),
    # Llama 3.2 with vLLM's pythonic tool template (Meta's own asks for JSON calls).
    "pythonic": Family("vllm-tool_chat_template_llama3.2_pythonic.jinja", _LLAMA,
                       eos=("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"), bos="<|begin_of_text|>"),
    "qwen3_5": Family("Qwen3.5-4B.jinja", ("<|endoftext|>", "<|im_start|>", "<|im_end|>"), eos=("<|im_end|>",),
                      added=("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>",
                             "</think>")),
}


def _training_text() -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [f.read_text(encoding="utf-8", errors="ignore") for f in sorted(stdlib.glob("*.py"))[:60]]
    return texts + [_CHINESE * 3, json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})]


def build_tiny_model(target: Path, *, vocab_size: int = 4096, context_length: int = 65536, seed: int = 0,
                     layers: int = 2, hidden: int = 64, family: str | None = None) -> Path:
    """Write a tokenizer + random model to `target` (skipped when already there) and return it; with a
    `family` (a key of FAMILIES), that family's chat template and special tokens instead of Qwen2.5's."""
    if (target / "config.json").exists():
        return target
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    target.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    spec = FAMILIES[family] if family else Family("", tuple(SPECIAL), ("<|im_end|>",), tuple(TOOL_TOKENS))
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(spec.special), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_training_text(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=spec.eos[0], pad_token=spec.special[0],
                                   bos_token=spec.bos, unk_token=None)
    fast.add_tokens(list(spec.added))
    fast.chat_template = (TEMPLATES / spec.template).read_text(encoding="utf-8") if family else CHAT_TEMPLATE
    fast.save_pretrained(str(target))

    torch.manual_seed(seed)
    eos = [fast.convert_tokens_to_ids(t) for t in spec.eos]
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=context_length,
        tie_word_embeddings=True, eos_token_id=eos[0] if len(eos) == 1 else eos,
        pad_token_id=fast.pad_token_id, bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    # Wider weights than the default init (std 0.02), whose output collapses to one repeated token:
    # these give varied, prompt-dependent noise, so seeds, stops and streaming are really exercised.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0, 1.0 if "embed" in name else 0.3)
    model.save_pretrained(str(target))
    return target


if __name__ == "__main__":
    import sys

    print(build_tiny_model(Path(sys.argv[1]), family=sys.argv[2] if len(sys.argv) > 2 else None))
