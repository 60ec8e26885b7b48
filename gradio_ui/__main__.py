"""python -m gradio_ui [--backend torchserve|local] [--port 7860] [--host 127.0.0.1] [--artifacts artifacts]"""

from __future__ import annotations

import os

# Before gradio is imported: no analytics, and local calls never go through a proxy.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1,localhost"]))
os.environ["no_proxy"] = os.environ["NO_PROXY"]

import argparse  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

# Folder of the served .mar archives: the page names the nets from it when its key cannot list them (compose).
ENV_MODEL_STORE = "CIFARLENS_MODEL_STORE"


def make_backend(
    kind: str,
    artifacts: str,
    url: str | None = None,
    management_url: str | None = None,
    key_file: str | None = None,
):
    """The backend named on the command line (TorchServe settings otherwise from the environment).

    The TorchServe backend offers the nets exported under `artifacts`, else the archives in
    $CIFARLENS_MODEL_STORE, when the server's management API cannot be asked (an inference key only)."""
    from cifarlens_runtime.predictor import exported_models
    from gradio_ui.client import LocalBackend, TorchServeBackend

    if kind == "local":
        return LocalBackend(artifacts)
    known = exported_models(artifacts) if Path(artifacts).is_dir() else []
    store = os.environ.get(ENV_MODEL_STORE)
    if not known and store and Path(store).is_dir():
        known = sorted(p.stem for p in Path(store).glob("*.mar"))
    return TorchServeBackend.from_env(url=url, management_url=management_url, key_file=key_file, known_models=known)


def data_note(data_dir: str | None = None) -> str:
    from cifarlens_runtime.files import cifar10_candidates

    tried = ", ".join(str(d) for d in cifar10_candidates(data_dir))
    return f"Looked in: {tried}. Set DATA_DIR to a CIFAR-10 ImageFolder root (test/<class>/*.jpg)."


def main(argv: Sequence[str] | None = None) -> int:
    from cifarlens_runtime.constants import UI_PORT

    parser = argparse.ArgumentParser(prog="python -m gradio_ui", description="Inspection page for the CIFAR-10 nets.")
    parser.add_argument(
        "--backend",
        choices=("torchserve", "local"),
        default="torchserve",
        help="torchserve: REST (CIFARLENS_URL, CIFARLENS_TOKEN / CIFARLENS_KEY_FILE); "
        "local: ONNX Runtime in process over --artifacts",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", UI_PORT)))
    parser.add_argument("--artifacts", default="artifacts", help="exported models for --backend local")
    parser.add_argument("--url", default=None, help="TorchServe inference URL (default: $CIFARLENS_URL or :8080)")
    parser.add_argument("--management-url", default=None, help="default: $CIFARLENS_MANAGEMENT_URL or :8081")
    parser.add_argument("--key-file", default=None, help="TorchServe key_file.json (default: $CIFARLENS_KEY_FILE)")
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 root for the gallery (default: $DATA_DIR)")
    args = parser.parse_args(argv)

    from gradio_ui.app import build_app, launch
    from gradio_ui.examples import load_examples

    backend = make_backend(args.backend, args.artifacts, args.url, args.management_url, args.key_file)
    examples = load_examples(args.data_dir)
    demo = build_app(backend, examples, data_note=data_note(args.data_dir))
    print(
        f"cifarlens UI: http://{args.host}:{args.port}  (backend {backend.name} at {backend.location}, "
        f"{len(examples)} example images)",
        flush=True,
    )
    launch(demo, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
