"""Our own forward pass for the Llama family (Llama, Mistral, Qwen2, Qwen3, SmolLM): RMSNorm, RoPE (with the
scalings transformers computes up front), grouped-query attention over a paged KV pool, SwiGLU.

One call runs every scheduled token of every sequence as one flat batch: the projections and the MLP are one
matmul each over all of them (the weights are read once per step, which is what makes batching pay on a CPU),
and attention runs per group of queries against the keys gathered from the pool, or, for a long context, read
in place from the pool's runs of consecutive slots (`Batch`). The numerics follow
transformers' eager code line by line, so greedy decoding gives the same tokens (tests/test_cpu_model.py).
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from runtime.engines.cpu.linear import Linear, packing_fits
from runtime.engines.cpu.lora import LoraWeights, load_peft_adapter

log = logging.getLogger(__name__)

SUPPORTED = {"llama", "mistral", "qwen2", "qwen3"}
# RoPE types whose frequencies transformers fixes at load time; "dynamic" and "longrope" change with length.
STATIC_ROPE = {"default", "linear", "llama3", "yarn"}


def unsupported_reason(config: Any) -> str | None:
    """Why our model code cannot run this checkpoint (then the engine uses transformers), or None."""
    if getattr(config, "model_type", None) not in SUPPORTED:
        return f"model type {getattr(config, 'model_type', None)!r} is not one of {sorted(SUPPORTED)}"
    rope = (getattr(config, "rope_parameters", None) or {}).get("rope_type", "default")
    if rope not in STATIC_ROPE:
        return f"RoPE type {rope!r}"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r}"
    window = getattr(config, "sliding_window", None)
    if window and getattr(config, "use_sliding_window", True) and window < getattr(config, "max_position_embeddings", 0):
        return f"sliding-window attention ({window})"
    return None


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    eps: float
    vocab: int

    @classmethod
    def of(cls, config: Any) -> "Shape":
        heads = config.num_attention_heads
        return cls(config.num_hidden_layers, config.hidden_size, heads, getattr(config, "num_key_value_heads", heads) or heads,
                   getattr(config, "head_dim", None) or config.hidden_size // heads, config.rms_norm_eps, config.vocab_size)


@dataclass
class Layer:
    """One decoder layer's weights. Projections are `Linear`s (linear.py: oneDNN on weights reordered once;
    the numerics stay within float32 rounding of transformers')."""

    input_norm: torch.Tensor
    qkv: Linear  # q, k and v projections stacked: one matmul (with their biases, Qwen2)
    q_norm: torch.Tensor | None  # Qwen3
    k_norm: torch.Tensor | None
    o: Linear
    post_norm: torch.Tensor
    gate_up: Linear  # gate and up projections stacked
    down: Linear


@dataclass
class Batch:
    """Where one step's tokens go and what they attend to. Rows are the flat token order of the step.

    decode: the sequences feeding one token each, batched: `decode_rows` (their rows), `decode_slots`
    ([B, L] pool slots of each one's keys, padded) and `decode_mask` ([B, 1, 1, L], True where attended).
    views: (row, runs) for decoding sequences with long contexts, attending alone: each run is (first slot,
    length), consecutive slots of the pool holding the sequence's keys in order, read in place; or, where its
    slots are too scattered for that, the [L] slots to gather for it.
    chunks: (first row, row count, [L] slots, start position) for each sequence feeding several tokens.
    lora: (adapter, [rows]) for each LoRA adapter some rows run with; rows of none run the base model.
    """

    positions: torch.Tensor  # [T]
    write_slots: torch.Tensor  # [T] the pool slot each row's key/value goes to
    decode_rows: torch.Tensor | None
    decode_slots: torch.Tensor | None
    decode_mask: torch.Tensor | None
    chunks: list[tuple[int, int, torch.Tensor, int]]
    views: list[tuple[int, list[tuple[int, int]] | torch.Tensor]] = field(default_factory=list)
    lora: list[tuple[LoraWeights, torch.Tensor]] = field(default_factory=list)


class DecoderModel:
    def __init__(self, config: Any, weights: dict[str, torch.Tensor], dtype: torch.dtype) -> None:
        self.shape = s = Shape.of(config)
        self.dtype = dtype
        w = {k.removeprefix("model."): v.to(dtype) for k, v in weights.items()}
        self.packed = packing_fits(sum(t.numel() * t.element_size() for t in w.values()))  # (linear.py)
        linear = functools.partial(Linear, packed=self.packed)
        self.embed = w["embed_tokens.weight"]
        self.norm = w["norm.weight"]
        tied = getattr(config, "tie_word_embeddings", False) or "lm_head.weight" not in w
        self.lm_head = linear(self.embed if tied else w["lm_head.weight"])  # (a reordered copy when tied)
        self.layers = []
        for i in range(s.layers):
            p = f"layers.{i}."
            a, m = p + "self_attn.", p + "mlp."
            biases = [w.get(a + f"{n}_proj.bias") for n in "qkv"]
            self.layers.append(Layer(
                input_norm=w[p + "input_layernorm.weight"],
                qkv=linear(torch.cat([w[a + f"{n}_proj.weight"] for n in "qkv"]),
                           torch.cat(biases) if all(b is not None for b in biases) else None),
                q_norm=w.get(a + "q_norm.weight"), k_norm=w.get(a + "k_norm.weight"),
                o=linear(w[a + "o_proj.weight"], w.get(a + "o_proj.bias")),
                post_norm=w[p + "post_attention_layernorm.weight"],
                gate_up=linear(torch.cat([w[m + "gate_proj.weight"], w[m + "up_proj.weight"]])),
                down=linear(w[m + "down_proj.weight"]),
            ))
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        self._rotary = LlamaRotaryEmbedding(config)
        self._cos = self._sin = torch.empty(0, s.head_dim, dtype=dtype)
        self.scale = s.head_dim ** -0.5

    @classmethod
    def load(cls, path: str, config: Any, dtype: torch.dtype) -> "DecoderModel":
        from safetensors.torch import load_file

        root = Path(path)
        index = root / "model.safetensors.index.json"
        files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
        weights: dict[str, torch.Tensor] = {}
        for name in files:
            weights.update(load_file(str(root / name)))
        return cls(config, weights, dtype)

    def load_adapter(self, name: str, path: str) -> LoraWeights:
        """A PEFT LoRA adapter, in the shape of our fused projections (lora.py)."""
        s, layer = self.shape, self.layers[0]
        q, kv, inter = s.heads * s.head_dim, s.kv_heads * s.head_dim, layer.gate_up.out_features // 2
        parts = {"qkv": (q, kv, kv), "o": (s.hidden,), "gate_up": (inter, inter), "down": (s.hidden,)}
        inputs = {"qkv": s.hidden, "o": q, "gate_up": s.hidden, "down": inter}
        return load_peft_adapter(name, path, parts, inputs, s.layers, self.dtype)

    # -- pieces, each as transformers computes it ------------------------------------------------------

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:  # one fused op, bit-identical to the lines below in float32, 3x faster
            return F.rms_norm(x, (x.shape[-1],), weight, self.shape.eps)
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.shape.eps)
        return weight * h.to(x.dtype)

    def _rope_table(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        need = int(positions.max()) + 1
        if need > len(self._cos):
            size = max(need, 2 * len(self._cos), 256)
            cos, sin = self._rotary(self.embed[:1], torch.arange(size)[None])
            self._cos, self._sin = cos[0].to(self.dtype), sin[0].to(self.dtype)
        return self._cos[positions], self._sin[positions]

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    # -- the forward pass ------------------------------------------------------------------------------

    @torch.inference_mode()
    def forward(self, input_ids: torch.Tensor, batch: Batch, k_pool: list[torch.Tensor],
                v_pool: list[torch.Tensor]) -> torch.Tensor:
        """Hidden states after the final norm's input (call `logits` on the rows wanted), [T, hidden].
        Writes every row's key and value into the pools at `batch.write_slots`."""
        s = self.shape
        T = input_ids.shape[0]
        x = F.embedding(input_ids, self.embed)
        cos, sin = self._rope_table(batch.positions)
        cos, sin = cos[:, None, :], sin[:, None, :]
        q_size, kv_size = s.heads * s.head_dim, s.kv_heads * s.head_dim
        for i, layer in enumerate(self.layers):
            h = self._rms(x, layer.input_norm)
            qkv = self._project(h, layer.qkv, batch, i, "qkv")
            qk = qkv[:, : q_size + kv_size].view(T, s.heads + s.kv_heads, s.head_dim)  # rotated together
            v = qkv[:, q_size + kv_size :].view(T, s.kv_heads, s.head_dim)
            if layer.q_norm is not None:
                qk = torch.cat((self._rms(qk[:, : s.heads], layer.q_norm), self._rms(qk[:, s.heads :], layer.k_norm)), 1)
            qk = self._rotate(qk, cos, sin)
            q, k = qk[:, : s.heads], qk[:, s.heads :]
            k_pool[i].index_copy_(1, batch.write_slots, k.transpose(0, 1))
            v_pool[i].index_copy_(1, batch.write_slots, v.transpose(0, 1))
            attn = self._attention(q, k_pool[i], v_pool[i], batch)
            x = x + self._project(attn, layer.o, batch, i, "o")
            h = self._rms(x, layer.post_norm)
            gate, up = self._project(h, layer.gate_up, batch, i, "gate_up").chunk(2, dim=-1)
            x = x + self._project(F.silu(gate) * up, layer.down, batch, i, "down")
        return x

    @staticmethod
    def _project(x: torch.Tensor, linear: Linear, batch: Batch, layer: int, name: str) -> torch.Tensor:
        """The projection of x, plus each LoRA adapter's delta on its own rows only."""
        out = linear(x)
        for adapter, rows in batch.lora:
            pair = adapter.layers[layer].get(name)
            if pair is not None:
                out.index_add_(0, rows, pair.delta(x.index_select(0, rows)))
        return out

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self._rms(hidden, self.norm))

    def _attention(self, q: torch.Tensor, k_pool: torch.Tensor, v_pool: torch.Tensor, batch: Batch) -> torch.Tensor:
        """[T, heads * head_dim]. Pools are [kv_heads, slots, head_dim]. Decode rows: one SDPA over all of
        them, each query group of a KV head as a short query sequence against that head's gathered keys; long
        contexts (`views`) one at a time against the pool in place. Prefill chunks: one causal SDPA each."""
        s = self.shape
        T = q.shape[0]
        groups = s.heads // s.kv_heads
        out = q.new_empty(T, s.heads, s.head_dim)
        if batch.decode_rows is not None:
            B, L = batch.decode_slots.shape
            slots = batch.decode_slots.reshape(-1)  # (index_select: 3x faster than indexing with [])
            keys = k_pool.index_select(1, slots).view(s.kv_heads, B, L, s.head_dim).transpose(0, 1)
            values = v_pool.index_select(1, slots).view(s.kv_heads, B, L, s.head_dim).transpose(0, 1)
            queries = q[batch.decode_rows].view(B, s.kv_heads, groups, s.head_dim)
            o = F.scaled_dot_product_attention(queries, keys, values, attn_mask=batch.decode_mask, scale=self.scale)
            out[batch.decode_rows] = o.reshape(B, s.heads, s.head_dim)
        for row, where in batch.views:
            out[row] = self._attend_alone(q[row].view(s.kv_heads, groups, s.head_dim), k_pool, v_pool, where)
        for first, rows, slots, start in batch.chunks:
            keys = k_pool.index_select(1, slots)[None]  # [1, kv_heads, L, d]
            values = v_pool.index_select(1, slots)[None]
            queries = q[first : first + rows].transpose(0, 1)[None]  # [1, heads, rows, d]
            L = slots.shape[0]
            mask = None
            if start:  # row j sees keys up to start + j
                mask = torch.arange(L)[None, :] <= (start + torch.arange(rows))[:, None]
            o = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask, is_causal=not start,
                                               scale=self.scale, enable_gqa=groups > 1)
            out[first : first + rows] = o[0].transpose(0, 1)
        return out.view(T, s.heads * s.head_dim)

    def _attend_alone(self, query: torch.Tensor, k_pool: torch.Tensor, v_pool: torch.Tensor,
                      where: list[tuple[int, int]] | torch.Tensor) -> torch.Tensor:
        """One decoding sequence's attention, [heads, d]. Given runs of consecutive slots, its keys and values
        are read where they lie, a view per run, no copy: gathering copies every key of every sequence at every
        step, which costs more than the attention itself once contexts are long (bench/RESULTS.md section 0).
        Given slots, they are gathered."""
        if isinstance(where, torch.Tensor):
            parts = [(k_pool.index_select(1, where), v_pool.index_select(1, where))]
        else:
            parts = [(k_pool[:, a : a + n], v_pool[:, a : a + n]) for a, n in where]
        if query.dtype != torch.float32:  # scores, weights and the sum over runs in float32, as SDPA keeps them
            parts = [(keys.float(), values.float()) for keys, values in parts]
            query = query.float()
        query = query * self.scale  # [kv_heads, groups, d]
        scores = [torch.matmul(query, keys.transpose(1, 2)) for keys, _ in parts]
        weights = torch.softmax(scores[0] if len(scores) == 1 else torch.cat(scores, -1), dim=-1)
        o, offset = None, 0
        for _, values in parts:
            n = values.shape[1]
            w = weights[..., offset : offset + n]
            o = torch.matmul(w, values) if o is None else torch.baddbmm(o, w, values)
            offset += n
        return o.reshape(-1, query.shape[-1]).to(k_pool.dtype)
