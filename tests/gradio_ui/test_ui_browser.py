"""End to end: Debian's headless Chromium, driven by Playwright, uses the launched page like a person would.

Twice: over the in-process backend, and in front of the session's real TorchServe (so the class activation
maps come through TorchServe's explanations API). The gallery is the shipped one: no data needed.
Nothing downloads a browser: Playwright drives the system binary (`.ci/install-browser.sh` installs it).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gradio_ui import examples
from gradio_ui.sections.cams import METHOD_LABELS
from gradio_ui.sections.common import NUM_SLOTS
from tests.gradio_ui.conftest import launched
from training.models import create_model

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module", params=["local", "torchserve"])
def page_url(request: pytest.FixtureRequest, local_backend, monkeypatch_module) -> Iterator[str]:
    """The page, launched in this process on a free port, over the in-process backend or a real TorchServe."""
    from gradio_ui.client import TorchServeBackend

    monkeypatch_module.delenv("DATA_DIR", raising=False)
    backend = local_backend
    if request.param == "torchserve":
        ts = request.getfixturevalue("torchserve")
        backend = TorchServeBackend(
            ts.inference_url, management_url=ts.management_url, key_file=ts.key_file, timeout=60
        )
    found = examples.load_examples()
    assert len(found) == 50, "the shipped gallery is missing"
    with launched(backend, found) as url:
        yield url


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not Path(CHROMIUM).is_file():
        reason = f"chromium not installed at {CHROMIUM} (run .ci/install-browser.sh)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "the playwright package is missing (pip install -e '.[dev]')"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _wait_idle(page) -> None:
    """Until no Gradio event is pending: every component's status tracker is hidden again."""
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="status-tracker"]')]
                 .every(e => e.classList.contains('hide'))""",
        timeout=TIMEOUT_MS,
    )


def test_page_end_to_end(browser, page_url: str, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(page_url)
    page.wait_for_selector("#status:has-text('Backend')")

    _check_predictions(page)
    _check_cams(page)
    _check_feature_maps(page)
    _check_compare(page)

    shot = tmp_path / "ui.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    page.close()


def _check_predictions(page) -> None:
    """A gallery example answered by the three nets, under the banner for barely trained nets."""
    # Pick the fourth example (a cat): its true class shows, and the three nets answer.
    page.locator("#example-gallery img").nth(3).click()
    page.wait_for_selector("#true-class:has-text('cat')")
    for i in range(NUM_SLOTS):
        page.wait_for_selector(f"#pred-info-{i}:has-text('latency')")
    _wait_idle(page)
    for i, name in enumerate(["inception_net", "plain_cnn", "se_net"]):  # as the backend lists them, by name
        assert name in page.inner_text(f"#pred-{i}")
        assert page.locator(f"#pred-{i}").inner_text().count("%") >= 5  # five probability bars
    assert "barely trained" in page.inner_text("#training-banner")


def _check_cams(page) -> None:
    """Each net's default class activation map, redrawn for another class and another opacity."""
    # The class activation maps follow the predictions: one overlay per net, each net's own default method
    # (named in its model file) for its own top-1.
    for i, name in enumerate(["inception_net", "plain_cnn", "se_net"]):
        label = METHOD_LABELS[create_model(name).cam_method].split(" (")[0]
        page.wait_for_selector(f"#cam-info-{i}:has-text('{label} for')")
    _wait_idle(page)
    first = [page.locator(f"#cam-{i} img").first.get_attribute("src") for i in range(NUM_SLOTS)]
    assert all(first)
    assert "3 of 3 nets explained" in page.inner_text("#cam-status")
    # "Why ship?": every net's map is redrawn for that class.
    page.locator("#cam-class input").click()
    page.get_by_role("option", name="ship", exact=True).click()
    for i in range(NUM_SLOTS):
        page.locator(f"#cam-info-{i}").filter(has_text=re.compile(r"CAM\S* for ship")).wait_for()
    _wait_idle(page)
    # The opacity slider redraws the overlays without asking the server.
    before = page.locator("#cam-0 img").first.get_attribute("src")
    page.locator("#cam-opacity input[type=range]").fill("0.95")
    page.locator("#cam-opacity input[type=range]").dispatch_event("pointerup")
    page.wait_for_function(
        "src => document.querySelector('#cam-0 img')?.getAttribute('src') !== src", arg=before, timeout=TIMEOUT_MS
    )


def _check_feature_maps(page) -> None:
    """One net's second layer, from the list the server gave: grid, overlay, plot and statistics."""
    # Choose a net, then its second layer from the list the server gave.
    page.locator("#fm-net input").click()
    page.get_by_role("option", name="se_net").click()
    _wait_idle(page)
    page.locator("#fm-layer input").click()
    options = page.get_by_role("option").all_inner_texts()
    assert len(options) >= 2 and "se2" in options[1]
    page.get_by_role("option").nth(1).click()
    page.wait_for_selector("#fm-info:has-text('se_net / se2')")
    _wait_idle(page)
    for selector in ("#fm-grid img", "#fm-overlay img", "#fm-plot img"):
        assert page.locator(selector).first.get_attribute("src")
    assert page.locator("#fm-stats").inner_text().count("\n") > 10


def _check_compare(page) -> None:
    """The comparison and the latency measured from the page, for the three nets."""
    # The comparison lists the three nets from the server; latency is measured on the button, from this page.
    table = page.inner_text("#compare-table")
    assert all(name in table for name in ["inception_net", "plain_cnn", "se_net"]) and "not recorded" in table
    page.locator("#latency-btn").click()
    page.wait_for_selector("#latency-info:has-text('Measured from this page')")
    _wait_idle(page)
    latency = page.inner_text("#latency-table")
    assert all(name in latency for name in ["inception_net", "plain_cnn", "se_net"]) and "failed" not in latency


def _predict_explain_and_show(page) -> float:
    """Seconds from the click on Predict to the three nets' answers, their maps and one net's feature maps."""
    import time

    start = time.perf_counter()
    page.locator("#predict-btn").click()
    page.wait_for_selector("#status:has-text('3 nets answered')")
    page.wait_for_selector("#cam-status:has-text('3 of 3 nets explained')")
    page.locator("#fm-btn").click()
    page.wait_for_selector("#fm-info:has-text('channels of')")
    _wait_idle(page)
    return time.perf_counter() - start


def test_a_phone_photo_on_the_page(browser, page_url: str, phone_photo: Path, tmp_path: Path) -> None:
    """A person's own 12-megapixel photo: predicted by the three nets, explained and shown as feature maps in
    under 5 s on a 2-core machine (the page sends the JPEG as it is, 1.5 MB, not a 22 MiB PNG); a file over the
    upload limit is refused at upload, in words."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(page_url)
    page.wait_for_selector("#status:has-text('Backend')")
    _wait_idle(page)
    page.locator("#input-image input[type=file]").set_input_files(str(phone_photo))
    page.wait_for_selector("#input-image img")
    _wait_idle(page)
    seconds = _predict_explain_and_show(page)
    assert all(page.locator(f"#cam-{i} img").first.get_attribute("src") for i in range(NUM_SLOTS))
    assert "⚠" not in page.inner_text("#status") + page.inner_text("#cam-status") + page.inner_text("#fm-info")
    print(f"phone photo: predictions, maps and feature maps in {seconds:.2f} s")
    assert seconds < 5, f"{seconds:.2f} s"

    big = tmp_path / "too_big.jpg"
    big.write_bytes(phone_photo.read_bytes() * 8)  # 12 MiB: over the 10 MiB limit
    page.locator("#input-image input[type=file]").set_input_files(str(big))
    page.wait_for_selector("text=/exceed|too large|maximum/i")
    page.close()
