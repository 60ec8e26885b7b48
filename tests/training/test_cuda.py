"""The CUDA paths of training (bf16 autocast, channels_last, device-side DropBlock masks, EMA, CUDA RNG
state in resume). They only run where a GPU is present, e.g. on the lent device by
`benchmarks/train_gpu.sh`; everywhere else they skip."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from training.checkpoint import load_checkpoint
from training.config import recipe
from training.device import precision
from training.models import create_model, list_models
from training.models.layers import DropBlock, set_dropblock_progress
from training.trainer import fit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("name", list_models())
def test_bf16_channels_last_step_on_cuda(name: str) -> None:
    device = torch.device("cuda")
    model = create_model(name).to(device).to(memory_format=torch.channels_last).train()
    set_dropblock_progress(model, 1.0)
    x = torch.randn(64, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x)
    outputs = out if isinstance(out, tuple) else (out,)  # InceptionNet adds its auxiliary logits in training
    assert all(o.dtype == torch.bfloat16 and o.shape == (64, 10) for o in outputs)
    sum(o.float().sum() for o in outputs).backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    assert precision(device) == "bf16-autocast"


def test_dropblock_mask_is_sampled_on_the_gpu() -> None:
    block = DropBlock(0.3, 3).cuda().train()
    block.set_progress(1.0)
    y = block(torch.ones(8, 4, 16, 16, device="cuda"))
    assert y.is_cuda and (y == 0).any()


def test_resume_on_cuda_ends_with_the_same_weights(tiny_image_folder: Path, tmp_path: Path) -> None:
    base = replace(
        recipe("se_net", "smoke"), data_dir=str(tiny_image_folder), epochs=2, batch_size=16, per_class=0,
        test_per_class=0, ema_decay=0.9, progress=False, device="cuda", model_kwargs={"drop_block": 0.2},
    )  # fmt: skip
    fit(replace(base, out_dir=str(tmp_path / "a")))
    fit(replace(base, out_dir=str(tmp_path / "b"), stop_after=1))
    fit(replace(base, out_dir=str(tmp_path / "b"), resume=True))
    a = load_checkpoint(tmp_path / "a" / "se_net" / "last.pt")["train_state"]["model"]
    b = load_checkpoint(tmp_path / "b" / "se_net" / "last.pt")["train_state"]["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
