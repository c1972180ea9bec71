"""SGLang's /generate wire shapes (sglang/srt/managers/io_struct.py `GenerateReqInput`, sampling_params.py
`SamplingParams`), decoded with msgspec; unknown fields are ignored, as SGLang's other options are here."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from app.openai.schemas import Penalty, Probability, RepetitionPenalty, Seed, Temperature, TopK


class NativeSamplingParams(Struct):
    max_new_tokens: Annotated[int, Meta(ge=0)] | None = 128  # SGLang's default; null: up to the context window
    min_new_tokens: Annotated[int, Meta(ge=0)] = 0
    temperature: Temperature = 1.0
    top_p: Probability = 1.0
    top_k: TopK = -1
    min_p: Probability = 0.0
    frequency_penalty: Penalty = 0.0
    presence_penalty: Penalty = 0.0
    repetition_penalty: RepetitionPenalty = 1.0
    stop: str | list[str] | None = None
    stop_token_ids: list[Annotated[int, Meta(ge=0)]] | None = None
    ignore_eos: bool = False
    skip_special_tokens: bool = True
    n: Annotated[int, Meta(ge=1, le=16)] = 1
    sampling_seed: Seed | None = None
    logit_bias: dict[str, float] | None = None
    json_schema: str | None = None  # at most one of these four (as SGLang checks)
    regex: str | None = None
    ebnf: str | None = None
    structural_tag: str | None = None


class GenerateRequest(Struct):
    text: str | list[str] | None = None
    input_ids: list[Any] | None = None  # token ids, or a list of them (a batch)
    sampling_params: NativeSamplingParams = msgspec.field(default_factory=NativeSamplingParams)
    stream: bool = False
    model: str | None = None  # (SGLang serves one model; checked when given)
    # A LoRA adapter's name (--lora-paths) for every prompt, or one per prompt (null: the base model), as SGLang
    lora_path: str | list[str | None] | None = None


class NativeFinishReason(Struct, omit_defaults=True):
    type: str  # "stop", "length" or "abort"
    matched: str | int | None | UnsetType = UNSET  # stop: the stop string that ended it (null: end of turn)
    length: int | UnsetType = UNSET  # length: how many tokens were generated


class MetaInfo(Struct):
    id: str
    finish_reason: NativeFinishReason | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int


class GenerateOut(Struct, omit_defaults=True):
    text: str
    output_ids: list[int]
    meta_info: MetaInfo
    index: int | UnsetType = UNSET  # in a stream of several outputs: which one this chunk belongs to


generate_request_decoder = msgspec.json.Decoder(GenerateRequest)
