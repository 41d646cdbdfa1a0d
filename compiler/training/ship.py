"""Trained weights for ``netc compile --checkpoint``.

With ``--emit py`` the source goes out with a weights file beside it
(``NAME.pt``): for a deploy build, the training checkpoint converted by the
runtime deploy build's ``load_training_checkpoint`` (aux heads dropped, batch
norms folded, sibling convolutions stacked, as the passes say), which the
generated class loads with ``load_state_dict(torch.load(path, weights_only=True))``,
strict; for a training build, the training state_dict itself. With ``--emit
onnx`` the checkpoint goes to ``onnx_export.export`` as its ``state_dict``.
"""

from __future__ import annotations

from pathlib import Path

from compiler import ir
from compiler.training import TrainingError, checkpoint


def read_state(path: str, net: ir.Network):
    """The training build's weights in ``path``, checked against ``net``'s training build."""
    from compiler.backends.runtime import build_module

    state = checkpoint.model_state(path, net.name)
    try:
        build_module(net).load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        detail = str(err).strip().splitlines()[1:2]
        raise TrainingError(
            f"checkpoint {path} does not fit {net.name}: {first} {' '.join(detail).strip()}".rstrip()
        ) from None
    return state


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
