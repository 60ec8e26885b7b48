"""`make serve-v2` and `make stop-v2`: the v2 server in the background, with a pid file and a log in its workdir.

`start` returns once REST answers /v2/health/ready and the gRPC port accepts connections (or says why not, with
the log's last lines); `stop` ends the process the pid file names, and only when it is a v2 server, so a stale
file naming a reused pid hurts nothing. Standard library only: stopping needs neither KServe nor the nets.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cifarlens_runtime.constants import HOST, V2_GRPC_PORT, V2_REST_PORT, url

PID_FILE = "v2.pid"
LOG_FILE = "v2.log"
MODULE = "serving.v2"
READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0
# The v2 server's own environment (`make install-v2` builds it; `.installed` is written once every package is in).
V2_VENV = Path(__file__).resolve().parents[2] / ".venv-v2"
V2_PYTHON = V2_VENV / "bin" / "python"
V2_STAMP = V2_VENV / ".installed"


@dataclass(frozen=True)
class Address:
    """Where the v2 server listens; 0.0.0.0 (every interface) is reached through loopback."""

    host: str = HOST
    rest_port: int = V2_REST_PORT
    grpc_port: int = V2_GRPC_PORT

    @property
    def local_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    @property
    def rest_url(self) -> str:
        return url(self.rest_port, self.local_host)

    @property
    def grpc_target(self) -> str:
        return f"{self.local_host}:{self.grpc_port}"


def serve_command(
    artifacts: str | Path, address: Address, threads: int = 1, python: str | Path | None = None
) -> list[str]:
    """The foreground server's command line, in `python` (default: this interpreter, the v2 environment; a client
    in the main environment, such as the serving benchmark, names .venv-v2's)."""
    return [
        str(python or sys.executable), "-m", MODULE, "serve", "--artifacts", str(artifacts), "--host", address.host,
        "--rest-port", str(address.rest_port), "--grpc-port", str(address.grpc_port), "--threads", str(threads),
    ]  # fmt: skip


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie child of ours is reaped and counts as gone)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    import psutil

    return psutil.pid_exists(pid)


def _is_v2_server(pid: int) -> bool:
    """True when `pid` runs this module (from /proc; where there is none, any live pid counts)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.parent.is_dir():
        return _alive(pid)
    try:
        return MODULE.encode() in cmdline.read_bytes() and _alive(pid)
    except OSError:
        return False


def running_pid(workdir: str | Path) -> int | None:
    """The pid of the v2 server the workdir's pid file names, when that server still runs."""
    try:
        pid = int((Path(workdir) / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_v2_server(pid) else None


def log_tail(workdir: str | Path, lines: int = 20) -> str:
    try:
        return "\n".join((Path(workdir) / LOG_FILE).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def is_ready(address: Address) -> bool:
    """REST says ready and the gRPC port takes a connection."""
    try:
        with urllib.request.urlopen(f"{address.rest_url}/v2/health/ready", timeout=2) as resp:
            if resp.status != 200:
                return False
        with socket.create_connection((address.local_host, address.grpc_port), timeout=2):
            return True
    except (OSError, urllib.error.URLError):
        return False


def _wait_ready(proc: subprocess.Popen, address: Address, workdir: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the v2 server exited ({proc.returncode}) before it was ready:\n{log_tail(workdir)}")
        if is_ready(address):
            return
        time.sleep(0.25)
    stop(workdir)
    raise TimeoutError(f"the v2 server was not ready within {timeout_s:.0f} s:\n{log_tail(workdir)}")


def start(
    artifacts: str | Path,
    address: Address,
    workdir: str | Path,
    threads: int = 1,
    timeout_s: float = READY_TIMEOUT_S,
    python: str | Path | None = None,
) -> int:
    """Start the server in the background (its own session, output in workdir/v2.log); its pid, once ready."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    pid = running_pid(workdir)
    if pid is not None:
        raise RuntimeError(f"a v2 server already runs from {workdir} (pid {pid}): `make stop-v2` first")
    with open(workdir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            serve_command(artifacts, address, threads, python),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    (workdir / PID_FILE).write_text(f"{proc.pid}\n")
    _wait_ready(proc, address, workdir, timeout_s)
    return proc.pid


def stop(workdir: str | Path, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop the server the pid file names (SIGTERM, then SIGKILL after `timeout_s`); False when none ran."""
    pid_file = Path(workdir) / PID_FILE
    pid = running_pid(workdir)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return True
