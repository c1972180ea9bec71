"""The peer tests expected to fail here, each with its reason, applied as xfail(strict=True) by conftest.py so a
test that starts passing is noticed and taken off this list. Those needing a real model's output are not run
(they cannot start passing on a random model)."""

from __future__ import annotations

REAL_MODEL = "needs a real model's output"
NOT_NAMED = "a feature issue 10 does not name"
VLLM_INTERNALS = "unit-tests vLLM's own classes, not an OpenAI server"
LORA = "LoRA: pending"
DIFFERENCE = "a deliberate difference"

# The Responses API as OpenAI defines it: usage names input_tokens/output_tokens (SGLang's: prompt_tokens), and a
# response cut by max_output_tokens is "incomplete" (response.incomplete), where SGLang says "completed".
_OPENAI_RESPONSES = (f"{DIFFERENCE}: Responses as OpenAI answers them (usage input_tokens; status incomplete when "
                     "max_output_tokens cuts it), SGLang's differ")

# SGLang's JSON kit sends stop_token_ids [119690]: a token of Llama 3's vocabulary, outside the tiny model's (a 400).
_LLAMA_STOP_ID = f"{REAL_MODEL}: Llama 3's vocabulary (stop_token_ids [119690]; outside the tiny model's, a 400)"

EXPECTED: dict[str, str] = {
    # vLLM completion/test_completion.py
    "vllm/completion/test_completion.py::test_single_completion":
        f"{REAL_MODEL}: facebook/opt-125m's tokenizer (prompt_tokens == 6)",
    "vllm/completion/test_completion.py::test_logprob_token_ids":
        f"{REAL_MODEL}: Qwen3's vocabulary (logprob_token_ids [5000]; the tiny model has 4,102 tokens, a 400)",
    "vllm/completion/test_completion.py::test_logprob_token_ids_stream":
        f"{REAL_MODEL}: Qwen3's vocabulary (logprob_token_ids [5000]; the tiny model has 4,102 tokens, a 400)",
    **{f"vllm/completion/test_completion.py::{test}": VLLM_INTERNALS for test in (
        "test_completion_request_bad_words_to_sampling_params", "test_completion_request_bad_words_default_empty",
        "test_completion_request_forwards_routed_experts_prompt_start")},
    "vllm/completion/test_completion.py::test_parallel_no_streaming":
        f"{REAL_MODEL}: choices that end their turn at different lengths",
    "vllm/completion/test_completion.py::test_parallel_streaming":
        f"{REAL_MODEL}: choices that end their turn at different lengths",
    "vllm/completion/test_completion.py::test_batch_completions": f"{NOT_NAMED}: beam search (use_beam_search)",
    # vLLM chat_completion/test_chat.py (its LoRA adapter is served as the model "zephyr-lora")
    **{f"vllm/chat_completion/test_chat.py::{test}[zephyr-lora]": f"{LORA} (the adapter zephyr-lora)" for test in (
        "test_no_logprobs_chat", "test_zero_logprobs_chat", "test_some_logprobs_chat", "test_too_many_chat_logprobs")},
    "vllm/chat_completion/test_chat.py::test_more_than_one_prompt_logprobs_chat":
        f"{REAL_MODEL}: the prompt's 4th token being zephyr's own top choice (else vLLM too returns k + 1 entries)",
    "vllm/chat_completion/test_chat.py::test_single_chat_session":
        f"{REAL_MODEL}: zephyr's tokenizer and template (prompt_tokens == 37)",
    "vllm/chat_completion/test_chat.py::test_structured_outputs_json_chat":
        f"{REAL_MODEL}: a model that closes the schema's JSON within 1000 tokens",
    "vllm/chat_completion/test_chat.py::test_response_format_json_object": f'{REAL_MODEL}: the answer {{"result": 2}}',
    "vllm/chat_completion/test_chat.py::test_response_format_json_schema": f'{REAL_MODEL}: the answer {{"result": 2}}',
    "vllm/chat_completion/test_chat.py::test_complex_message_content": f"{REAL_MODEL}: the answer 2",
    # Its second answer must differ from the first (temperature 0.7, no seed): a random model repeats its pick at
    # random (CI saw 'Python' twice). The choice constraint itself is tested in tests/test_constraints.py.
    "vllm/chat_completion/test_chat.py::test_structured_outputs_choice_chat":
        f"{REAL_MODEL}: a model that picks another language when told it disagrees",
    # The same for its IP addresses (default temperature, no seed): a repeat is rare (0 in 310 pairs) but possible;
    # the regex constraint is tested seeded in tests/test_constraints.py.
    "vllm/chat_completion/test_chat.py::test_structured_outputs_regex_chat":
        f"{REAL_MODEL}: a model that gives another IP address when asked for a different one",
    "vllm/chat_completion/test_chat.py::test_custom_role": f"{NOT_NAMED}: custom message roles",
    "vllm/chat_completion/test_chat.py::test_invocations": f"{NOT_NAMED}: SageMaker's /invocations",
    **{f"vllm/chat_completion/test_chat.py::{test}": VLLM_INTERNALS for test in (
        "test_chat_completion_request_n_parameter_to_sampling_params",
        "test_chat_completion_request_n_parameter_default",
        "test_chat_completion_request_n_parameter_various_values", "test_null_top_logprobs_is_same_as_omitted",
        "test_chat_completion_request_accepts_model_specific_reasoning_effort",
        "test_chat_completion_request_rejects_unknown_reasoning_effort",
        "test_chat_completion_request_n_parameter_exceeds_default_limit",
        "test_chat_completion_request_n_parameter_at_limit", "test_chat_completion_request_n_parameter_custom_limit",
        "test_chat_completion_request_n_parameter_massive_value")},
    # vLLM chat_completion/test_completion_with_function_calling.py (Qwen3-0.6B: the tiny Qwen3-template model)
    **{f"vllm/chat_completion/test_completion_with_function_calling.py::test_function_tool_use[plain-True-{choice}-"
       f"{stream}-Qwen/Qwen3-0.6B]": f"{REAL_MODEL}: a model that thinks when enable_thinking is on"
       for choice in ("auto", "required", "tool_choice2") for stream in ("True", "False")},
    **{f"vllm/chat_completion/test_completion_with_function_calling.py::test_function_tool_use[plain-False-auto-"
       f"{stream}-Qwen/Qwen3-0.6B]": f"{REAL_MODEL}: a model that chooses to call (tool_choice auto)"
       for stream in ("True", "False")},
    # Without max_tokens a forced call runs until the model closes it; a random model may fill the window first
    # (then no call is returned: an unfinished call never is). Streamed, the test counts the call's deltas.
    **{f"vllm/chat_completion/test_completion_with_function_calling.py::test_function_tool_use[plain-False-{choice}-"
       f"False-Qwen/Qwen3-0.6B]": f"{REAL_MODEL}: a model that closes its forced call within the window"
       for choice in ("required", "tool_choice2")},
    **{f"vllm/chat_completion/test_completion_with_function_calling.py::test_function_tool_use[watermarked-{think}-"
       f"{choice}-{stream}-Qwen/Qwen3-0.6B]": f"{NOT_NAMED}: output watermarking (--watermark-config)"
       for think in ("True", "False") for choice in ("auto", "required", "tool_choice2") for stream in ("True", "False")},
    # vLLM basic/test_basic.py
    "vllm/basic/test_basic.py::test_server_load": f"{NOT_NAMED}: vLLM's /load (--enable-server-load-tracking)",
    "vllm/basic/test_basic.py::test_health_check_engine_dead_error": VLLM_INTERNALS,
    # SGLang basic/test_openai_server.py
    "sglang/basic/test_openai_server.py::TestOpenAIServer::test_response_prefill":
        f"{REAL_MODEL}: Llama-3.1-8B-Instruct's answer (and that model id, which SGLang does not check)",
    "sglang/basic/test_openai_server.py::TestOpenAIServerv1Responses::test_response_prefill":
        f"{REAL_MODEL}: Llama-3.1-8B-Instruct's answer (and that model id, which SGLang does not check)",
    **{f"sglang/basic/test_openai_server.py::{cls}::test_regex":
       f"{REAL_MODEL}: a model that ends the regex's [\\w]+ within 128 tokens"
       for cls in ("TestOpenAIServer", "TestOpenAIServerv1Responses")},
    **{f"sglang/basic/test_openai_server.py::TestOpenAIServerv1Responses::{test}": _OPENAI_RESPONSES
       for test in ("test_response", "test_response_stream", "test_response_completion",
                    "test_response_completion_stream", "test_penalty")},
    "sglang/basic/test_openai_server.py::TestOpenAIV1Rerank": f"{NOT_NAMED}: /v1/rerank (a cross-encoder)",
    "sglang/basic/test_openai_server.py::TestOpenAIV1Score": f"{NOT_NAMED}: /v1/score",
    "sglang/basic/test_openai_server.py::TestOpenAIServerCustomLogitProcessor":
        f"{NOT_NAMED}: custom logit processors (pickled Python sent in the request)",
    # SGLang function_call/test_openai_function_calling.py (Llama-3.2-1B with its system prompt, auto tool choice)
    **{f"sglang/function_call/test_openai_function_calling.py::TestOpenAIServerFunctionCalling::{test}":
       f"{REAL_MODEL}: {why}" for test, why in (
           ("test_function_calling_format", "a model that chooses to call (tool_choice auto)"),
           ("test_function_calling_streaming_simple", "a model that chooses to call (tool_choice auto)"),
           ("test_function_calling_streaming_args_parsing", "a model that calls add(5, 7) by itself"),
           ("test_function_call_strict", "a model that calls sub(5, 7) by itself"),
           ("test_function_call_required", "a city argument naming Paris"),
           ("test_function_calling_streaming_no_tool_call", "a model that ends its turn within 2048 tokens"),
           ("test_streaming_multiple_choices_finish_reason",
            "a model that ends its turn after its calls (a random one may go on calling until max_tokens)"))},
    "sglang/function_call/test_openai_function_calling.py::TestOpenAIPythonicFunctionCalling":
        f"{REAL_MODEL}: a model that writes pythonic calls when its system prompt asks (tool_choice auto)",
    # SGLang features/ (the JSON kit's tests run under three classes, one per SGLang grammar backend)
    **{f"sglang/features/test_json_constrained.py::{cls}::{test}": reason
       for cls in ("TestJSONConstrained", "TestJSONConstrainedOutlinesBackend", "TestJSONConstrainedLLGuidanceBackend")
       for test, reason in (
           ("test_json_generate", _LLAMA_STOP_ID), ("test_mix_json_and_other", _LLAMA_STOP_ID),
           ("test_json_openai", f"{REAL_MODEL}: a model that closes its JSON within 128 tokens"))},
    "sglang/features/test_openai_server_ebnf.py::TestOpenAIServerEBNF::test_ebnf_strict_json":
        f"{REAL_MODEL}: a model that ends the grammar's [A-Za-z]+ within 64 tokens",
    "sglang/features/test_structural_tag.py::TestStructuralTagXGrammarBackend::test_stag_json_schema_openai":
        f"{REAL_MODEL}: a model that closes its JSON within 128 tokens",
}


def reason_for(nodeid: str) -> str | None:
    """`nodeid` relative to tests/peers/; an entry names one parametrization, a test (all its parameters) or a
    test class (all its tests)."""
    relative = nodeid.split("tests/peers/", 1)[-1]
    test = relative.split("[", 1)[0]
    return EXPECTED.get(relative) or EXPECTED.get(test) or EXPECTED.get(test.rsplit("::", 1)[0])
