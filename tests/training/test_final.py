"""The end of a run: one test at every TTA level, named as metrics.json names them."""

import torch
from torch import nn

from training import final
from training.data import TensorLoader


class LeftHalf(nn.Module):
    """Says class 1 when the left half of the image is brighter, else 0: the mirror swaps its answer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = x[..., :16].mean((1, 2, 3)), x[..., 16:].mean((1, 2, 3))
        return torch.stack([right - left, left - right], 1) * 10


def test_levels_are_none_flip_and_flip_translate() -> None:
    images = torch.zeros(8, 32, 32, 3, dtype=torch.uint8)
    images[:, :, :16] = 255  # all brighter on the left
    labels = torch.ones(8, dtype=torch.long)
    results = final.test_levels(LeftHalf(), TensorLoader(images, labels, 4), torch.device("cpu"), amp=False)
    assert list(results) == ["none", "flip", "flip_translate"]
    assert results["none"].acc == 1.0 and results["none"].images == 8
    # With the mirror averaged in, the two answers cancel out; argmax of a tie is class 0.
    assert results["flip"].acc == 0.0


def test_epochs_by_device_counts_each_machine_of_a_run_resumed_across_sessions() -> None:
    """A long run continued on another CPU says which epochs each machine (and precision) trained."""
    avx2, amx = "cpu (AMD EPYC, AVX2, no native bf16, 2 threads)", "cpu (Intel Xeon, AMX, amx_bf16, 2 threads)"
    history = [{"epoch": 1}] + [{"epoch": e, "device": avx2, "precision": "fp32"} for e in (2, 3)]
    history += [{"epoch": 4, "device": amx, "precision": "bf16-autocast"}]
    assert final.epochs_by_device(history) == {
        "unrecorded": 1, f"{avx2}, fp32": 2, f"{amx}, bf16-autocast": 1
    }  # fmt: skip
