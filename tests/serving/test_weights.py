"""The committed weights/, exported and served through a real TorchServe: real test images come back right.

Every other serving test uses freshly initialised nets; this one ships what users get. It asserts
what stays true when better weights are committed: the served answers equal the eager checkpoint's,
the served accuracy on real test images is near the accuracy the checkpoint reports, and the answers
do not change between sequential and concurrent (batched) requests.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from cifarlens_runtime.constants import CLASSES, METADATA_FILE
from tests.conftest import WEIGHTS_DIR as WEIGHTS
from tests.conftest import committed_models, running_torchserve

PER_CLASS = 5
TIMEOUT = 60
# The served accuracy may fall short of the reported one by sampling error alone: allow 3 standard
# errors of a binomial over the images sent, and no more. A broken path (wrong normalisation, random
# or mixed-up nets, a layout slip) lands near 10 % and fails.
SIGMAS = 3.0


@pytest.fixture(scope="module")
def test_images(cifar10_dir: Path | None) -> list[tuple[int, bytes]]:
    """PER_CLASS real test JPEGs of every class, the first ones of each class folder: (label, bytes)."""
    from cifarlens_runtime.files import image_files

    if cifar10_dir is None:
        pytest.skip("CIFAR-10 test images not found: set DATA_DIR or provide ../shared/data/cifar10")
    out = []
    for label, name in enumerate(CLASSES):
        out += [(label, f.read_bytes()) for f in image_files(cifar10_dir / "test" / name)[:PER_CLASS]]
    return out


@pytest.fixture(scope="module")
def weights_server(weights_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real TorchServe (token auth on, free ports) on archives of the committed weights."""
    from serving.archive import build_archive

    store = tmp_path_factory.mktemp("weights_store")
    for name in committed_models():
        build_archive(name, weights_artifacts, store)
    with running_torchserve(store, tmp_path_factory.mktemp("weights_ts")) as server:
        yield server


def eager_probabilities(model: str, images: list[tuple[int, bytes]]) -> np.ndarray:
    """Softmax of the committed checkpoint's own eager net on the same preprocessed images."""
    import torch

    from cifarlens_runtime.preprocess import preprocess
    from training.checkpoint import model_from_checkpoint

    net, _ = model_from_checkpoint(WEIGHTS / model / "best.pt")
    x = torch.from_numpy(np.stack([preprocess(jpeg) for _, jpeg in images]))
    with torch.inference_mode():
        return torch.softmax(net.eval()(x).float(), dim=1).numpy()


def post(server, model: str, jpeg: bytes) -> dict:
    headers = {"Content-Type": "image/jpeg", **server.headers("inference")}
    resp = requests.post(f"{server.inference_url}/predictions/{model}", data=jpeg, headers=headers, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    return resp.json()


def as_vector(body: dict) -> dict[int, float]:
    return {p["index"]: p["probability"] for p in body["predictions"]}


@pytest.mark.parametrize("model", committed_models())
def test_committed_weights_served_right(weights_server, weights_artifacts: Path, test_images, model: str) -> None:
    import json

    sequential = [post(weights_server, model, jpeg) for _, jpeg in test_images]
    with ThreadPoolExecutor(max_workers=8) as pool:  # dynamic batching mixes these into batches
        concurrent = list(pool.map(lambda item: post(weights_server, model, item[1]), test_images))
    eager = eager_probabilities(model, test_images)
    labels = np.array([label for label, _ in test_images])

    # Stable: the same image gets the same answer alone and inside a batch.
    for a, b in zip(sequential, concurrent, strict=True):
        assert [p["index"] for p in a["predictions"]] == [p["index"] for p in b["predictions"]]
        np.testing.assert_allclose(list(as_vector(a).values()), list(as_vector(b).values()), atol=1e-5)

    # The served net is the checkpoint's net: its top-5 probabilities are the eager ones.
    for body, probs in zip(sequential, eager, strict=True):
        for index, p in as_vector(body).items():
            assert p == pytest.approx(float(probs[index]), abs=1e-3), (model, index)
    served_top1 = np.array([body["predictions"][0]["index"] for body in sequential])
    assert (served_top1 == eager.argmax(1)).mean() >= 0.98

    # Right: accuracy on real test images near what the checkpoint reports for the whole test split.
    reported = json.loads((weights_artifacts / model / METADATA_FILE).read_text())["metrics"]["test_acc"]
    reported = reported / 100 if reported > 1 else reported
    n = len(test_images)
    floor = reported - SIGMAS * math.sqrt(reported * (1 - reported) / n)
    accuracy = float((served_top1 == labels).mean())
    print(f"{model}: served accuracy {accuracy:.2f} on {n} test images (reported {reported:.3f}, floor {floor:.2f})")
    assert accuracy >= floor, (
        f"{model}: {accuracy:.2f} on {n} real test images, below {floor:.2f} (reported {reported})"
    )
    assert reported > 0.5, f"{model}: the committed checkpoint reports test accuracy {reported}: is it trained?"
