"""The paged KV cache: a pool of fixed-size blocks under a memory budget, and a radix tree over token blocks
that shares prompt prefixes between requests (SGLang's RadixAttention, one block per tree node).

A block is owned either by one running sequence (its private tail) or by the tree. Sequences lock the chain of
tree nodes they read (a node's `refs`); a tree node nobody locks is kept for later requests and evicted least
recently used first, leaves before their parents, when the pool runs short. Nothing is ever deep-copied: a
request that shares a prefix reads the very blocks that hold it. The one copy is a partly matching block (the
tail of a prefix ends inside it): its first tokens are copied into the request's own block, so prefixes match
to the token, not to the block, and `cached_tokens` counts exactly what was reused.

Keys and values depend on the LoRA adapter a sequence runs with (it changes the k and v projections, and every
layer's input), so each adapter has a tree of its own (a root per adapter name; None: the base model's).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import re
from dataclasses import dataclass, field

import torch

from runtime.engines.cpu.model import Shape

log = logging.getLogger(__name__)

NULL_BLOCK = 0  # kept zeroed and never handed out: padding slots point at it, so masked keys stay finite


class KVPool:
    """Keys and values of every layer, `[kv_heads, blocks * block_size, head_dim]` per layer: a token's slot is
    its block * block_size + its offset in the block. Head-major, so the keys of a run of consecutive slots are
    one strided view per head, which attention reads in place (model.py).

    Blocks are placed so that a sequence's blocks stay consecutive (an extent, as a file system places a file):
    a sequence's next blocks follow its last one when those are free, and a new extent leaves a few free blocks
    on either side for its neighbours and itself to grow into. Once the pool is full, eviction frees blocks where
    they lie and extents get shorter (attention then gathers a sequence's scattered slots: scheduler.py)."""

    def __init__(self, shape: Shape, dtype: torch.dtype, budget_bytes: int, block_size: int) -> None:
        per_token = 2 * shape.layers * shape.kv_heads * shape.head_dim * dtype.itemsize
        self.block_size = block_size
        self.num_blocks = max(2, budget_bytes // (per_token * block_size))
        slots = self.num_blocks * block_size
        # torch.empty: the operating system commits pages as they are first written, so an unused budget costs nothing.
        self.k = [torch.empty(shape.kv_heads, slots, shape.head_dim, dtype=dtype) for _ in range(shape.layers)]
        self.v = [torch.empty(shape.kv_heads, slots, shape.head_dim, dtype=dtype) for _ in range(shape.layers)]
        for t in (*self.k, *self.v):
            t[:, :block_size].zero_()
        self._is_free = bytearray(b"\x01") * self.num_blocks  # one byte a block: runs are found by a regex, in C
        self._is_free[NULL_BLOCK] = 0
        self._free_count = self.num_blocks - 1

    @property
    def free_blocks(self) -> int:
        return self._free_count

    @property
    def capacity_tokens(self) -> int:
        return (self.num_blocks - 1) * self.block_size

    def allocate(self, n: int, after: int | None = None) -> list[int] | None:
        """n free blocks, in slot order: the n following block `after` when they are free, else a new extent
        (`_place`); None when fewer than n are free."""
        if n > self._free_count:
            return None
        if n <= 0:
            return []
        free = self._is_free
        if after is not None and after + 1 + n <= self.num_blocks and free.count(1, after + 1, after + 1 + n) == n:
            taken = list(range(after + 1, after + 1 + n))
        else:
            taken = self._place(n)
        for block in taken:
            free[block] = 0
        self._free_count -= n
        return taken

    def _place(self, n: int) -> list[int]:
        """A new extent: the lowest free run with room for it and GAP_BLOCKS on either side (its neighbours grow
        into them), else the middle of the largest run, else pieces of the largest runs. Lowest first keeps the
        memory in use compact: pages of the budget never written are never committed."""
        runs: list[tuple[int, int]] = []  # (length, start) of every free run, once no run has room with gaps
        for m in _FREE_RUN.finditer(self._is_free):
            start, length = m.start(), m.end() - m.start()
            if length >= n + 2 * GAP_BLOCKS:
                first = start + (GAP_BLOCKS if start > 1 else 0)  # (nothing grows into block 1)
                return list(range(first, first + n))
            runs.append((length, start))
        runs.sort(reverse=True)
        length, start = runs[0]
        if length >= n:
            first = start + (length - n) // 2
            return list(range(first, first + n))
        taken: list[int] = []
        for length, start in runs:
            taken.extend(range(start, start + min(length, n - len(taken))))
            if len(taken) == n:
                break
        return taken

    def free(self, blocks: list[int]) -> None:
        """Blocks back to the pool. One that is already free (a bug) is logged and skipped, never counted twice:
        a block handed out twice would mix two sequences' keys, and raising here could stop the worker."""
        for block in blocks:
            if block == NULL_BLOCK or self._is_free[block]:
                log.error("KV block %d freed twice; skipped", block)
                continue
            self._is_free[block] = 1
            self._free_count += 1

    def copy_prefix(self, source: int, target: int, tokens: int) -> None:
        """The first `tokens` slots of block `source` into block `target`, every layer."""
        bs = self.block_size
        for t in (*self.k, *self.v):
            t[:, target * bs : target * bs + tokens] = t[:, source * bs : source * bs + tokens]


_FREE_RUN = re.compile(rb"\x01+")
GAP_BLOCKS = 8  # free blocks left before and after a new extent, for its neighbour and itself to grow into


@dataclass(eq=False)
class Node:
    key: tuple[int, ...]  # the block's tokens: block_size of them, fewer only in a leaf (a partly filled block)
    block: int
    parent: "Node | None"
    children: dict[tuple[int, ...], "Node"] = field(default_factory=dict)
    refs: int = 0  # running sequences reading this block
    last_used: int = 0

    def __lt__(self, other: "Node") -> bool:  # heap order: least recently used first
        return self.last_used < other.last_used


class RadixCache:
    def __init__(self, pool: KVPool) -> None:
        self.pool = pool
        self.roots: dict[str | None, Node] = {None: Node((), NULL_BLOCK, None)}
        self._clock = itertools.count(1)
        self.unlocked = 0  # tree blocks no sequence reads: what eviction can free
        self.hits = 0  # tokens served from the tree (stats)

    @property
    def root(self) -> Node:
        """The base model's tree."""
        return self.roots[None]

    def _root(self, adapter: str | None) -> Node:
        if adapter not in self.roots:
            self.roots[adapter] = Node((), NULL_BLOCK, None)
        return self.roots[adapter]

    @property
    def available_blocks(self) -> int:
        return self.pool.free_blocks + self.unlocked

    # -- reading ---------------------------------------------------------------------------------------

    def match(self, tokens: list[int] | tuple[int, ...], limit: int,
              adapter: str | None = None) -> tuple[list[Node], Node | None, int]:
        """The longest cached prefix of tokens[:limit] computed with `adapter`: (whole-block chain, a partly
        matching block or None, how many of its first tokens match)."""
        bs = self.pool.block_size
        node, i, chain = self._root(adapter), 0, []
        now = next(self._clock)
        while i + bs <= limit:
            child = node.children.get(tuple(tokens[i : i + bs]))
            if child is None:
                break
            child.last_used = now
            chain.append(child)
            node, i = child, i + bs
        best, best_n = None, 0
        if i < limit:
            rest = tokens[i : min(limit, i + bs)]
            for child in node.children.values():
                n = _common_prefix(child.key, rest)
                if n > best_n:
                    best, best_n = child, n
            if best is not None:
                best.last_used = now
        return chain, best, best_n

    def lock(self, nodes: list[Node]) -> None:
        for node in nodes:
            if node.refs == 0:
                self.unlocked -= 1
            node.refs += 1

    def unlock(self, nodes: list[Node]) -> None:
        now = next(self._clock)
        for node in nodes:
            node.refs -= 1
            node.last_used = now
            if node.refs == 0:
                self.unlocked += 1

    # -- writing ---------------------------------------------------------------------------------------

    def insert(self, tokens: list[int], blocks: list[int], chain: list[Node], *, partial_tail: bool,
               keep_tail: bool = False, adapter: str | None = None) -> None:
        """Hand a sequence's blocks to the tree: `tokens` (all with keys/values in `blocks`), of which the
        blocks of `chain` are already tree nodes (locked by the caller). Whole blocks extend the chain and come
        back locked in it; a block the tree already holds for the same tokens replaces the caller's copy in
        `blocks` (freed). With `partial_tail`, a last partly filled block becomes an unlocked leaf (or is freed
        when the tree already covers it). Blocks beyond the tokens are freed, unless `keep_tail` (a running
        sequence sharing its prompt keeps writing there). `adapter`: whose tree. Mutates `blocks` and `chain`."""
        bs = self.pool.block_size
        node = chain[-1] if chain else self._root(adapter)
        whole = len(tokens) // bs
        for j in range(len(chain), whole):
            key = tuple(tokens[j * bs : (j + 1) * bs])
            child = node.children.get(key)
            if child is None:
                self._drop_covered(node, key)
                child = node.children[key] = Node(key, blocks[j], node)
                self.unlocked += 1
            elif child.block != blocks[j]:
                self.pool.free([blocks[j]])
                blocks[j] = child.block
            child.last_used = next(self._clock)
            self.lock([child])
            chain.append(child)
            node = child
        if keep_tail:
            return
        tail = len(tokens) - whole * bs
        extra = blocks[whole:]
        if partial_tail and tail:
            key = tuple(tokens[whole * bs :])
            if any(k[:tail] == key for k in node.children):
                self.pool.free(extra)
            else:
                self._drop_covered(node, key)
                node.children[key] = Node(key, extra[0], node, last_used=next(self._clock))
                self.unlocked += 1
                self.pool.free(extra[1:])
        else:
            self.pool.free(extra)
        del blocks[whole:]

    def _drop_covered(self, parent: Node, key: tuple[int, ...]) -> None:
        """Partial leaves that `key` extends hold nothing it does not: free them."""
        for k, child in list(parent.children.items()):
            if len(k) < len(key) and key[: len(k)] == k and child.refs == 0 and not child.children:
                del parent.children[k]
                self.pool.free([child.block])
                self.unlocked -= 1

    def drop_tree(self, adapter: str) -> int:
        """Free every block of `adapter`'s tree, once that adapter is unloaded (no sequence of it runs: its
        keys and values must never be matched again, e.g. by an adapter loaded later under the same name); how
        many were freed."""
        root = self.roots.get(adapter)
        nodes, stack = [], list(root.children.values()) if root is not None else []
        while stack:
            node = stack.pop()
            stack.extend(node.children.values())
            nodes.append(node)
        if any(node.refs for node in nodes):  # checked before anything is freed, whatever python's -O says
            raise RuntimeError(f"a running sequence still reads the blocks of the adapter {adapter!r}")
        self.roots.pop(adapter, None)
        self.pool.free([node.block for node in nodes])
        self.unlocked -= len(nodes)
        freed = len(nodes)
        return freed

    def evict(self, blocks: int) -> int:
        """Free at least `blocks` blocks from unlocked nodes, least recently used leaves first; how many freed."""
        leaves = [n for n in self._nodes() if n.refs == 0 and not n.children]
        heapq.heapify(leaves)
        freed = 0
        while leaves and freed < blocks:
            node = heapq.heappop(leaves)
            parent = node.parent
            assert parent is not None
            del parent.children[node.key]
            self.pool.free([node.block])
            self.unlocked -= 1
            freed += 1
            if parent.parent is not None and parent.refs == 0 and not parent.children:  # (a root stays)
                heapq.heappush(leaves, parent)
        return freed

    def allocate(self, n: int, after: int | None = None) -> list[int] | None:
        """n free blocks (following block `after` where they can: KVPool.allocate), evicting for them if need be;
        None when even eviction cannot make room."""
        if n > self.pool.free_blocks:
            self.evict(n - self.pool.free_blocks)
        return self.pool.allocate(n, after)

    def _nodes(self):
        stack = [child for root in self.roots.values() for child in root.children.values()]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.children.values())


def _common_prefix(a: tuple[int, ...], b) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
