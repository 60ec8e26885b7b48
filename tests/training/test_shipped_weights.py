"""The committed weights/ are what the README says they are: lean, self-describing, and accurate."""

import json
from pathlib import Path

import pytest
import torch

from training.checkpoint import load_checkpoint, model_from_checkpoint
from training.data import TensorLoader, load_cifar10, per_class_subset
from training.engine import evaluate
from training.models import list_models

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
# The original write-up's accuracies (val), which every shipped net must beat.
ORIGINAL = {"plain_cnn": 0.790, "inception_net": 0.707, "se_net": 0.854}


def test_weights_are_lean_half_precision_inference_checkpoints() -> None:
    total = sum(p.stat().st_size for p in WEIGHTS.rglob("*") if p.is_file())
    assert total < 25 * 2**20, f"weights/ holds {total / 2**20:.1f} MiB"
    for name in list_models():
        ckpt = load_checkpoint(WEIGHTS / name / "best.pt")
        assert "train_state" not in ckpt and ckpt["model"] == name
        floats = [v for v in ckpt["state_dict"].values() if v.is_floating_point()]
        assert all(v.dtype == torch.float16 for v in floats)
        assert not any(k.startswith(("aux1.", "aux2.")) for k in ckpt["state_dict"])
        metrics = json.loads((WEIGHTS / name / "metrics.json").read_text())
        assert ckpt["metrics"]["test_acc"] == metrics["test_acc"] > ORIGINAL[name]


@pytest.mark.parametrize("name", list_models())
def test_shipped_net_beats_the_original_on_real_test_images(name: str, shared_cifar10: Path) -> None:
    torch.set_num_threads(2)
    images, labels = load_cifar10(shared_cifar10, "test")
    keep = per_class_subset(labels, 50, seed=1)  # 500 images; the nets' margins are several points
    loader = TensorLoader(torch.from_numpy(images[keep]), torch.from_numpy(labels[keep]), 250, channels_last=True)
    model, _ = model_from_checkpoint(WEIGHTS / name / "best.pt")
    acc = evaluate(model.to(memory_format=torch.channels_last), loader, torch.device("cpu"), tta=True).acc
    claimed = json.loads((WEIGHTS / name / "metrics.json").read_text())["test_acc"]
    assert acc > ORIGINAL[name] and abs(acc - claimed) < 0.04, (acc, claimed)
