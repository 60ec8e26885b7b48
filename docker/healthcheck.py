"""Compose healthcheck of the torchserve service, with token authorisation on.

Healthy once TorchServe has written key_file.json, answers /ping with the inference key, and the
management API (management key) lists at least one model. Ports and key-file reading come from the
installed `cifarlens_runtime` (no torch).
"""

import json
import sys
import urllib.request

from cifarlens_runtime.constants import Ports, url
from cifarlens_runtime.files import read_key_file

KEY_PATH = "/srv/ts/key_file.json"  # the shared volume of docker-compose.yml


def get(address: str, key: str) -> dict:
    req = urllib.request.Request(address, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.load(resp)


def main() -> int:
    try:
        keys = read_key_file(KEY_PATH)
        if get(f"{url(Ports.inference)}/ping", keys["inference"]).get("status") != "Healthy":
            return 1
        return 0 if get(f"{url(Ports.management)}/models", keys["management"]).get("models") else 1
    except Exception as exc:  # noqa: BLE001 - any failure is simply "not healthy yet"
        print(f"not healthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
