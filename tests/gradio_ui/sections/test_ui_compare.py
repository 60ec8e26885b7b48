"""The compare section: its table and plot from what the server lists (the committed weights, exported, against
their own metrics.json; fresh nets that recorded no run), and the latency it measures through a real backend."""

from __future__ import annotations

import json
import time
from pathlib import Path

from PIL import Image

from cifarlens_runtime.constants import CLASSES
from gradio_ui.client import BackendError, LocalBackend, TorchServeBackend
from gradio_ui.examples import GALLERY_DIR
from gradio_ui.sections import compare
from gradio_ui.uploads import PageImage, image_bytes
from training.models import list_models

REPO = Path(__file__).resolve().parents[3]
SERVED = sorted(list_models())


def _rows(table: dict) -> dict[str, list[str]]:
    return {row[0]: row[1:] for row in table["data"]}


def test_table_and_plot_are_the_runs_own_numbers(weights_artifacts: Path) -> None:
    """Served from the exported weights/, the section shows what each run wrote in its metrics.json."""
    text, table, plot = compare.compare_view(LocalBackend(weights_artifacts))
    assert table["headers"] == ["", *SERVED] and "listing on **local**" in text and "3×" in text
    recorded = {name: json.loads((REPO / "weights" / name / "metrics.json").read_text()) for name in SERVED}
    rows = _rows(table)
    for i, name in enumerate(SERVED):
        run = recorded[name]
        assert rows["test accuracy (flip TTA)"][i] == f"{100 * run['test_acc']:.2f} %"
        assert rows["test accuracy (no TTA)"][i] == f"{100 * run['test_acc_no_tta']:.2f} %"
        assert rows["forward MFLOPs per image"][i] == f"{run['mflops']:,.1f}"
        assert rows["images seen in training"][i] == f"{run['images_seen']:,}"
        assert rows["trained on"][i] == run["device"] and rows["training precision"][i] == run["precision"]
        val = compare.NO_VAL if run["val_acc"] is None else f"{100 * run['val_acc']:.2f} %"  # PlainCNN: all 50k
        assert rows["validation accuracy"][i] == val
        pflop = 3 * run["mflops"] * 1e6 * run["images_seen"] / 1e15
        assert rows["training compute (≈ 3× forward × images seen)"][i] == f"≈ {pflop:.2f} PFLOP"
    assert compare.NOT_RECORDED not in str(table["data"]) and f"accuracy {compare.NOT_RECORDED} for" not in text
    metrics, classes, error = compare.listings_metrics(LocalBackend(weights_artifacts))
    per_class, missing = compare.per_class_accuracy(metrics, classes)
    assert error is None and missing == [] and classes == list(CLASSES)
    assert per_class == {n: [recorded[n]["per_class_test_acc"][c] for c in CLASSES] for n in SERVED}
    assert isinstance(plot, Image.Image) and plot.size[0] > 600


def test_what_a_run_did_not_record_says_so(local_backend: LocalBackend) -> None:
    """Fresh nets (tests/conftest.py: no metrics.json beside their checkpoints): accuracy and size are known,
    the training's costs and the per-class accuracy are not, and no plot is drawn from nothing."""
    text, table, plot = compare.compare_view(local_backend)
    rows = _rows(table)
    assert table["headers"] == ["", *SERVED] and rows["test accuracy (flip TTA)"] == ["10.00 %"] * 3
    assert all(cell.endswith(" M") for cell in rows["parameters"])
    for label in (
        "training time",
        "images seen in training",
        "trained on",
        "training precision",
        "test accuracy (no TTA)",
    ):
        assert rows[label] == [compare.NOT_RECORDED] * 3, label
    assert plot is None and f"Per-class test accuracy {compare.NOT_RECORDED} for {', '.join(SERVED)}" in text


def test_an_unreachable_server_is_said(dead_backend: TorchServeBackend) -> None:
    text, table, plot = compare.compare_view(dead_backend)
    assert text.startswith("⚠") and "unreachable" in text and table["headers"] == [""] and plot is None
    text, rows = compare.measure_latency(dead_backend)
    assert "unreachable" in text and rows == []


class _Slow(LocalBackend):
    """The in-process nets with a known extra delay, and a count of the predictions asked for."""

    DELAY_S = 0.03

    def __init__(self, artifacts: Path) -> None:
        super().__init__(artifacts)
        self.calls: dict[str, int] = {}

    def predict(self, model: str, image: bytes) -> dict:
        self.calls[model] = self.calls.get(model, 0) + 1
        time.sleep(self.DELAY_S)
        return super().predict(model, image)


def test_latency_times_each_request(ui_artifacts: Path) -> None:
    """n timed requests per net after one warm-up; the known delay shows in every percentile."""
    backend = _Slow(ui_artifacts)
    text, rows = compare.measure_latency(backend, None, 5)
    assert backend.calls == {name: 6 for name in SERVED}
    assert [row[0] for row in rows] == SERVED
    for _, p50, p90, low, high, n in rows:
        assert n == 5 and 1000 * _Slow.DELAY_S <= low <= p50 <= p90 <= high
    assert "Measured from this page" in text and "5 single-image prediction requests per net" in text
    assert str(ui_artifacts) in text and "in process, no HTTP" in text


def test_latency_over_the_input_image_and_a_failing_net(ui_artifacts: Path, local_backend: LocalBackend) -> None:
    red = Image.new("RGB", (64, 48), (200, 30, 30))
    body, what = compare.latency_image(PageImage(image_bytes(red), red))
    assert body == image_bytes(red) and what.startswith("the input image")
    shipped = sorted(GALLERY_DIR.glob("*.jpg"))[0]
    assert compare.latency_image(None) == (shipped.read_bytes(), f"the CIFAR-10 test image {shipped.name}, 32×32 JPEG")

    class _Broken(LocalBackend):
        def predict(self, model: str, image: bytes) -> dict:
            if model == "plain_cnn":
                raise BackendError("TorchServe answered 503: worker died")
            return super().predict(model, image)

    text, rows = compare.measure_latency(_Broken(ui_artifacts), PageImage(image_bytes(red), red), 3)
    by_net = {row[0]: row for row in rows}
    assert by_net["plain_cnn"][1:] == ["failed"] * 4 + [0] and "⚠ plain_cnn failed: TorchServe answered 503" in text
    assert by_net["se_net"][-1] == 3 and "the input image" in text
    assert compare.measure_latency(local_backend, None, 2)[1][0][-1] == 2
