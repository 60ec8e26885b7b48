"""Small file helpers every layer needs: atomic writes, TorchServe's key file, image files of a folder."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cifarlens_runtime.constants import IMAGE_SUFFIXES


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; on success rename it over `path`.

    Readers never see half a file, and the name holds the process id, so two processes writing
    the same file (two torchrun ranks filling one cache) never rename each other's temporary.
    The suffix is kept, because numpy and matplotlib pick the format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write `data` to `path` through `replacing`."""
    with replacing(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """`obj` as indented JSON, written atomically."""
    return atomic_write(path, json.dumps(obj, indent=2) + "\n")


class KeyFileError(ValueError):
    """TorchServe's key_file.json is missing or not what TorchServe writes."""


# TorchServe rewrites key_file.json in place when a key is renewed: a reader may catch it empty or half written.
KEY_FILE_READS = 3
KEY_FILE_PAUSE_S = 0.05


def read_key_file(path: str | Path) -> dict[str, str]:
    """{'inference': key, 'management': key, 'API': key} from TorchServe's key_file.json
    ({"management": {"key": ..., "expiration time": ...}, ...})."""
    data = key_file_json(path)
    return {kind: str(entry.get("key", "")) for kind, entry in data.items() if isinstance(entry, dict)}


def key_file_json(path: str | Path) -> dict:
    """key_file.json as TorchServe wrote it (keys with their expiry times); a file caught mid-rewrite is read again."""
    for attempt in range(KEY_FILE_READS):
        try:
            data = json.loads(Path(path).read_text())
            break
        except FileNotFoundError:
            raise KeyFileError(
                f"key file {path} not found: TorchServe writes it to its working directory when it starts"
            ) from None
        except ValueError as exc:
            if attempt + 1 == KEY_FILE_READS:
                raise KeyFileError(f"cannot read key file {path}: {exc}") from None
            time.sleep(KEY_FILE_PAUSE_S)
        except OSError as exc:
            raise KeyFileError(f"cannot read key file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise KeyFileError(f"key file {path} is not a JSON object")
    return data


def image_files(folder: str | Path) -> list[Path]:
    """The image files directly in `folder` (suffixes of IMAGE_SUFFIXES, any case), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


# torchvision's download of CIFAR-10 (`make train-all` without DATA_DIR) lands in ./data/cifar-10-batches-py.
TORCHVISION_FOLDER = "cifar-10-batches-py"
DATA_ENV = "DATA_DIR"


def cifar10_candidates(data_dir: str | Path | None = None) -> list[Path]:
    """Where CIFAR-10 may be, most explicit first: `data_dir`, $DATA_DIR, ./data/cifar10, ./data."""
    found = [data_dir, os.environ.get(DATA_ENV), Path("data") / "cifar10", Path("data")]
    return [Path(d) for d in found if d]


def find_cifar10(data_dir: str | Path | None = None, split: str = "test") -> Path | None:
    """The first candidate folder holding `split` as an ImageFolder (<split>/<class>/*.jpg) or as
    torchvision's batches; None when there is none. The one place that looks for the data set."""
    batch = "test_batch" if split == "test" else "data_batch_1"
    for d in cifar10_candidates(data_dir):
        if (d / split).is_dir() or (d / TORCHVISION_FOLDER / batch).is_file():
            return d
    return None
