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


class Linear:
    """x @ weight^T (+ bias) for x of shape [rows, in_features]; `weight` is [out_features, in_features]."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        self.out_features, self.in_features = weight.shape
        self.bias = bias
        self._dense = weight.t().contiguous()  # [in, out]: MKL's plain (NN) sgemm, the fastest for one row
        self._packed = None
        if weight.dtype == torch.float32 and torch.backends.mkldnn.is_available():
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
