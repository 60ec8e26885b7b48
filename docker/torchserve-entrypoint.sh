#!/bin/sh
# Start TorchServe in the container with serving/config.properties (copied into the image at
# /srv/config/config.properties; mount another file there to change it), listening on all interfaces
# (the file binds 127.0.0.1, right for `make serve`, unreachable from the ui container).
# Token authorisation stays on: key_file.json (all three keys) lands in /srv/ts, a named volume only this
# container mounts, and so do TorchServe's logs and TEMP (worker sockets, unpacked archives). The archives come
# read-only from /srv/model_store.
# The key lifetime (token_expiration_min) comes from cifarlens_runtime/constants.py unless the config sets it.
# The key renewer (python -m cifarlens_runtime.keys) runs beside TorchServe: it renews the inference and
# management keys at half their lifetime and keeps the inference key alone in /srv/ui-keys/inference_key.json,
# the volume the ui container mounts read-only; its log goes to the container's output. It watches this shell's
# pid, which TorchServe keeps after `exec`, and ends with it.
set -eu
cd /srv/ts
sed -e 's#^\(inference_address\|management_address\|metrics_address\)=http://127.0.0.1:#\1=http://0.0.0.0:#' \
    -e '/^model_store=/d' /srv/config/config.properties > /srv/ts/config.properties
echo "model_store=/srv/model_store" >> /srv/ts/config.properties
export PYTHONPATH=/srv/docker
grep -q '^token_expiration_min=' /srv/ts/config.properties || python -c \
    'from cifarlens_runtime.constants import TOKEN_EXPIRATION_MIN as m; print(f"token_expiration_min={m}")' \
    >> /srv/ts/config.properties
rm -f /srv/ts/key_file.json /srv/ui-keys/inference_key.json
rm -rf /srv/ts/tmp
mkdir -p /srv/ts/tmp
python -m cifarlens_runtime.keys --pid $$ --key-file /srv/ts/key_file.json --config /srv/ts/config.properties \
    --inference-key-file /srv/ui-keys/inference_key.json &
unset PYTHONPATH
export TEMP=/srv/ts/tmp TMPDIR=/srv/ts/tmp LOG_LOCATION=/srv/ts/logs METRICS_LOCATION=/srv/ts/logs
exec torchserve --start --foreground --ncs --model-store /srv/model_store --ts-config /srv/ts/config.properties --models all
