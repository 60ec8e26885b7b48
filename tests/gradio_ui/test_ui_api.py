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
    assert "se_net" in printed and "layercam" in printed and "dog" in printed, printed  # se_net's default map


# --- hostile callers: paths the page never issued, names it does not serve, files over the limit ---


def call_raw(page: str, endpoint: str, data: list) -> str:
    """Call a named endpoint with a raw JSON body, as a script that skips gradio_client would: the event's text."""
    import requests

    resp = requests.post(f"{page}gradio_api/call/{endpoint}", json={"data": data}, timeout=30)
    assert resp.status_code == 200, resp.text
    events = requests.get(f"{page}gradio_api/call/{endpoint}/{resp.json()['event_id']}", timeout=60)
    return events.text


GALLERY_FILE = str(sorted(examples.GALLERY_DIR.glob("cat_*.jpg"))[0])
UNISSUED = {
    "bare string": "/etc/hostname",
    "path without metadata": {"path": "/etc/hostname"},
    "missing file": {"path": "/no/such/file.png"},
    "device file": {"path": "/dev/zero"},
    "relative path": {"path": "../../../../etc/hostname"},
    "gallery source outside the cache": {"path": GALLERY_FILE},
}


@pytest.mark.parametrize("given", list(UNISSUED))
@pytest.mark.parametrize("endpoint", ["predict", "feature_maps", "cam"])
def test_the_api_reads_only_files_the_page_issued(page: str, endpoint: str, given: str) -> None:
    """Every path the page did not take in itself gets the same words, which say nothing of whether it exists."""
    from gradio_ui.uploads import NOT_OFFERED

    args = {"predict": ["se_net"], "feature_maps": ["se_net", "se1"], "cam": ["se_net", "", "", ""]}[endpoint]
    text = call_raw(page, endpoint, [UNISSUED[given], *args])
    assert "event: error" in text and NOT_OFFERED in text, text
    assert "No such file" not in text and "Errno" not in text


@pytest.mark.parametrize("model", ["../ping", "../api-description", "se_net/1.0/feature_maps/se1", "SE_NET "])
def test_names_the_page_does_not_serve_are_refused(page: str, model: str) -> None:
    from gradio_client import Client, handle_file

    client = Client(page, verbose=False)
    with pytest.raises(Exception, match="unknown net .*this page serves inception_net, plain_cnn, se_net"):
        client.predict(image=handle_file(GALLERY_FILE), model=model, api_name="/predict")
    cam = client.predict(image=handle_file(GALLERY_FILE), model="se_net", class_name=" DOG ", api_name="/cam")
    assert cam["class"] == "dog"


def test_an_upload_over_the_limit_is_refused(page: str) -> None:
    """Gradio itself refuses an upload over the REST limit (413, in words); gradio_client says so before sending."""
    import requests
    from gradio_client import Client, handle_file

    from gradio_ui.uploads import MAX_UPLOAD_BYTES

    big = b"\xff\xd8\xff" + b"\0" * MAX_UPLOAD_BYTES
    resp = requests.post(f"{page}gradio_api/upload", files={"files": ("big.jpg", big, "image/jpeg")}, timeout=60)
    assert resp.status_code == 413 and "maximum" in resp.text.lower(), resp.text[:300]
    path = Path(tempfile_dir()) / "big.jpg"
    path.write_bytes(big)
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        Client(page, verbose=False).predict(image=handle_file(str(path)), model="se_net", api_name="/predict")


def tempfile_dir() -> str:
    import tempfile

    return tempfile.mkdtemp()


def test_a_phone_photo_through_the_api(page: str, phone_photo: Path) -> None:
    """A 12-megapixel JPEG is sent as it is (re-encoded as PNG it would be 22 MiB, over the REST limit)."""
    import time

    from gradio_client import Client, handle_file

    client = Client(page, verbose=False)
    start = time.perf_counter()
    prediction = client.predict(image=handle_file(str(phone_photo)), model="se_net", api_name="/predict")
    cam = client.predict(image=handle_file(str(phone_photo)), model="inception_net", api_name="/cam")
    maps = client.predict(
        image=handle_file(str(phone_photo)), model="plain_cnn", layer="block1", api_name="/feature_maps"
    )
    seconds = time.perf_counter() - start
    assert len(prediction["predictions"]) == 5 and cam["model"] == "inception_net" and maps["layer"] == "block1"
    assert seconds < 15, f"{seconds:.1f} s"  # three calls, three uploads of 1.5 MB
