"""The projections' matmul: MKL for one row, oneDNN on a weight reordered once into its blocked layout for more.

A decode step multiplies a few rows (one per running sequence) by every weight matrix. MKL's sgemm, which
`x @ w` calls on a CPU, is fast for one row and slow for a few: on this machine's AVX-512 cores (1 thread, all
121 matrices of the default model, ms) it took 32 / 49 / 74 / 115 for 1 / 2 / 4 / 16 rows, where oneDNN's
brgemm on a pre-reordered weight took 39 / 45 / 33 / 61 (33 for 2 rows padded to 4), and 344 against 444 for
128 rows (prefill). In a whole decode step, one row through oneDNN (padded) still cost ~15 % more CPU than
MKL's, so a one-row step (a single stream) keeps MKL and the weight is held in both layouts (float32: twice
the weights' memory). Fewer than MIN_ROWS rows are padded with zero rows: a row's result depends neither on
the rows beside it nor on how many there are (bit for bit, 4 against 16 rows), so a sequence's tokens do not
depend on what it is batched with. The reorder and the op are the ones torch.compile's CPU backend uses
(torch._inductor's mkldnn_fusion); other dtypes, and builds without oneDNN, keep MKL for every row count.
"""

from __future__ import annotations

import torch

MIN_ROWS = 4
# The reordered copy doubles the weights' memory: kept only while that copy takes at most this share of the
# memory available at load (the default model's 0.5 GB always fits; a 7B model in float32 on a 32 GB machine
# does not, and runs on MKL alone).
PACKED_SHARE = 0.25


def packing_fits(weight_bytes: int) -> bool:
    """Whether a second, reordered copy of `weight_bytes` of weights fits in PACKED_SHARE of available memory."""
    import os

    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not Linux: no figure, no copy
        return False
    return weight_bytes <= PACKED_SHARE * available


class Linear:
    """x @ weight^T (+ bias) for x of shape [rows, in_features]; `weight` is [out_features, in_features]."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, *, packed: bool = True) -> None:
        self.out_features, self.in_features = weight.shape
        self.bias = bias
        self._dense = weight.t().contiguous()  # [in, out]: MKL's plain (NN) sgemm, the fastest for one row
        self._packed = None
        if packed and weight.dtype == torch.float32 and torch.backends.mkldnn.is_available():
            self._packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.shape[0]
        if rows == 1 or self._packed is None:
            return x @ self._dense if self.bias is None else torch.addmm(self.bias, x, self._dense)
        x = x.contiguous()
        if rows < MIN_ROWS:
            x = torch.cat((x, x.new_zeros(MIN_ROWS - rows, x.shape[1])))
        out = torch.ops.mkldnn._linear_pointwise(x, self._packed, self.bias, "none", [], "")
        return out[:rows] if rows < MIN_ROWS else out
