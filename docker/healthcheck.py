"""Compose healthcheck of the torchserve service, with token authorisation on.

Healthy once TorchServe has written key_file.json, answers /ping with the inference key, and the
management API (management key) lists at least one model. Standard library only.
"""

import json
import sys
import urllib.request

KEY_FILE = "/srv/ts/key_file.json"


def get(url: str, key: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.load(resp)


def main() -> int:
    try:
        with open(KEY_FILE) as f:
            keys = json.load(f)
        if get("http://127.0.0.1:8080/ping", keys["inference"]["key"]).get("status") != "Healthy":
            return 1
        return 0 if get("http://127.0.0.1:8081/models", keys["management"]["key"]).get("models") else 1
    except Exception as exc:  # noqa: BLE001 - any failure is simply "not healthy yet"
        print(f"not healthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
