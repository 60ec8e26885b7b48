"""Compose healthcheck of the torchserve service, with token authorisation on.

Healthy once TorchServe has written key_file.json, answers /ping with the inference key, the management API
(management key) lists at least one model, and the key renewer has written the ui container's inference-only
key file. A refused key is read again from the file and the call retried once: the renewer replaces keys
(TorchServe refuses the old one at once). Ports, key files and the refusal test come from the installed
`cifarlens_runtime` (no torch).
"""

import json
import sys
import urllib.error
import urllib.request

from cifarlens_runtime.constants import Ports, url
from cifarlens_runtime.files import read_key_file
from cifarlens_runtime.keys import refused

KEY_PATH = "/srv/ts/key_file.json"  # the torchserve service's own volume (all three keys)
UI_KEY_PATH = "/srv/ui-keys/inference_key.json"  # the volume the ui service mounts (the inference key only)


def get(address: str, kind: str) -> dict:
    """GET `address` with the `kind` key of the key file; after a refusal, read the file again and retry once."""
    for attempt in range(2):
        req = urllib.request.Request(address, headers={"Authorization": f"Bearer {read_key_file(KEY_PATH)[kind]}"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            if attempt or not refused(exc.code, exc.read()):
                raise
    raise AssertionError("unreachable")


def main() -> int:
    try:
        if get(f"{url(Ports.inference)}/ping", "inference").get("status") != "Healthy":
            return 1
        if not read_key_file(UI_KEY_PATH).get("inference"):
            return 1
        return 0 if get(f"{url(Ports.management)}/models", "management").get("models") else 1
    except Exception as exc:  # noqa: BLE001 - any failure is simply "not healthy yet"
        print(f"not healthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
