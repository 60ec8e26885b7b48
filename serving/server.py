"""Start, check and stop one TorchServe instance, used by `make serve`/`make stop`, the tests and benchmarks.

Every server gets its own working directory: the generated config.properties, key_file.json
(TorchServe writes it to its working directory), TEMP/TMPDIR (worker sockets and TorchServe's pid
file live there) and server.pid. Two servers with different workdirs and ports never collide, and
`stop` ends the process group recorded in *its* workdir only, never `torchserve --stop`.

    python -m serving.server start [--model-store model_store] [--workdir .ts_tmp/serve] [--inference-port 8080] ...
    python -m serving.server stop [--workdir .ts_tmp/serve]
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from cifarlens_runtime.constants import (
    DEFAULT_WORKDIR,
    HOST,
    INFERENCE_KEY_FILE,
    KEY_FILE,
    TOKEN_EXPIRATION_MIN,
    Ports,
    url,
)
from cifarlens_runtime.files import read_key_file
from cifarlens_runtime.keys import lifetime_text, renewal_period_s

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_TEMPLATE = PACKAGE_DIR / "config.properties"
PID_FILE = "server.pid"
# The key renewer (cifarlens_runtime.keys) beside every server with token auth: its pid, and its log in log_dir.
RENEWER_PID_FILE = "renewer.pid"
RENEWER_LOG = "key_renewer.log"
RENEWER_MODULE = "cifarlens_runtime.keys"
# Java start plus one worker per model loading its graph: slow on 2 shared cores.
START_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 30.0


@dataclass
class Server:
    """A started TorchServe: where it listens, where its files are, and its process group."""

    workdir: Path
    ports: Ports
    pid: int
    token_auth: bool = True
    process: subprocess.Popen | None = field(default=None, repr=False)
    log_dir: Path | None = None
    renewer: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def inference_url(self) -> str:
        return url(self.ports.inference)

    @property
    def management_url(self) -> str:
        return url(self.ports.management)

    @property
    def metrics_url(self) -> str:
        return url(self.ports.metrics)

    @property
    def key_file(self) -> Path:
        return self.workdir / KEY_FILE

    @property
    def inference_key_file(self) -> Path:
        """The inference key alone (same format as key_file.json), kept current by the renewer."""
        return self.workdir / INFERENCE_KEY_FILE

    def token(self, kind: str = "inference") -> str | None:
        """The bearer key of `kind` ("inference" or "management"); None when token auth is off."""
        return read_token(self.workdir, kind) if self.token_auth else None

    def headers(self, kind: str = "inference") -> dict[str, str]:
        token = self.token(kind)
        return {"Authorization": f"Bearer {token}"} if token else {}


def free_ports(n: int = len(fields(Ports))) -> list[int]:
    """`n` distinct ports that are free right now (for tests beside a running server)."""
    import socket

    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind((HOST, 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def read_token(workdir: str | Path, kind: str = "inference") -> str:
    """The `kind` key ("inference", "management" or "API") from the key_file.json of the server in `workdir`."""
    return read_key_file(Path(workdir) / KEY_FILE)[kind]


def write_config(
    workdir: Path,
    model_store: Path,
    ports: Ports,
    log_dir: Path,
    token_auth: bool = True,
    template: Path = CONFIG_TEMPLATE,
    token_expiration_min: float = TOKEN_EXPIRATION_MIN,
) -> Path:
    """config.properties for this server: the template with its addresses, store and token settings replaced."""
    overrides = {
        "inference_address": url(ports.inference),
        "management_address": url(ports.management),
        "metrics_address": url(ports.metrics),
        "grpc_inference_port": str(ports.grpc_inference),
        "grpc_management_port": str(ports.grpc_management),
        "model_store": str(model_store),
        "disable_token_authorization": "false" if token_auth else "true",
        "token_expiration_min": f"{token_expiration_min:g}",
    }
    lines = []
    for line in template.read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if not line.lstrip().startswith("#") and key in overrides:
            continue
        lines.append(line)
    lines += [f"{k}={v}" for k, v in overrides.items()]
    path = workdir / "config.properties"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_server(
    model_store: str | Path = "model_store",
    ports: Ports | None = None,
    workdir: str | Path = DEFAULT_WORKDIR,
    foreground: bool = True,
    log_dir: str | Path | None = None,
    token_auth: bool = True,
    models: Sequence[str] | None = None,
    wait: bool = True,
    timeout: float = START_TIMEOUT_S,
    token_expiration_min: float = TOKEN_EXPIRATION_MIN,
) -> Server:
    """Start TorchServe on the archives of `model_store` and (by default) wait until it is healthy.

    `foreground=True` ties the server to this process (tests): `stop(server)` ends it, and so does
    this interpreter's exit. `foreground=False` leaves it running after this process (`make serve`);
    `python -m serving.server stop` ends it later through server.pid. Either way TorchServe runs with
    `--foreground` in its own process group, its output in `<log_dir>/torchserve.out`. With token auth,
    a key renewer runs beside it (`start_renewer`) and stops with it.
    """
    ports = ports or Ports()
    workdir = Path(workdir).resolve()
    model_store = Path(model_store).resolve()
    log_dir = Path(log_dir).resolve() if log_dir else workdir / "logs"
    if not model_store.is_dir() or not any(model_store.glob("*.mar")):
        raise FileNotFoundError(f"no .mar archives in {model_store}: run `make archive` first")
    existing = _running_pid(workdir)
    if existing:
        raise RuntimeError(f"a server from {workdir} is already running (pid {existing}); stop it first")
    tmp = workdir / "tmp"
    for d in (workdir, tmp, log_dir):
        d.mkdir(parents=True, exist_ok=True)
    for stale in (KEY_FILE, INFERENCE_KEY_FILE):
        (workdir / stale).unlink(missing_ok=True)
    config = write_config(workdir, model_store, ports, log_dir, token_auth, token_expiration_min=token_expiration_min)
    names = list(models) if models else sorted(p.stem for p in model_store.glob("*.mar"))
    cmd = [
        str(Path(sys.executable).parent / "torchserve"),
        "--start", "--foreground", "--ncs",
        "--model-store", str(model_store),
        "--ts-config", str(config),
        "--models", *[f"{n}={n}.mar" for n in names],
    ]  # fmt: skip
    if not token_auth:
        cmd.append("--disable-token-auth")
    process = _spawn(cmd, workdir, log_dir / "torchserve.out", _server_env(tmp, log_dir))
    (workdir / PID_FILE).write_text(f"{process.pid}\n")
    server = Server(workdir, ports, process.pid, token_auth, process, log_dir)
    if token_auth:
        server.renewer = start_renewer(server)
    if foreground:
        atexit.register(stop, server)
    if wait:
        try:
            wait_healthy(server, timeout=timeout, models=names)
        except BaseException:
            stop(server)
            raise
    return server


def _server_env(tmp: Path, log_dir: Path) -> dict[str, str]:
    """TorchServe's environment: its own TEMP (pid file, sockets), logs in `log_dir`, one thread per worker."""
    env = {
        **os.environ,
        "TEMP": str(tmp),
        "TMPDIR": str(tmp),
        "LOG_LOCATION": str(log_dir),
        "METRICS_LOCATION": str(log_dir),
        # One thread per worker: ONNX Runtime sessions are set to 1 too, this covers OpenMP and torch.
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    env.pop("PYTHONPATH", None)  # workers import the code shipped in the archives, not the checkout
    return env


def _spawn(cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`cmd` in a session of its own (so that stopping it never signals this process), output appended to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


def start_renewer(server: Server) -> subprocess.Popen:
    """The key renewer of `server` (python -m cifarlens_runtime.keys): renews its keys before they expire, keeps
    its inference_key.json, and ends when the server's launcher process does (or `stop` ends it first)."""
    import cifarlens_runtime

    cmd = [
        sys.executable, "-m", RENEWER_MODULE,
        "--key-file", str(server.key_file),
        "--config", str(server.workdir / "config.properties"),
        "--management-url", server.management_url,
        "--inference-key-file", str(server.inference_key_file),
        "--pid", str(server.pid),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(cifarlens_runtime.__file__).resolve().parents[1])}
    log_dir = server.log_dir or server.workdir / "logs"
    renewer = _spawn(cmd, server.workdir, log_dir / RENEWER_LOG, env)
    (server.workdir / RENEWER_PID_FILE).write_text(f"{renewer.pid}\n")
    return renewer


def stop_renewer(workdir: Path, renewer: subprocess.Popen | None = None, timeout: float = 10.0) -> None:
    """End the key renewer recorded in `workdir` (only a process that is one: pids are reused)."""
    import psutil

    pid_file = workdir / RENEWER_PID_FILE
    try:
        pid = renewer.pid if renewer is not None else int(pid_file.read_text().split()[0])
        proc = psutil.Process(pid)
        if RENEWER_MODULE in " ".join(proc.cmdline()):
            proc.terminate()
            try:
                proc.wait(timeout)
            except psutil.TimeoutExpired:
                proc.kill()
    except (OSError, ValueError, IndexError, psutil.Error):
        pass
    if renewer is not None:
        renewer.poll()
    pid_file.unlink(missing_ok=True)


def ping(server: Server, timeout: float = 2.0) -> bool:
    """True when /ping answers Healthy (with the inference token when token auth is on)."""
    try:
        headers = server.headers("inference") if server.token_auth else {}
    except (OSError, KeyError, ValueError):
        return False  # key_file.json not written yet
    req = urllib.request.Request(f"{server.inference_url}/ping", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read()).get("status") == "Healthy"
    except (OSError, ValueError):
        return False


def models_ready(server: Server, models: Sequence[str], timeout: float = 2.0) -> bool:
    """True when every model has a READY worker (management API)."""
    try:
        headers = server.headers("management")
    except (OSError, KeyError, ValueError):
        return False
    for name in models:
        req = urllib.request.Request(f"{server.management_url}/models/{name}", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                info = json.loads(resp.read())
        except (OSError, ValueError):
            return False
        workers = info[0].get("workers", []) if info else []
        if not any(w.get("status") == "READY" for w in workers):
            return False
    return True


def wait_healthy(server: Server, timeout: float = START_TIMEOUT_S, models: Sequence[str] = ()) -> None:
    """Block until /ping is healthy and every model in `models` has a ready worker; raise on timeout or exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(f"TorchServe exited with {server.process.returncode}; see {_logs(server)}")
        if server.process is None and not _alive(server.pid):
            raise RuntimeError(f"TorchServe (pid {server.pid}) exited; see {_logs(server)}")
        if ping(server) and models_ready(server, models):
            return
        time.sleep(1.0)
    raise TimeoutError(f"TorchServe not healthy after {timeout:.0f} s; see {_logs(server)}")


def _logs(server: Server) -> str:
    return f"{server.log_dir or server.workdir / 'logs'}/torchserve.out and ts_log.log"


def _alive(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid)


def _group_members(pgid: int) -> list[int]:
    """Live TorchServe processes (launcher, JVM, workers) of process group `pgid`, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields_ = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, IndexError):
            continue
        state, group = fields_[0], int(fields_[2])
        if group == pgid and state != "Z" and any(m in cmdline for m in _SERVER_MARKERS):
            members.append(int(stat.parent.name))
    return members


_SERVER_MARKERS = ("torchserve", "org.pytorch.serve", "model_service_worker")


def _running_pid(workdir: Path) -> int | None:
    """The process group recorded in `workdir`/server.pid if TorchServe processes still run in it, else None."""
    try:
        pid = int((workdir / PID_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _group_members(pid) else None


def stop(server: Server | None = None, workdir: str | Path = DEFAULT_WORKDIR, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Stop one server (the given one, or the one recorded in `workdir`): SIGTERM to its process group
    (launcher, JVM and workers), SIGKILL for what is left after `timeout`. False when nothing was running."""
    workdir = server.workdir if server else Path(workdir).resolve()
    stop_renewer(workdir, server.renewer if server else None)
    pid = server.pid if server else _running_pid(workdir)
    if server is not None and server.process is not None:
        server.process.poll()  # reap an exited launcher so that it no longer counts
    if pid is None or not _group_members(pid):
        (workdir / PID_FILE).unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _group_members(pid) and time.monotonic() < deadline:
        if server is not None and server.process is not None:
            server.process.poll()
        time.sleep(0.2)
    if _group_members(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        kill_deadline = time.monotonic() + 10
        while _group_members(pid) and time.monotonic() < kill_deadline:
            time.sleep(0.1)
    if server is not None and server.process is not None:
        server.process.wait(timeout=10)
    (workdir / PID_FILE).unlink(missing_ok=True)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--model-store", default="model_store")
    parser.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="config, key_file.json, TEMP, pid")
    parser.add_argument("--log-dir", default="logs")
    parser.add_argument("--inference-port", type=int, default=Ports.inference)
    parser.add_argument("--management-port", type=int, default=Ports.management)
    parser.add_argument("--metrics-port", type=int, default=Ports.metrics)
    parser.add_argument("--grpc-inference-port", type=int, default=Ports.grpc_inference)
    parser.add_argument("--grpc-management-port", type=int, default=Ports.grpc_management)
    parser.add_argument("--no-token-auth", action="store_true", help="local work only: no bearer tokens")
    parser.add_argument("--timeout", type=float, default=START_TIMEOUT_S)
    args = parser.parse_args(argv)
    if args.command == "stop":
        stopped = stop(workdir=args.workdir)
        print("TorchServe stopped" if stopped else f"no TorchServe running from {args.workdir}")
        return 0
    ports = Ports(
        args.inference_port,
        args.management_port,
        args.metrics_port,
        args.grpc_inference_port,
        args.grpc_management_port,
    )
    try:
        server = start_server(
            args.model_store,
            ports,
            args.workdir,
            foreground=False,
            log_dir=args.log_dir,
            token_auth=not args.no_token_auth,
            timeout=args.timeout,
        )
    except (FileNotFoundError, RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"TorchServe is healthy (pid {server.pid}, logs in {args.log_dir}/)")
    print(f"  inference   {server.inference_url}/predictions/<model>")
    print(f"  management  {server.management_url}/models")
    print(f"  metrics     {server.metrics_url}/metrics")
    if server.token_auth:
        print(f"  tokens      {server.key_file} (Authorization: Bearer <inference.key>)")
        every, lifetime = lifetime_text(renewal_period_s() / 60), lifetime_text()
        print(f"  renewal     every {every} (keys last {lifetime}); log in {args.log_dir}/{RENEWER_LOG}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
