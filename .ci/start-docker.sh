#!/usr/bin/env bash
# Make a Docker daemon available for `make compose-test`: install Debian's docker.io, docker-compose and debootstrap
# when missing, start dockerd when none answers. Exit 0 when `docker info` works; otherwise print the reason on
# stdout (for .ci/run to show) and exit 1. A daemon started here has its pid in $DOCKERD_PID_FILE (for stopping).
set -u
DOCKERD_PID_FILE=${DOCKERD_PID_FILE:-/tmp/cifarlens-dockerd.pid}

if docker info >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "no Docker daemon answers and this is not root: cannot start dockerd"
    exit 1
fi
want=()
command -v dockerd >/dev/null 2>&1 || want+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || want+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || want+=(debootstrap)
if [ ${#want[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "no apt-get here to install ${want[*]}"
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${want[@]}" >/dev/null 2>&1; }; then
        echo "apt-get could not install ${want[*]}"
        exit 1
    fi
fi
if ! docker info >/dev/null 2>&1; then
    log=/tmp/cifarlens-dockerd.log
    nohup dockerd >"$log" 2>&1 &
    echo $! >"$DOCKERD_PID_FILE"
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        if ! kill -0 "$(cat "$DOCKERD_PID_FILE")" 2>/dev/null; then
            echo "dockerd exited at start: $(tail -n 3 "$log" | tr '\n' ' ')"
            exit 1
        fi
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        echo "dockerd did not answer within 60 s: $(tail -n 3 "$log" | tr '\n' ' ')"
        exit 1
    fi
fi
exit 0
