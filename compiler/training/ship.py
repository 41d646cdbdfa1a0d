"""Trained weights for ``netc compile --checkpoint``.

With ``--emit py`` the source goes out with a weights file beside it
(``NAME.pt``): for a deploy build, the training checkpoint converted by the
runtime deploy build's ``load_training_checkpoint`` (aux heads dropped, batch
norms folded, sibling convolutions stacked, as the passes say), which the
generated class loads with ``load_state_dict(torch.load(path, weights_only=True))``,
strict; for a training build, the training state_dict itself. With ``--emit
onnx`` the checkpoint goes to ``onnx_export.export`` as its ``state_dict``.
With ``--quantize int8``, ``calibration_batches`` reads the ``--calibrate``
source as training does (``data``: resized, normalised as the checkpoint's
recorded options say, which ``read_state`` returns) for ``backends.quantize``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from compiler import ir
from compiler.training import TrainingError, checkpoint

if TYPE_CHECKING:
    import numpy as np


def read_state(path: str, net: ir.Network) -> tuple[dict, dict]:
    """The training build's weights in ``path``, checked against ``net``'s training build,
    and the training options the checkpoint records ({} for a bare state_dict)."""
    from compiler.backends.runtime import build_module

    state, config = checkpoint.model_and_config(path, net.name)
    try:
        build_module(net).load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        detail = str(err).strip().splitlines()[1:2]
        raise TrainingError(
            f"checkpoint {path} does not fit {net.name}: {first} {' '.join(detail).strip()}".rstrip()
        ) from None
    return state, config


def weights(net: ir.Network, built: ir.Network, state, deploy: bool) -> dict:
    """The state_dict of ``built``'s module holding the trained weights."""
    import torch

    from compiler.backends.runtime import build_module

    if not deploy:
        return {k: v.contiguous() for k, v in state.items()}
    module = build_module(built, deploy=True)
    module.load_training_checkpoint(state)
    return {
        k: v.detach().contiguous()
        for k, v in module.state_dict().items()
        if isinstance(v, torch.Tensor)
    }


def save_weights(net, built, state, deploy: bool, path: Path) -> None:
    import torch

    torch.save(weights(net, built, state, deploy), path)


def calibration_batches(
    net: ir.Network,
    source: str,
    normalize: str | None,
    count: int,
    batch_size: int,
) -> Iterator[np.ndarray]:
    """``count`` batches of ``source``'s training split as ``net``'s input (float32 numpy):
    resized and normalised as ``netc train`` and ``netc eval`` feed it, without the
    augmentations, drawn in a fixed shuffled order (an image folder is stored class by class).

    The data is read here, so a bad source fails before anything is written; the
    batches are made one at a time as they are taken."""
    import torch

    from compiler.training import data

    # Class scores: the source's classes must fit them; any other output: no check.
    outputs = net.out_shape[0] if len(net.out_shape) == 1 else 2**31
    try:
        dataset = data.load(source, net.input_shape, outputs)
        norm = data.parse_normalize(normalize, net.input_shape[0])
    except TrainingError as err:  # data.load names the option --data: here it is --calibrate
        message = str(err)
        if message.startswith("--data "):
            message = "--calibrate " + message.removeprefix("--data ")
        raise TrainingError(message) from None
    prepare = data.Pipeline(net.input_shape, dataset.scale, normalize=norm)
    order = torch.randperm(len(dataset.train_y), generator=torch.Generator().manual_seed(0))
    starts = range(0, min(count * batch_size, len(order)), batch_size)
    return (prepare(dataset.train_x[order[s : s + batch_size]]).numpy() for s in starts)
