"""Keep TorchServe's token keys valid: renew them through its token API before they expire.

What TorchServe 0.12 does (checked on the real server, tests/serving/test_key_renewal.py): key_file.json in its
working directory holds the `management` and `inference` keys, each valid `token_expiration_min` minutes from when
it was made, and the `API` key, which does not expire. `<management>/token?type=inference` (or `management`), with
the API key as bearer token, answers 200 with an empty body, replaces that key at once (the old one is refused from
then on) and rewrites key_file.json in place with the new key and its expiry. A refused key (stale, wrong, missing)
is answered 400 `InvalidKeyException`, not 401.

The renewer renews both keys when half the lifetime of the older one is left (`renewal_due`), retries after a
failure, and keeps a second file holding the inference key only (written atomically), for clients that must not
hold the management or API key (the page's container). It stops when the TorchServe process it watches is gone.

    python -m cifarlens_runtime.keys [--key-file key_file.json] [--config config.properties]
        [--management-url http://127.0.0.1:8081] [--inference-key-file FILE] [--pid PID]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cifarlens_runtime.constants import KEY_FILE, TOKEN_EXPIRATION_MIN, Ports, url
from cifarlens_runtime.files import KeyFileError, key_file_json, read_key_file, replacing

log = logging.getLogger("cifarlens.keys")

# TorchServe's own default when a config.properties does not set token_expiration_min.
TORCHSERVE_DEFAULT_EXPIRATION_MIN = 60.0
RENEWED_KINDS = ("inference", "management")
# How often the renewer looks at the key file and the watched process.
POLL_S = 1.0
HTTP_TIMEOUT_S = 10.0


def renewal_period_s(lifetime_min: float = TOKEN_EXPIRATION_MIN) -> float:
    """Keys are renewed after half their lifetime: a renewal that fails leaves the other half for retries."""
    return lifetime_min * 60.0 / 2.0


def retry_after_s(lifetime_min: float = TOKEN_EXPIRATION_MIN) -> float:
    """Pause after a failed renewal: a tenth of the renewal period, at most a minute."""
    return min(renewal_period_s(lifetime_min) / 10.0, 60.0)


def lifetime_text(lifetime_min: float = TOKEN_EXPIRATION_MIN) -> str:
    """'24 h', '90 min': the key lifetime as the page and logs say it."""
    if lifetime_min >= 60 and lifetime_min % 60 == 0:
        return f"{lifetime_min / 60:g} h"
    return f"{lifetime_min:g} min"


def refused(status: int, body: str | bytes = "") -> bool:
    """True when TorchServe refused the bearer key: 401, or its 400 InvalidKeyException (what 0.12 answers)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return status == 401 or (status == 400 and ("InvalidKeyException" in text or "Token Auth" in text))


def config_lifetime_min(config: str | Path | None) -> float:
    """token_expiration_min of a TorchServe config.properties (TorchServe's default 60 when unset or unreadable)."""
    try:
        lines = Path(config).read_text().splitlines() if config else []
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "token_expiration_min" and not line.lstrip().startswith("#"):
            return float(value.strip())
    return TORCHSERVE_DEFAULT_EXPIRATION_MIN


def expiries(key_file: str | Path) -> list[float]:
    """Expiry times (epoch seconds) of the renewed keys in key_file.json; TorchServe writes nanoseconds and 'Z'."""
    data = key_file_json(key_file)
    out = []
    for kind in RENEWED_KINDS:
        stamp = str(data.get(kind, {}).get("expiration time", ""))
        if stamp:
            head, _, frac = stamp.rstrip("Z").partition(".")
            out.append(datetime.fromisoformat(head + "+00:00").timestamp() + float(f"0.{frac or 0}"))
    return out


def renewal_due(key_file: str | Path, lifetime_min: float, now: float | None = None) -> bool:
    """True when the older renewed key has half its lifetime (or less) left; the one place that decides when."""
    left = min(expiries(key_file), default=float("inf")) - (time.time() if now is None else now)
    return left <= lifetime_min * 60.0 - renewal_period_s(lifetime_min)


def renew(management_url: str, key_file: str | Path, kinds: Sequence[str] = RENEWED_KINDS) -> dict[str, str]:
    """Ask TorchServe for new `kinds` keys with the API key; return the keys it then wrote to key_file.json."""
    api_key = read_key_file(key_file)["API"]
    for kind in kinds:
        req = urllib.request.Request(
            f"{management_url.rstrip('/')}/token?type={kind}", headers={"Authorization": f"Bearer {api_key}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"token?type={kind}: HTTP {exc.code} {exc.read()[:200]!r}") from None
    return read_key_file(key_file)


def write_inference_key(key_file: str | Path, out: str | Path) -> None:
    """`out` := key_file.json with the inference key only, written atomically and readable by its owner only."""
    data = key_file_json(key_file)
    with replacing(out) as tmp:
        tmp.write_text(json.dumps({"inference": data["inference"]}, indent=2) + "\n")
        tmp.chmod(0o600)


@dataclass
class Renewer:
    """The renewal loop of one server: its key file, management URL, key lifetime and the process it serves."""

    key_file: Path
    management_url: str
    lifetime_min: float
    inference_key_file: Path | None = None
    watch_pid: int | None = None

    def alive(self) -> bool:
        """False once the watched TorchServe process is gone (then the renewer ends too)."""
        if self.watch_pid is None:
            return True
        try:
            os.kill(self.watch_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True

    def step(self, state: dict[str, float]) -> None:
        """One look: renew when due (or retry after a failure), then refresh the inference-only file."""
        now = time.time()
        if now >= state.get("retry_at", 0.0) and renewal_due(self.key_file, self.lifetime_min, now):
            try:
                renew(self.management_url, self.key_file)
                state.pop("retry_at", None)
                log.info("renewed the inference and management keys (next in %.0f s)", self.period_s)
            except (OSError, KeyError, ValueError, RuntimeError) as exc:
                state["retry_at"] = now + retry_after_s(self.lifetime_min)
                log.warning("key renewal failed, retrying in %.0f s: %s", retry_after_s(self.lifetime_min), exc)
        if self.inference_key_file is not None:
            mtime = self.key_file.stat().st_mtime_ns
            if mtime != state.get("synced"):
                write_inference_key(self.key_file, self.inference_key_file)
                state["synced"] = mtime

    @property
    def period_s(self) -> float:
        return renewal_period_s(self.lifetime_min)

    def run(self, stopped: Callable[[], bool] = lambda: False) -> None:
        """Loop until `stopped()` or the watched process ends; every failure is logged and the loop goes on."""
        log.info(
            "renewing %s keys every %s (lifetime %s)",
            self.key_file,
            lifetime_text(self.period_s / 60),
            lifetime_text(self.lifetime_min),
        )
        state: dict[str, float] = {}
        while not stopped() and self.alive():
            try:
                if self.key_file.is_file():
                    self.step(state)
            except (OSError, KeyError, ValueError, KeyFileError) as exc:  # a key file being rewritten: next look
                log.warning("cannot read %s: %s", self.key_file, exc)
            time.sleep(POLL_S)
        log.info("key renewer stopped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cifarlens_runtime.keys", description=__doc__.split("\n\n")[0])
    parser.add_argument("--key-file", type=Path, default=Path(KEY_FILE), help="TorchServe's key_file.json")
    parser.add_argument("--config", type=Path, default=None, help="the server's config.properties (key lifetime)")
    parser.add_argument("--management-url", default=url(Ports.management))
    parser.add_argument("--inference-key-file", type=Path, default=None, help="also keep the inference key here")
    parser.add_argument("--pid", type=int, default=None, help="stop when this process (TorchServe) is gone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    lifetime = config_lifetime_min(args.config) if args.config else TOKEN_EXPIRATION_MIN
    Renewer(args.key_file.resolve(), args.management_url, lifetime, args.inference_key_file, args.pid).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
