"""The predictions section's callback against the in-process backend, a half-broken one and a dead server."""

from __future__ import annotations

from pathlib import Path

from cifarlens_runtime.constants import CLASSES
from gradio_ui.client import BackendError, LocalBackend, TorchServeBackend
from gradio_ui.sections import predictions
from gradio_ui.sections.common import NUM_SLOTS
from training.models import list_models

SERVED = sorted(list_models())


def test_predict_all(local_backend: LocalBackend, example_image) -> None:
    image, label = example_image
    status, names, labels, panels = predictions.predict_all(local_backend, image, label)
    assert status.startswith("✓")
    assert names == SERVED
    for value, panel in zip(labels, panels, strict=True):
        assert value is not None and len(value) == 5 and set(value) <= set(CLASSES)
        assert "latency" in panel and "test accuracy **10.0 %**" in panel and "barely trained" in panel
        if label:
            assert label in panel


def test_predict_without_image(local_backend: LocalBackend) -> None:
    status, _, labels, _ = predictions.predict_all(local_backend, None, None)
    assert "Pick an example" in status and labels == [None] * NUM_SLOTS


def test_unreachable_server_is_reported_not_raised(dead_backend: TorchServeBackend, example_image) -> None:
    status, _, labels, _ = predictions.predict_all(dead_backend, example_image[0], None)
    assert "unreachable" in status and labels == [None] * NUM_SLOTS


class _HalfBroken(LocalBackend):
    """One net fails: the others must still be shown."""

    def predict(self, model: str, image: bytes) -> dict:
        if model == "inception_net":
            raise BackendError("TorchServe answered 503: worker died")
        return super().predict(model, image)


def test_one_failing_net_keeps_the_others(ui_artifacts: Path, example_image) -> None:
    status, _, labels, panels = predictions.predict_all(_HalfBroken(ui_artifacts), example_image[0], None)
    assert "1 of 3" in status
    broken = SERVED.index("inception_net")
    assert labels[broken] is None and "worker died" in panels[broken]
    assert all(labels[i] for i in range(len(SERVED)) if i != broken)


def test_the_true_class_line() -> None:
    body = {"backend": "onnxruntime", "predictions": [{"class": "cat"}, {"class": "dog"}]}
    assert "✓ correct: **cat**" in predictions.net_markdown("se_net", body, 3.0, {}, "cat")
    assert "ranked 2" in predictions.net_markdown("se_net", body, 3.0, {}, "dog")
    assert "not in the top 2" in predictions.net_markdown("se_net", body, 3.0, {}, "ship")
    assert "3.0 ms** (onnxruntime)" in predictions.net_markdown("se_net", body, 3.0, {}, None)
