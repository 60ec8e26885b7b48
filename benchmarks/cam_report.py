"""The class activation maps' report: the Markdown of cam_cpu.md (defaults, faithfulness, blank maps, latency)."""

from __future__ import annotations

from typing import Any

from benchmarks.common import describe_machine, markdown_table
from cifarlens_runtime.vocabulary import GRADIENT_METHODS


def pct(x: float) -> str:
    """A share as a percentage with one decimal, for the tables."""
    return f"{100 * x:.1f} %"


def markdown_defaults(payload: dict[str, Any]) -> list[str]:
    """The chosen default of each net against today's (Grad-CAM at the last layer of at least 8x8)."""
    cols = ["net", "default", "blank maps", "single-cell maps", "drop: top 20 % of the map", "margin over random cells",
            "map mass in the image's quadrant", "today's default", "its blank maps", "its single-cell maps",
            "its drop", "its margin", "its mass"]  # fmt: skip
    rows = []
    for name, n in payload["nets"].items():
        found = {(r["method"], r["layer"]): r for r in n["candidates"]}
        new, old = found[tuple(n["default"].values())], found[tuple(n["baseline"].values())]
        rows.append({"net": name, "default": f"**{new['method']} at {new['layer']}**", "blank maps": pct(new["blank"]),
                     "single-cell maps": pct(new["single_cell"]), "drop: top 20 % of the map": new["drop_cam"],
                     "margin over random cells": new["margin"], "map mass in the image's quadrant": pct(new["mass_in_quadrant"]),
                     "today's default": f"{old['method']} at {old['layer']}", "its blank maps": pct(old["blank"]),
                     "its single-cell maps": pct(old["single_cell"]), "its drop": old["drop_cam"],
                     "its margin": old["margin"], "its mass": pct(old["mass_in_quadrant"])})  # fmt: skip
    return [
        f"## Defaults ({payload['settings']['images']} test images per net)",
        "",
        f"Rule: {payload['settings']['choice']}. The model file names the choice (`cam_method`, `cam_layer`); the "
        "export writes it into metadata.json.",
        "",
        markdown_table(rows, cols),
        "",
    ]


def markdown_blank(payload: dict[str, Any]) -> list[str]:
    """Blank and single-cell shares (top-1 class) and localisation (true class) of every method at every layer."""
    methods = list(GRADIENT_METHODS)
    cols = ["net", "layer", *(f"{m}: blank / single cell" for m in methods), *(f"{m}: mass" for m in methods)]
    rows = []
    for name, n in payload["nets"].items():
        for layer, by_method in n["maps_by_layer"].items():
            row: dict[str, Any] = {"net": name, "layer": layer}
            for m in methods:
                s = by_method[m]
                row[f"{m}: blank / single cell"] = f"{pct(s['blank'])} / {pct(s['single_cell'])}"
                row[f"{m}: mass"] = pct(s["mass_in_quadrant"])
            rows.append(row)
    return [
        "## Blank and single-cell maps, by layer and method",
        "",
        "Share of test images whose map (top-1 class) is all zeros (blank) or has one positive cell (single cell), "
        "and the localisation mass (true class, image in one quadrant of a grey canvas; chance 25 %). One forward "
        "and one backward pass per batch of 100 serve every layer and method. A 1x1 layer has one cell, so every "
        "map there that is not blank is single-cell.",
        "",
        markdown_table(rows, cols),
        "",
    ]


def markdown_candidates(payload: dict[str, Any]) -> list[str]:
    """Deletion and localisation of every candidate the search measured."""
    cols = ["net", "method", "layer", "blank", "drop: top 20 %", "drop: random 20 % of its cells", "margin", "mass",
            "qualifies"]  # fmt: skip
    rows = [{"net": name, "method": r["method"], "layer": r["layer"], "blank": pct(r["blank"]),
             "drop: top 20 %": r["drop_cam"], "drop: random 20 % of its cells": r["drop_random_cells"],
             "margin": r["margin"], "mass": pct(r["mass_in_quadrant"]),
             "qualifies": "baseline" if (r["method"], r["layer"]) == tuple(n["baseline"].values())
             else ("yes" if r["qualifies"] else "no")}
            for name, n in payload["nets"].items() for r in n["candidates"]]  # fmt: skip
    return [
        "## Candidates",
        "",
        "Deletion was measured for today's default and for every (method, layer) with maps of at least 2x2, at most "
        "1 % blank and localisation no worse than today's default (the others cannot qualify).",
        "",
        markdown_table(rows, cols),
        "",
    ]


def markdown_latency(payload: dict[str, Any]) -> list[str]:
    """The latency table (kept from an earlier run when this one skipped latency, which it says, with the date)."""
    nets = list(payload["nets"])
    source = payload.get("latency_from", {})
    when = (
        f"These rows come from the earlier run of {source['machine']['date'][:10]} ({describe_machine(source['machine'])}): "
        "this run did not re-measure latency (`--skip-latency`; the machine was shared)."
        if source.get("kept")
        else "Measured in this run."
    )
    cols = ["net", "layer", *payload["nets"][nets[0]]["latency_ms"], "CAM / prediction (REST)", "target <= 3x"]
    rows = []
    for name in nets:
        n = payload["nets"][name]
        rows.append({"net": name, "layer": n["layer"], **n["latency_ms"], "CAM / prediction (REST)": n["rest_ratio"],
                     "target <= 3x": "met" if n["rest_ratio_met"] else "missed"})  # fmt: skip
    return [
        "## Latency (p50, ms)",
        "",
        f"Batch 1, median of interleaved rounds; one TorchServe worker per net (1 thread), Grad-CAM at the layer "
        f"shown. {when}",
        "",
        markdown_table(rows, cols),
        "",
        "Grad-CAM against Captum's LayerGradCam on the eager net (float32, same images, layer and classes): largest "
        "difference of the [0, 1] maps "
        + ", ".join(f"{n} {payload['nets'][n]['captum_max_diff']:.1e}" for n in nets)
        + ". The tests compare every gradient method in float64 with pytorch-grad-cam (and Grad-CAM with Captum).",
        "",
    ]


def markdown(payload: dict[str, Any]) -> str:
    lines = ["# Class activation maps: blank maps, faithfulness and latency", ""]
    lines += markdown_defaults(payload)
    cols = ["net", "method", "layer", "top-1 prob", "drop: top 20 % of the map", "drop: random 20 % of its cells",
            "drop: least 20 %", "drop: 20 % scattered pixels", "images where the map beats random cells",
            "map mass in the image's quadrant", "images with > 50 % there"]  # fmt: skip
    rows = []
    for name, n in payload["nets"].items():
        for method, f in n["faithfulness"].items():
            d, loc = f["deletion"], f["localisation"]
            rows.append({"net": name, "method": method, "layer": n["default"]["layer"], "top-1 prob": d["top1_probability"],
                         "drop: top 20 % of the map": d["drop_cam"], "drop: random 20 % of its cells": d["drop_random_cells"],
                         "drop: least 20 %": d["drop_least_cam"], "drop: 20 % scattered pixels": d["drop_scattered"],
                         "images where the map beats random cells": f"{100 * d['cam_hurts_more_than_random_cells']:.0f} %",
                         "map mass in the image's quadrant": f"{100 * loc['mass_in_quadrant']:.0f} %",
                         "images with > 50 % there": f"{100 * loc['majority_in_quadrant']:.0f} %"})  # fmt: skip
    lines += [
        "## Faithfulness at the defaults (and Eigen-CAM at the same layer)",
        "",
        markdown_table(rows, cols),
        "",
        "Deletion: pixels set to the training mean colour; the drop is in the top-1 class's probability. The check "
        "compares the map's top 20 % with a random 20 % of the map's own cells, upsampled the same way (same blocky "
        "shapes, random places). Scattered single pixels hurt more than either on every net: they break the texture "
        "of the whole image, which says more about the nets than about the maps.",
        "",
        "Localisation: a test image in one quadrant of a 64x64 grey canvas, resized to 32x32 like any request; "
        "the map for the image's true class (Eigen-CAM has no class); chance is 25 %. The grey canvas has no edges, "
        "so even a layer that finds only edges localises well here: deletion is the other half of the check.",
        "",
    ]
    lines += markdown_blank(payload) + markdown_candidates(payload) + markdown_latency(payload)
    return "\n".join(lines)
