"""What the sections share: the words for accuracy and training, the input's reading (a path the page never
issued is refused in words), and the pictures of the input the maps are drawn over."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from gradio_ui.sections import common
from gradio_ui.uploads import NOT_OFFERED, ImageFiles, PageImage, body_of, image_bytes, shown_of


def test_words_for_metrics() -> None:
    assert common.percent(0.9123) == "91.2 %" and common.percent(91.23) == "91.2 %" and common.percent(None) == "n/a"
    assert common.is_barely_trained({"epochs": 1, "test_acc": 0.9})
    assert common.is_barely_trained({"epochs": 30, "test_acc": 0.2})
    assert not common.is_barely_trained({"epochs": 30, "test_acc": 0.9})
    line = common.metrics_line({"test_acc": 0.8833, "epochs": 52, "params": 1526927})
    assert line == "test accuracy **88.3 %** · 52 epochs · 1.53 M params"


def test_the_page_reads_only_what_it_offers(tmp_path) -> None:
    path = tmp_path / "red.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(path)
    offered = common.Page(image=None, true_label=None, status=None, files=ImageFiles(lambda: [[str(path)]]))
    picture, error = offered.picture(str(path))
    assert error is None and picture.body == path.read_bytes() and picture.shown.size == (32, 32)
    refused = common.Page(image=None, true_label=None, status=None, files=ImageFiles())
    assert refused.picture(str(path)) == (None, f"⚠ {NOT_OFFERED}")
    assert refused.picture(None) == (None, None)


def test_bytes_and_pictures_of_an_image() -> None:
    img = Image.new("RGB", (40, 20), (1, 2, 3))
    assert Image.open(io.BytesIO(image_bytes(img))).size == (40, 20)
    page_image = PageImage(b"own bytes", img)
    assert body_of(page_image) == b"own bytes" and body_of(img) == image_bytes(img)
    assert shown_of(page_image) is img and shown_of(img.convert("L")).mode == "RGB"
    base = np.asarray(common.overlay_base(img))
    assert base.shape == (common.OVERLAY_SIZE, common.OVERLAY_SIZE, 3) and (base == (1, 2, 3)).all()
