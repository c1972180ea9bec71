"""Decode attention alone, three ways, at 16 sequences of the default model's attention shape (30 layers, 3 KV
heads of 64, 3 query heads each): what one step costs when every sequence's keys are gathered from a token-major
or a head-major pool and attended in one SDPA call, and when each sequence attends alone, to its keys gathered
from scattered blocks or read in place (one run of consecutive slots), as the CPU engine does from 256 tokens of
context (bench/RESULTS.md section 0).

    python -m bench.attention_layouts --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

LAYERS, KV_HEADS, GROUPS, HEAD_DIM, SEQUENCES, SPACING = 30, 3, 3, 64, 16, 4096


def _gathered(k_pool, v_pool, q, length: int, head_major: bool):
    slots = torch.stack([torch.arange(length) + SPACING * b for b in range(SEQUENCES)]).reshape(-1)
    mask = torch.ones(SEQUENCES, 1, 1, length, dtype=torch.bool)

    def step() -> None:
        for k, v in zip(k_pool, v_pool):
            if head_major:
                keys = k.index_select(1, slots).view(KV_HEADS, SEQUENCES, length, HEAD_DIM).transpose(0, 1)
                values = v.index_select(1, slots).view(KV_HEADS, SEQUENCES, length, HEAD_DIM).transpose(0, 1)
            else:
                keys = k.index_select(0, slots).view(SEQUENCES, length, KV_HEADS, HEAD_DIM).transpose(1, 2)
                values = v.index_select(0, slots).view(SEQUENCES, length, KV_HEADS, HEAD_DIM).transpose(1, 2)
            F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=HEAD_DIM ** -0.5)
    return step


def _alone(k_pool, v_pool, q, length: int, gather: bool):
    """Each sequence on its own: its keys read in place (one run), or gathered from scattered blocks."""
    blocks = torch.randperm(SEQUENCES * SPACING // 16)[: SEQUENCES * (-(-length // 16))].view(SEQUENCES, -1)
    slots = (blocks[:, :, None] * 16 + torch.arange(16)).view(SEQUENCES, -1)[:, :length]

    def step() -> None:
        scaled = q * HEAD_DIM ** -0.5
        for k, v in zip(k_pool, v_pool):
            for b in range(SEQUENCES):
                if gather:
                    keys, values = k.index_select(1, slots[b]), v.index_select(1, slots[b])
                else:
                    keys, values = k[:, SPACING * b : SPACING * b + length], v[:, SPACING * b : SPACING * b + length]
                weights = torch.softmax(torch.matmul(scaled[b], keys.transpose(1, 2)), dim=-1)
                torch.matmul(weights, values)
    return step


def _time(step, repeats: int) -> float:
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--lengths", default="64,256,1024,3000")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    slots = SEQUENCES * SPACING
    token_major = [torch.randn(slots, KV_HEADS, HEAD_DIM) for _ in range(2 * LAYERS)]
    head_major = [torch.randn(KV_HEADS, slots, HEAD_DIM) for _ in range(2 * LAYERS)]
    q = torch.randn(SEQUENCES, KV_HEADS, GROUPS, HEAD_DIM)
    print("| context | all gathered, token-major pool | all gathered, head-major | each alone, gathered (scattered"
          " blocks) | each alone, in place |")
    print("|---|---|---|---|---|")
    for length in (int(x) for x in args.lengths.split(",")):
        cells = [_time(_gathered(token_major[:LAYERS], token_major[LAYERS:], q, length, False), args.repeats),
                 _time(_gathered(head_major[:LAYERS], head_major[LAYERS:], q, length, True), args.repeats),
                 _time(_alone(head_major[:LAYERS], head_major[LAYERS:], q, length, True), args.repeats),
                 _time(_alone(head_major[:LAYERS], head_major[LAYERS:], q, length, False), args.repeats)]
        print(f"| {length:,} | " + " | ".join(f"{1e3 * c:.1f} ms" for c in cells) + " |")


if __name__ == "__main__":
    main()
