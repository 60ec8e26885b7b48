"""Atomic writes, TorchServe's key file and where CIFAR-10 is looked for."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from cifarlens_runtime.files import (
    KeyFileError,
    atomic_write,
    find_cifar10,
    image_files,
    read_key_file,
    replacing,
)


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.json"
    atomic_write(target, "one")
    atomic_write(target, b"two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def _write_when_both_ready(path: str, text: str, barrier: mp.synchronize.Barrier) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)
        barrier.wait(timeout=30)  # both processes hold a written temporary before either renames


def test_two_processes_writing_one_file_both_succeed(tmp_path: Path) -> None:
    """Two torchrun ranks fill the same data cache at once: neither may rename the other's temporary."""
    target = tmp_path / "cache.npz"
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_write_when_both_ready, args=(str(target), t, barrier)) for t in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert target.read_text() in {"a", "b"}
    assert [p.name for p in tmp_path.iterdir()] == ["cache.npz"]


def test_replacing_keeps_the_suffix_and_removes_the_temporary_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "plot.png"
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


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
