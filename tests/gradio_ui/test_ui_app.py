"""The page as composed: its status line and banner against the in-process backend and a dead server, the
gallery pick, and the Blocks it builds (every section, the named API, events wired to real components)."""

from __future__ import annotations

from pathlib import Path

from gradio_ui import app, examples
from gradio_ui.client import LocalBackend, TorchServeBackend
from gradio_ui.sections import common
from training.models import list_models

REPO = Path(__file__).resolve().parents[2]
# The page lists the nets the backend serves, sorted by name.
SERVED = sorted(list_models())


def test_on_load_flags_barely_trained_nets(local_backend: LocalBackend) -> None:
    status, banner = app.on_load(local_backend)
    assert status.startswith("✓") and "local" in status and ", ".join(SERVED) in status
    assert "barely trained" in banner and all(n in banner for n in SERVED)
    assert "epoch" in banner and "10.0 %" in banner


def test_unreachable_server_is_reported_not_raised(dead_backend: TorchServeBackend) -> None:
    status, banner = app.on_load(dead_backend)
    assert "not available" in status and "unreachable" in status and banner == ""
    assert "retry any time" in status


def test_gallery_pick_names_its_true_class() -> None:
    found = examples.shipped_examples()
    image, label, line = app.select_example(found, 3)
    assert image is found[3].image and label == found[3].label and f"**{label}**" in line
    assert "unknown" in app.true_class_markdown(None)


def _events(demo) -> dict[str, list]:
    """Each event's trigger (component id, event name) -> the elem_ids of its outputs, from the built config."""
    by_id = {c["id"]: c.get("props", {}).get("elem_id") for c in demo.config["components"]}
    events: dict[str, list] = {}
    for dep in demo.config["dependencies"]:
        for target, name in dep["targets"]:
            events.setdefault(f"{by_id.get(target, target)}.{name}", []).append([by_id.get(o) for o in dep["outputs"]])
    return events


def test_build_app_composes_every_section(local_backend: LocalBackend) -> None:
    demo = app.build_app(local_backend, examples.load_examples())
    assert demo.title.startswith("cifarlens")
    ids = {c.get("props", {}).get("elem_id") for c in demo.config["components"]}
    for i in range(common.NUM_SLOTS):
        assert {f"pred-{i}", f"pred-info-{i}", f"cam-{i}", f"cam-info-{i}"} <= ids
    assert {"status", "training-banner", "input-image", "example-gallery", "cam-status", "fm-net", "fm-layer"} <= ids
    assert {"fm-grid", "fm-overlay", "fm-stats", "fm-plot"} <= ids
    assert {"compare-info", "compare-table", "compare-plot", "latency-btn", "latency-info", "latency-table"} <= ids
    events = _events(demo)
    # Predict fills the status line and the predictions; its chained event (not a trigger) draws the maps.
    assert any("status" in outs and "pred-0" in outs for outs in events["predict-btn.click"])
    assert any("cam-0" in outs for outs in events["cam-btn.click"])
    assert any("fm-grid" in outs for outs in events["fm-btn.click"])
    assert any("latency-table" in outs for outs in events["latency-btn.click"])
    apis = {dep["api_name"] for dep in demo.config["dependencies"] if dep.get("api_visibility") != "private"}
    assert apis == {"predict", "feature_maps", "cam"}


def _roots(demo, output: str) -> set[str]:
    """What starts each event chain that ends in writing `output`: '<elem_id or id>.<event>'."""
    by_id = {c["id"]: c.get("props", {}).get("elem_id") or c["id"] for c in demo.config["components"]}
    deps = {d["id"]: d for d in demo.config["dependencies"]}
    roots = set()
    for dep in deps.values():
        if output in [by_id.get(o) for o in dep["outputs"]]:
            while dep["trigger_after"] is not None:
                dep = deps[dep["trigger_after"]]
            roots |= {f"{by_id.get(t, t) if t is not None else 'page'}.{name}" for t, name in dep["targets"]}
    return roots


def test_sections_follow_the_pages_events(local_backend: LocalBackend) -> None:
    """The image's sections follow Predict and a gallery pick; the server's follow the load and Check server."""
    demo = app.build_app(local_backend, examples.load_examples())
    load = next(f"{t}.load" for d in demo.config["dependencies"] for t, name in d["targets"] if name == "load")
    assert _roots(demo, "pred-0") == {"predict-btn.click", "example-gallery.select"}
    assert _roots(demo, "cam-0") >= {"predict-btn.click", "example-gallery.select", "cam-btn.click"}
    assert _roots(demo, "compare-table") == _roots(demo, "fm-net") == {load, "check-btn.click"}
    assert _roots(demo, "latency-table") == {"latency-btn.click"}


def test_page_builds_without_gallery(local_backend: LocalBackend) -> None:
    demo = app.build_app(local_backend, [], data_note="Set DATA_DIR.")
    texts = [c.get("props", {}).get("value") for c in demo.config["components"]]
    assert any(isinstance(t, str) and "no gallery. Set DATA_DIR." in t for t in texts)


def test_app_module_is_small() -> None:
    """Issue 19: the page is composed from sections; app.py stays a composition, at 300 lines or fewer."""
    assert len((REPO / "gradio_ui" / "app.py").read_text().splitlines()) <= 300
