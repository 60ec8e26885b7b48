"""train_gpu.md names the GPU machine's host CPU and load, or says in words that they were not recorded."""

from __future__ import annotations

import json

from benchmarks.common import RESULTS, machine
from benchmarks.train_gpu import host_line


def test_the_host_line_names_the_cpu_and_load_or_says_why_not() -> None:
    assert host_line(machine()).startswith("Host: ") and "load average at start" in host_line(machine())
    committed = json.loads((RESULTS / "train_gpu.json").read_text())["machine"]
    line = host_line(committed)
    assert "not recorded" in line and committed["why"] in line
    assert line in (RESULTS / "train_gpu.md").read_text()
    assert "not recorded" in host_line({})
