"""Eager against compiled training: the fp32 pair is measured and shown only where the CPU has native bf16, and
the committed files of both CPU kinds render from their JSON."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import train_compile
from benchmarks.common import RESULTS


def test_the_fp32_pair_is_measured_only_where_bf16_is_native() -> None:
    assert set(train_compile.variants_for(True)) == set(train_compile.VARIANTS)
    assert set(train_compile.variants_for(False)) == set(train_compile.VARIANTS) - set(train_compile.FP32_ONLY)
    assert all(not train_compile.VARIANTS[v][3] for v in train_compile.FP32_ONLY)


@pytest.mark.parametrize(("name", "shows_fp32"), [("train_cpu", False), ("train_cpu_avx512_bf16", True)])
def test_committed_results_render_with_the_columns_they_measured(name: str, shows_fp32: bool) -> None:
    payload = json.loads((RESULTS / f"{name}.json").read_text())
    md = train_compile.render(payload)
    header = md.splitlines()[2]
    assert ("eager_fp32_img_s" in header) is shows_fp32 and ("bf16_speedup" in header) is shows_fp32
    assert ("`*_fp32`" in md) is shows_fp32
    assert (RESULTS / f"{name}.md").read_text().endswith(md + "\n")  # the committed Markdown is this rendering


def test_a_step_trains_in_the_precision_asked_for() -> None:
    seen = []
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(10))
    model(torch.randn(1, 3, 32, 32))
    model[0].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    for bf16 in (True, False):
        train_compile.training_step(model, 2, False, torch.device("cpu"), bf16)()
    assert seen == [torch.bfloat16, torch.float32]
