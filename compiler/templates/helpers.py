"""netc's helper code for generated modules, copied into them verbatim.

Each section from ``# netc: begin NAME`` to ``# netc: end`` is one piece the
source backend copies into a generated file that needs it
(``compiler/backends/source/render.py``); where the file had to rename one of
the names below (a block of the same name), the copy uses the new name.
This module is linted and type-checked like the rest of netc, and tested
(``tests/test_helpers.py``), but netc never imports it: the generated files
import torch only. ``ConvSource`` stands in for the generated file's own,
whose defaults are the network's.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

# The names a section may define or use that the generated file may rename.
RENAMABLE = ("ScaleShift", "scale_shift", "ConvSource")


class ConvSource(NamedTuple):
    conv: str
    bn: str | None = None
    bias: bool = True
    eps: float = 1e-5


# netc: begin ScaleShift
class ScaleShift(nn.Module):
    """``x * scale[c] + shift[c]`` with fixed constants (no state_dict entries)."""

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, scale: list[float], shift: list[float]) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor(shift).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


# netc: end
# netc: begin scale_shift
def scale_shift(x: torch.Tensor, scale: list[float], shift: list[float]) -> torch.Tensor:
    """``x * scale[c] + shift[c]``: a fixed per-channel affine map."""
    scale_ = torch.tensor(scale, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    shift_ = torch.tensor(shift, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x * scale_ + shift_


# netc: end
# netc: begin checkpoint
# What _fold reads of a batch norm (num_batches_tracked is not needed).
_BN_STATS = ("weight", "bias", "running_mean", "running_var")


def _tensor(state: dict[str, torch.Tensor], key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """``state[key]``, taken out of ``state``; an error unless a tensor of ``shape``."""
    value = state.pop(key)
    if not torch.is_tensor(value):  # load_state_dict's errors are RuntimeErrors too
        raise RuntimeError(f'"{key}" is a {type(value).__name__}, not a tensor')
    if tuple(value.shape) != shape:
        raise RuntimeError(
            f'size mismatch for "{key}": expected shape {tuple(shape)}, got {tuple(value.shape)}'
        )
    return value


def _fold(
    state: dict[str, torch.Tensor], source: ConvSource, shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Take ``source``'s tensors out of ``state``: its weight (of ``shape``; a first
    dimension of -1 takes any) and bias (zero if it has none), with its batch norm
    folded in, computed in float64::

        scale = bn.weight / sqrt(bn.running_var + eps)
        weight = conv.weight * scale[:, None, None, None]
        bias = (conv.bias - bn.running_mean) * scale + bn.bias
    """
    key = f"{source.conv}.weight"
    if shape[0] == -1 and isinstance(state[key], torch.Tensor):
        shape = (state[key].shape[0], *shape[1:])
    weight = _tensor(state, key, shape)
    channels = (shape[0],)
    w = weight.double()
    if source.bias:
        b = _tensor(state, f"{source.conv}.bias", channels).double()
    else:
        b = w.new_zeros(channels)
    if source.bn is not None:
        gamma, beta, mean, var = (
            _tensor(state, f"{source.bn}.{stat}", channels).double() for stat in _BN_STATS
        )
        state.pop(f"{source.bn}.num_batches_tracked", None)  # a training statistic
        scale = gamma / torch.sqrt(var + source.eps)
        w = w * scale.view(-1, 1, 1, 1)
        b = (b - mean) * scale + beta
    return w.to(weight.dtype), b.to(weight.dtype)


def _needs(source: ConvSource) -> list[str]:
    """The checkpoint keys _fold takes for ``source``."""
    keys = [f"{source.conv}.weight"] + ([f"{source.conv}.bias"] if source.bias else [])
    if source.bn is not None:
        keys += [f"{source.bn}.{stat}" for stat in _BN_STATS]
    return keys


def _fuse(
    state: dict[str, torch.Tensor],
    made_of: dict[str, tuple[ConvSource, ...]],
    model: nn.Module,
) -> dict[str, torch.Tensor]:
    """A training checkpoint (without aux heads) as ``model``'s state_dict: the
    weight and bias of each fused convolution (``made_of``: its sources, by module
    path) made from its sources' tensors, which must all be there, of the shapes
    ``model`` has; every other entry as it is."""
    state = dict(state)
    missing = [
        k for sources in made_of.values() for s in sources for k in _needs(s) if k not in state
    ]
    if missing:
        raise RuntimeError("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing))
    expected = model.state_dict()
    fused = {}
    for name, sources in made_of.items():
        shape = tuple(expected[f"{name}.weight"].shape)
        if len(sources) > 1:  # stacked: each source's output channels are checked below
            shape = (-1, *shape[1:])
        weights, biases = zip(*(_fold(state, source, shape) for source in sources))
        fused[f"{name}.weight"] = torch.cat(weights)
        if fused[f"{name}.weight"].shape != expected[f"{name}.weight"].shape:
            got = ", ".join(f'"{s.conv}.weight" {tuple(w.shape)}' for s, w in zip(sources, weights))
            raise RuntimeError(
                f'size mismatch for "{name}.weight": expected shape '
                f"{tuple(expected[f'{name}.weight'].shape)} from {got}"
            )
        if any(source.bias or source.bn is not None for source in sources):
            fused[f"{name}.bias"] = torch.cat(biases)
    clash = [k for k in fused if k in state]  # left over, and a fused weight's name
    if clash:
        raise RuntimeError("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in clash))
    return {**state, **fused}


# netc: end
