"""The CPU engine's projection matmul (runtime/engines/cpu/linear.py): right for every row count, and a row's
result independent of the rows batched with it once there are two or more (oneDNN, padded below MIN_ROWS)."""

from __future__ import annotations

import torch

from runtime.engines.cpu.linear import MIN_ROWS, Linear


def test_every_row_count_gives_x_times_w_transposed_plus_bias():
    torch.manual_seed(0)
    weight, bias, x = torch.randn(96, 64), torch.randn(96), torch.randn(20, 64)
    for linear, b in ((Linear(weight), 0.0), (Linear(weight, bias), bias)):
        for rows in (1, 2, 3, MIN_ROWS, MIN_ROWS + 1, 16, 20):
            out = linear(x[:rows])
            assert out.shape == (rows, 96)
            torch.testing.assert_close(out, x[:rows] @ weight.T + b, rtol=1e-5, atol=1e-5)


def test_a_rows_result_does_not_depend_on_its_batch():
    torch.manual_seed(1)
    linear, x = Linear(torch.randn(384, 576)), torch.randn(16, 576)
    alone_in_many = linear(x)[:2]
    for rows in (2, 3, MIN_ROWS, 9):
        assert torch.equal(linear(torch.cat((x[:2], torch.randn(rows - 2, 576))))[:2], alone_in_many)


def test_the_reordered_copy_is_kept_only_where_memory_allows(monkeypatch) -> None:
    import os

    from runtime.engines.cpu import linear as module

    pages = {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}  # 4 MB available
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    assert module.packing_fits(1_000_000) and not module.packing_fits(2_000_000)  # 25 % of it: 1.02 MB
    torch.manual_seed(2)
    weight, x = torch.randn(32, 16), torch.randn(8, 16)
    plain = Linear(weight, packed=False)
    assert plain._packed is None  # MKL for every row count, one copy of the weight
    torch.testing.assert_close(plain(x), x @ weight.T, rtol=1e-5, atol=1e-5)
