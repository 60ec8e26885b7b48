"""A run's recorded metrics, read without torch: beside <net>/best.pt, or <net>.json beside a flat <net>.pt;
anything without a numeric test accuracy reads as nothing recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cifarlens_runtime.runs import recorded_metrics


def test_metrics_beside_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "se_net").mkdir()
    (tmp_path / "se_net" / "metrics.json").write_text(json.dumps({"test_acc": 0.88, "epochs": 52}))
    assert recorded_metrics(tmp_path / "se_net" / "best.pt") == {"test_acc": 0.88, "epochs": 52}
    (tmp_path / "plain_cnn.json").write_text(json.dumps({"test_acc": 0.5}))
    assert recorded_metrics(tmp_path / "plain_cnn.pt") == {"test_acc": 0.5}


@pytest.mark.parametrize("text", ["", "{not json", "[0.9]", '{"test_acc": true}', '{"test_acc": "0.9"}', "{}"])
def test_nothing_recorded(tmp_path: Path, text: str) -> None:
    (tmp_path / "metrics.json").write_text(text)
    assert recorded_metrics(tmp_path / "best.pt") == {}
    assert recorded_metrics(tmp_path / "missing" / "best.pt") == {}
