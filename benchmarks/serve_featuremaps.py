"""Serving a layer's feature maps through TorchServe: the feature-map route of every layer, 1 sequential client.

Compared with the same net's prediction through REST in the same rounds: the route should add at most
a few ms (the targets in benchmarks.serve_report), whatever the layer's size.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.serve_rest import rest_sequential
from benchmarks.serve_variant import Variant
from cifarlens_runtime.constants import ARCHIVE_VERSION, FEATURE_ROUTE
from serving.server import Server


def feature_map_variants(
    server: Server, names: Sequence[str], artifacts: Path, jpegs: list[bytes], args: argparse.Namespace
) -> list[Variant]:
    """Per net and layer (as the artefact's metadata lists them): 1 client, 1/`--feature-share` as many
    requests per round as a prediction variant."""
    from cifarlens_runtime.predictor import load_metadata

    n = max(max(args.requests // args.rounds, 1) // args.feature_share, 1)
    variants = []
    for name in names:
        for layer in load_metadata(artifacts / name)["feature_layers"]:
            path = f"/predictions/{name}/{ARCHIVE_VERSION}/{FEATURE_ROUTE}/{layer['name']}"

            def feat(n: int, offset: int, name: str = name, path: str = path) -> dict[str, Any]:
                return rest_sequential(server, name, path, jpegs, n, offset, args)

            shape = "×".join(str(s) for s in layer["shape"])
            fields = {"model": name, "layer": layer["name"], "shape": shape}
            variants.append(Variant("rest_feature_maps", fields, feat, n, lambda feat=feat: feat(5, 0)))
    return variants
