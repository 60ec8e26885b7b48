"""The gallery's images: the shipped ones, or a seeded pick from a CIFAR-10 root (ImageFolder or torchvision's batch)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from cifarlens_runtime.constants import CLASSES
from cifarlens_runtime.files import find_cifar10
from gradio_ui import app, examples


def test_examples_cover_every_class() -> None:
    root = find_cifar10()
    if root is None or not (root / "test").is_dir():
        pytest.skip("no CIFAR-10 test data reachable (set DATA_DIR)")
    found = examples.load_examples(root)
    assert len(found) >= 20
    assert {ex.label for ex in found} == set(CLASSES)
    assert [ex.label for ex in found[:10]] == list(CLASSES)  # interleaved, so the first row shows every class
    assert all(ex.image.size == (32, 32) for ex in found)
    assert found == examples.load_examples(root)  # same seed, same pick


def test_examples_from_torchvision_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.parent.mkdir()
    labels = [i % 10 for i in range(40)]
    data = np.random.default_rng(0).integers(0, 255, (40, 3072), dtype=np.uint8)
    batch.write_bytes(pickle.dumps({"data": data, "labels": labels}))
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path / "cifar-10-batches-py")  # nothing in ./data here: only the explicit folder counts
    found = examples.load_examples(tmp_path)
    assert len(found) == 20 and {ex.label for ex in found} == set(CLASSES)


def test_without_data_the_shipped_gallery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_backend) -> None:
    """A fresh clone without CIFAR-10: 5 real test images of every class, interleaved, from gradio_ui/gallery/."""
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert find_cifar10(tmp_path / "nowhere") is None
    for found in (examples.load_examples(), examples.load_examples(tmp_path / "nowhere")):
        assert len(found) == 50 and [ex.label for ex in found[:10]] == list(CLASSES)
        assert all(sum(ex.label == c for ex in found) == 5 for c in CLASSES)
        assert all(ex.image.size == (32, 32) and ex.image.mode == "RGB" for ex in found)
    app.build_app(local_backend, [], data_note="Set DATA_DIR.")  # and the page still builds without any gallery


def test_shipped_gallery_is_real_test_images_with_true_labels(cifar10_dir: Path | None) -> None:
    """Each shipped file is byte for byte the test image of that class and number in the CIFAR-10 copy."""
    if cifar10_dir is None:
        pytest.skip("CIFAR-10 test images not found: set DATA_DIR or provide ../shared/data/cifar10")
    files = sorted(examples.GALLERY_DIR.glob("*.jpg"))
    assert len(files) == 50 and sum(f.stat().st_size for f in files) < 100_000
    for f in files:
        label, number = f.stem.rsplit("_", 1)
        assert f.read_bytes() == (cifar10_dir / "test" / label / f"{number}.jpg").read_bytes(), f.name
