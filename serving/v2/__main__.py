"""python -m serving.v2 serve|start|stop: the v2 server in the foreground, in the background, or stopped.

Option names stay clear of the prefixes of KServe's own command line (`kserve.model_server` parses sys.argv when
it is imported, abbreviations included): --timeout would be read as its --timeout-keep-alive.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cifarlens_runtime.constants import HOST, V2_GRPC_PORT, V2_REST_PORT, V2_WORKDIR
from serving.v2.process import READY_TIMEOUT_S, Address, running_pid, start, stop


def parser() -> argparse.ArgumentParser:
    """serve (foreground), start (background, returns once ready) and stop."""
    top = argparse.ArgumentParser(prog="python -m serving.v2", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True)
    for name in ("serve", "start"):
        sub = commands.add_parser(name)
        sub.add_argument("--artifacts", default="artifacts", help="folder of <model>/{model.onnx, metadata.json}")
        sub.add_argument("--host", default=HOST, help=f"address to listen on (default {HOST}; 0.0.0.0: every one)")
        sub.add_argument("--rest-port", type=int, default=V2_REST_PORT, help=f"default {V2_REST_PORT}")
        sub.add_argument("--grpc-port", type=int, default=V2_GRPC_PORT, help=f"default {V2_GRPC_PORT}")
        sub.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads per net (default 1)")
    for sub in (commands.choices["start"], commands.add_parser("stop")):
        sub.add_argument("--workdir", default=str(V2_WORKDIR), help=f"pid file and log (default {V2_WORKDIR})")
    commands.choices["start"].add_argument("--ready-s", type=float, default=READY_TIMEOUT_S, help="wait this long")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 1 with the reason on stderr when it cannot."""
    args = parser().parse_args(argv)
    if args.command == "stop":
        pid = running_pid(args.workdir)
        print(f"v2 server (pid {pid}) stopped" if stop(args.workdir) else "no v2 server was running")
        return 0
    address = Address(args.host, args.rest_port, args.grpc_port)
    if args.command == "serve":
        from serving.v2.server import serve

        serve(args.artifacts, address.host, address.rest_port, address.grpc_port, args.threads)
        return 0
    try:
        pid = start(args.artifacts, address, args.workdir, args.threads, args.ready_s)
    except (RuntimeError, TimeoutError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"v2 server ready (pid {pid}): REST {address.rest_url}, gRPC {address.grpc_target}; log {args.workdir}/v2.log"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
