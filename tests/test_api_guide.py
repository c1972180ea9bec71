"""The user's API guide, example by example, against a live server (the guide's model name is an alias)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess

import openai
import pytest

GUIDE_MODEL = "qwen2.5-coder-32b-instruct"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def curl(url: str, payload: dict | None = None, *extra: str) -> str:
    args = ["curl", "-sS", "--max-time", "120", url]
    if payload is not None:
        args += ["-H", "Content-Type: application/json", "-d", json.dumps(payload, ensure_ascii=False)]
    return subprocess.run(args + list(extra), capture_output=True, text=True, check=True).stdout


def test_health(server):
    assert json.loads(curl(server.base_url + "/health")) == {"status": "ok"}


def test_models(server):
    body = json.loads(curl(server.base_url + "/v1/models"))
    assert body["object"] == "list" and body["data"][0]["object"] == "model"
    assert {"id", "object", "created", "owned_by"} <= set(body["data"][0])


CURL_PAYLOADS = {
    "basic": {"messages": [{"role": "system", "content": "你是一个专业的编程助手"},
                           {"role": "user", "content": "用Python写一个快速排序"}], "temperature": 0.7, "max_tokens": 1000},
    "code_generation": {"messages": [{"role": "user", "content": "用Python实现一个LRU缓存，要求：\n1. 支持get和put操作\n2. O(1)时间复杂度\n3. 包含完整的类型注解"}],
                        "temperature": 0.3, "max_tokens": 2000},
    "code_review": {"messages": [{"role": "user", "content": "请审查以下代码并指出问题：\n```python\ndef divide(a, b):\n    return a / b\n```"}],
                    "temperature": 0.5},
    "docstring": {"messages": [{"role": "user", "content": "为以下函数生成详细的docstring：\n```python\ndef merge_sort(arr):\n    if len(arr) <= 1:\n        return arr\n    mid = len(arr) // 2\n    left = merge_sort(arr[:mid])\n    right = merge_sort(arr[mid:])\n    return merge(left, right)\n```"}]},
}


@pytest.mark.parametrize("name", CURL_PAYLOADS)
def test_curl_examples(server, name):
    # The tiny model rarely stops by itself; cap the guide's (absent or large) max_tokens to keep this quick.
    payload = {"model": GUIDE_MODEL, **CURL_PAYLOADS[name]}
    payload["max_tokens"] = min(payload.get("max_tokens", 64), 64)
    body = json.loads(curl(server.base_url + "/v1/chat/completions", payload))
    assert body["object"] == "chat.completion" and body["model"] == GUIDE_MODEL
    assert isinstance(body["choices"][0]["message"]["content"], str)
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    assert body["usage"]["prompt_tokens"] > 20


def test_curl_streaming(server):
    out = curl(server.base_url + "/v1/chat/completions",
               {"model": GUIDE_MODEL, "messages": [{"role": "user", "content": "解释什么是Docker"}], "stream": True,
                "max_tokens": 20}, "-N")
    records = [line[len("data: "):] for line in out.splitlines() if line.startswith("data: ")]
    assert records[-1] == "[DONE]"
    chunks = [json.loads(r) for r in records[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_curl_function_calling(server):
    payload = {"model": GUIDE_MODEL, "messages": [{"role": "user", "content": "北京今天天气怎么样？"}],
               "tools": [{"type": "function", "function": {
                   "name": "get_weather", "description": "获取指定城市的天气信息",
                   "parameters": {"type": "object", "properties": {
                       "city": {"type": "string", "description": "城市名称", "maxLength": 16},
                       "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}],
               "tool_choice": "auto", "max_tokens": 100}
    body = json.loads(curl(server.base_url + "/v1/chat/completions", payload))
    choice = body["choices"][0]
    assert choice["finish_reason"] in ("stop", "length", "tool_calls")
    # "auto" on a random model: forced, the same request shows the guide's response shape (seeded: the call
    # takes 50-80 of the 100 tokens).
    payload["tool_choice"] = {"type": "function", "function": {"name": "get_weather"}}
    payload["seed"] = 0
    choice = json.loads(curl(server.base_url + "/v1/chat/completions", payload))["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "get_weather" and "city" in json.loads(call["function"]["arguments"])


def guide_python(server, code: str) -> str:
    """Run one of the guide's Python examples unchanged but for the server address; return what it printed."""
    code = code.replace("http://localhost:8000", server.base_url)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<api-guide>", "exec"), {})
    return out.getvalue()


MULTI_TURN = '''
import requests
import json

API_URL = "http://localhost:8000/v1/chat/completions"
MODEL = "qwen2.5-coder-32b-instruct"

tools = [
    {"type": "function", "function": {"name": "search_code", "description": "搜索代码仓库",
        "parameters": {"type": "object", "properties": {"query": {"type": "string", "description": "搜索关键词"},
                                                         "language": {"type": "string", "description": "编程语言"}},
                       "required": ["query"]}}},
    {"type": "function", "function": {"name": "read_file", "description": "读取文件内容",
        "parameters": {"type": "object", "properties": {"path": {"type": "string", "description": "文件路径"}},
                       "required": ["path"]}}}
]

messages = [
    {"role": "user", "content": "帮我找到快速排序的Python实现"}
]

response = requests.post(
    API_URL,
    json={
        "model": MODEL,
        "messages": messages,
        "tools": tools,
        "tool_choice": "auto"
    }
).json()

assistant_message = response["choices"][0]["message"]
messages.append(assistant_message)

if assistant_message.get("tool_calls"):
    for tool_call in assistant_message["tool_calls"]:
        function_name = tool_call["function"]["name"]
        arguments = json.loads(tool_call["function"]["arguments"])

        if function_name == "search_code":
            result = "找到文件：algorithms/sorting.py"
        elif function_name == "read_file":
            result = "def quicksort(arr): ..."

        messages.append({
            "role": "tool",
            "tool_call_id": tool_call["id"],
            "content": result
        })

    response = requests.post(
        API_URL,
        json={
            "model": MODEL,
            "messages": messages,
            "tools": tools
        }
    ).json()

    print(response["choices"][0]["message"]["content"])
'''


def test_multi_turn_example_runs_unchanged(terse_server):
    # As written: no max_tokens, so each turn is bounded only by the window. A model that ends its turns, as an
    # instruct model does, is needed for that: the random model can fill the window in turn one, and then the
    # guide's turn two (that answer plus the tool result) is over it and correctly refused with a 400.
    guide_python(terse_server, MULTI_TURN)


def test_multi_turn_example_tool_result_branch(server):
    # The first turn forced to call, so the tool-result branch runs (it prints turn two's answer); turn two still
    # has no max_tokens. The random model almost never closes an unbounded string, so the guide's string
    # parameters get a maxLength here: two strings of 16 characters, even all \uXXXX escapes (6-12 tokens each),
    # and the JSON around them always fit in the first turn's 500 tokens.
    code = MULTI_TURN.replace('"tool_choice": "auto"',
                              '"tool_choice": "required", "max_tokens": 500, "parallel_tool_calls": False')
    code = code.replace('{"type": "string", "description"', '{"type": "string", "maxLength": 16, "description"')
    assert code.count('"maxLength": 16') == 3
    assert guide_python(server, code), "turn one returned no call, so the tool-result branch never ran"


def test_turn_after_a_window_filling_answer_is_refused_in_openai_shape(server, client):
    # What the random model's unbounded turn one can lead to: the follow-up is over the window -> 400, not 500.
    long_answer = "word " * 4000
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=GUIDE_MODEL, messages=[
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": long_answer},
            {"role": "user", "content": "and?"}])
    assert caught.value.code == "context_length_exceeded"


SDK_EXAMPLE = '''
from openai import OpenAI

client = OpenAI(
    base_url="http://localhost:8000/v1",
    api_key="dummy"
)

response = client.chat.completions.create(
    model="qwen2.5-coder-32b-instruct",
    messages=[
        {"role": "system", "content": "你是一个专业的编程助手"},
        {"role": "user", "content": "写一个Python快速排序"}
    ],
    temperature=0.7,
    max_tokens=1000
)

print(response.choices[0].message.content)

stream = client.chat.completions.create(
    model="qwen2.5-coder-32b-instruct",
    messages=[{"role": "user", "content": "解释Docker的原理"}],
    stream=True
)

for chunk in stream:
    if chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="")
'''


def test_openai_sdk_example(server):
    # max_tokens lowered so the random model's answers stay short; otherwise the guide's code as written.
    code = SDK_EXAMPLE.replace("max_tokens=1000", "max_tokens=40").replace("stream=True", "stream=True, max_tokens=40")
    printed = guide_python(server, code)
    assert printed.strip()


FUNCTION_CALLING_EXAMPLE = '''
from openai import OpenAI
import json

client = OpenAI(base_url="http://localhost:8000/v1", api_key="dummy")
tools = [{"type": "function", "function": {"name": "execute_code", "description": "执行Python代码并返回结果",
          "parameters": {"type": "object", "properties": {"code": {"type": "string", "description": "要执行的Python代码"}},
                         "required": ["code"]}}}]
response = client.chat.completions.create(
    model="qwen2.5-coder-32b-instruct",
    messages=[{"role": "user", "content": "计算1到100的和"}],
    tools=tools,
    tool_choice="auto"
)
message = response.choices[0].message
if message.tool_calls:
    for tool_call in message.tool_calls:
        function_name = tool_call.function.name
        arguments = json.loads(tool_call.function.arguments)
        print(f"调用工具: {function_name}")
        print(f"参数: {arguments}")
'''


def test_function_calling_example(server):
    guide_python(server, FUNCTION_CALLING_EXAMPLE.replace('tool_choice="auto"', 'tool_choice="auto", max_tokens=60'))
    # Forced, so the call-handling branch runs. The random model almost never closes an unbounded string, so
    # `code` gets a maxLength here. A character can take a \uXXXX escape (6 tokens, 12 for a surrogate pair):
    # 16 of them and the JSON around them always fit in 300 tokens (64 did not, once in CI).
    code = FUNCTION_CALLING_EXAMPLE.replace(
        'tool_choice="auto"', 'tool_choice="required", parallel_tool_calls=False, max_tokens=300')
    code = code.replace('{"type": "string", "description"', '{"type": "string", "maxLength": 16, "description"')
    assert '"maxLength": 16' in code
    printed = guide_python(server, code)
    assert "调用工具: execute_code" in printed and "参数: {'code'" in printed
