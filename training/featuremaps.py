"""Intermediate activations of the nets' declared layers, through torch.fx feature extraction.

Built on `torchvision.models.feature_extraction` (DropBlock kept as a leaf module) rather than
hand-made hooks; the CLI's `featuremaps` command and the ONNX export both use it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from training.models import CifarNet
from training.models.layers import LEAF_MODULES


def resolve_layers(model: CifarNet, layers: Sequence[str] | None = None) -> list[str]:
    """The requested layers in forward order (all declared ones by default); unknown names fail."""
    declared = list(model.feature_layers)
    if layers is None:
        return declared
    unknown = [name for name in layers if name not in declared]
    if unknown:
        raise ValueError(f"unknown layer(s) {', '.join(unknown)}; this model has {', '.join(declared)}")
    return [name for name in declared if name in layers]


class FeatureModel(nn.Module):
    """Eval-mode wrapper returning (logits, activation of each declared layer), a fixed tuple
    that traces and exports to ONNX with one named output per layer."""

    def __init__(self, model: CifarNet, layers: Sequence[str] | None = None) -> None:
        super().__init__()
        self.layers = resolve_layers(model, layers)
        nodes = {name: name for name in self.layers}
        with warnings.catch_warnings():
            # InceptionNet's eval graph is a subsequence of its train graph (no auxiliary heads): expected.
            warnings.filterwarnings("ignore", message=".*subsequence of those obtained in train mode")
            # The logits are the output of the net's last node.
            self.extractor = create_feature_extractor(
                model.eval(),
                return_nodes={**nodes, **_output_node(model)},
                tracer_kwargs={"leaf_modules": LEAF_MODULES},
            )
        # The extractor shares its modules with `model`: keep the whole wrapper in eval mode,
        # or a caller that restores train mode (torch.onnx.export does) would flip the net too.
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.extractor(x)
        return (out["logits"], *(out[name] for name in self.layers))


def _output_node(model: CifarNet) -> dict[str, str]:
    from torchvision.models.feature_extraction import get_graph_node_names

    _, eval_nodes = get_graph_node_names(model, tracer_kwargs={"leaf_modules": LEAF_MODULES})
    return {eval_nodes[-1]: "logits"}


@torch.no_grad()
def extract(model: CifarNet, x: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """Activations of `layers` (all declared ones by default) for a batch `x`."""
    fm = FeatureModel(model, layers)
    logits, *acts = fm(x)
    return {"logits": logits, **dict(zip(fm.layers, acts))}


def save_featuremaps(
    model: CifarNet, image: Path, out_dir: Path, layers: Sequence[str] | None = None, max_channels: int = 64
) -> list[Path]:
    """One PNG grid of channels per layer for an image file; returns the written paths."""
    from cifarlens_runtime.grid import channel_grid
    from cifarlens_runtime.preprocess import preprocess

    x = torch.from_numpy(preprocess(Path(image))).unsqueeze(0)
    device = next(model.parameters()).device
    acts = extract(model, x.to(device), layers)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in resolve_layers(model, layers):
        path = out_dir / f"{Path(image).stem}_{name}.png"
        channel_grid(acts[name][0].float().cpu().numpy(), max_channels=max_channels).save(path)
        paths.append(path)
    return paths
