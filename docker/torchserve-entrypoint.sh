#!/bin/sh
# Start TorchServe in the container with serving/config.properties (copied into the image at
# /srv/config/config.properties; mount another file there to change it), listening on all interfaces
# (the file binds 127.0.0.1, right for `make serve`, unreachable from the ui container).
# Token authorisation stays on: key_file.json lands in /srv/ts (the named volume shared with the ui service),
# and so do TorchServe's logs and TEMP (worker sockets, unpacked archives). The archives come read-only
# from /srv/model_store.
set -eu
cd /srv/ts
sed -e 's#^\(inference_address\|management_address\|metrics_address\)=http://127.0.0.1:#\1=http://0.0.0.0:#' \
    -e '/^model_store=/d' /srv/config/config.properties > /srv/ts/config.properties
echo "model_store=/srv/model_store" >> /srv/ts/config.properties
rm -f /srv/ts/key_file.json
rm -rf /srv/ts/tmp
mkdir -p /srv/ts/tmp
export TEMP=/srv/ts/tmp TMPDIR=/srv/ts/tmp LOG_LOCATION=/srv/ts/logs METRICS_LOCATION=/srv/ts/logs
exec torchserve --start --foreground --ncs --model-store /srv/model_store --ts-config /srv/ts/config.properties --models all
