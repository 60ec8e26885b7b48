#!/usr/bin/env bash
# Debian packages of the UI tests: headless Chromium for the browser test (tests/gradio_ui/test_ui_browser.py)
# and docker-compose (v1) for the compose-file check (tests/gradio_ui/test_ui_compose.py).
# Playwright drives the system chromium; nothing downloads a browser (never `playwright install`).
# Idempotent and quick: returns at once when both are there. Never fails the CI run: a test whose
# tool is missing skips and prints why.
set -u

want=()
command -v chromium >/dev/null 2>&1 || want+=(chromium)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || want+=(docker-compose)
if [ ${#want[@]} -eq 0 ]; then
    echo "already installed: $(chromium --version 2>/dev/null | head -n1); $(docker-compose version --short 2>/dev/null || docker compose version --short 2>/dev/null)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "no apt-get here: cannot install ${want[*]}; their tests will be skipped" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "not root and no sudo: cannot install ${want[*]}; their tests will be skipped" >&2
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${want[@]}" >/dev/null; then
    echo "installed: ${want[*]}"
else
    echo "apt-get could not install ${want[*]}; their tests will be skipped" >&2
fi
exit 0
