"""The page's API for programs: three named, typed endpoints, nothing internal, and the README's example runs.

The page is launched in this process on a free port over the in-process backend; `gradio_client` talks to it
over HTTP like any user's script.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gradio_ui import examples
from tests.gradio_ui.conftest import launched

REPO = Path(__file__).resolve().parents[2]
README_MARK = "<!-- gradio_client example: tests/gradio_ui/test_ui_api.py runs it -->"
README_URL = "http://127.0.0.1:7860/"
ENDPOINTS = {"/predict": ["image", "model"], "/feature_maps": ["image", "model", "layer"],
             "/cam": ["image", "model", "layer", "class_name", "method"]}  # fmt: skip


@pytest.fixture(scope="module")
def page(local_backend) -> Iterator[str]:
    with launched(local_backend) as url:
        yield url


def test_named_endpoints_only(page: str) -> None:
    from gradio_client import Client

    info = Client(page, verbose=False).view_api(return_format="dict", print_info=False)
    assert info["unnamed_endpoints"] == {}
    assert set(info["named_endpoints"]) == set(ENDPOINTS)
    for name, params in ENDPOINTS.items():
        got = info["named_endpoints"][name]["parameters"]
        assert [p["parameter_name"] for p in got] == params
        assert got[0]["python_type"]["type"] == "filepath"
        assert all(p["python_type"]["type"] == "str" for p in got[1:])
        assert info["named_endpoints"][name]["description"]


def test_errors_come_back_in_words(page: str) -> None:
    from gradio_client import Client, handle_file

    client = Client(page, verbose=False)
    cat = handle_file(str(sorted(examples.GALLERY_DIR.glob("cat_*.jpg"))[0]))
    with pytest.raises(Exception, match="unknown class 'kat'"):
        client.predict(image=cat, model="se_net", class_name="kat", api_name="/cam")
    with pytest.raises(Exception, match="unknown layer"):
        client.predict(image=cat, model="se_net", layer="se9", api_name="/feature_maps")


def test_readme_example_runs(page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's gradio_client example, run as written (only the URL points at this test's page)."""
    text = (REPO / "README.md").read_text()
    assert README_MARK in text, "the README lost its gradio_client example"
    code = re.search(r"```python\n(.*?)```", text[text.index(README_MARK) :], re.S).group(1)
    assert README_URL in code
    monkeypatch.chdir(REPO)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.replace(README_URL, page), "README.md", "exec"), {})  # noqa: S102
    printed = out.getvalue()
    assert "se_net" in printed and "gradcam" in printed and "dog" in printed, printed
