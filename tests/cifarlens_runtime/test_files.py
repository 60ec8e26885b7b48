"""Atomic writes, TorchServe's key file and where CIFAR-10 is looked for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cifarlens_runtime.files import KeyFileError, atomic_write, find_cifar10, image_files, read_key_file


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.json"
    atomic_write(target, "one")
    atomic_write(target, b"two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_read_key_file(tmp_path: Path) -> None:
    path = tmp_path / "key_file.json"
    path.write_text(json.dumps({"management": {"key": "m1"}, "inference": {"key": "i1"}, "API": {"key": "a1"}}))
    assert read_key_file(path) == {"management": "m1", "inference": "i1", "API": "a1"}
    with pytest.raises(KeyFileError, match="not found"):
        read_key_file(tmp_path / "missing.json")
    path.write_text("{not json")
    with pytest.raises(KeyFileError, match="cannot read"):
        read_key_file(path)


def test_find_cifar10_prefers_the_explicit_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env = tmp_path / "explicit", tmp_path / "env"
    (env / "test").mkdir(parents=True)
    monkeypatch.setenv("DATA_DIR", str(env))
    monkeypatch.chdir(tmp_path)
    assert find_cifar10(explicit) == env  # the explicit one has no test/: the next candidate
    (explicit / "test").mkdir(parents=True)
    assert find_cifar10(explicit) == explicit
    monkeypatch.delenv("DATA_DIR")
    assert find_cifar10() is None  # nothing in ./data here: no guessing beyond the documented places
    (tmp_path / "data" / "cifar-10-batches-py").mkdir(parents=True)
    (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").write_bytes(b"")
    assert find_cifar10() == Path("data")


def test_image_files(tmp_path: Path) -> None:
    for name in ("b.JPG", "a.png", "c.txt", "d.jpeg"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in image_files(tmp_path)] == ["a.png", "b.JPG", "d.jpeg"]
