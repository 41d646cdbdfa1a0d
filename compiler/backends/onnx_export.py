"""IR to ONNX: the eval graph of the deploy build, with a dynamic batch axis.

The module comes from the runtime backend: the deploy build (no aux heads),
optimised by the deploy passes (``compiler.passes``: batch norm folded, sibling
convolutions fused, ...) unless told otherwise, in eval mode, with the weights
of a training checkpoint converted as the passes say. It is exported with ``torch.onnx.export(..., dynamo=True)``, the
torch.export-based exporter that is PyTorch's default since 2.9 and runs
offline (it translates through onnxscript's torchlib, no downloads). The
TorchScript-based exporter (``dynamo=False``) is faster on GoogLeNet (about
0.4 s against 4 to 5 s here) but deprecated, so it is not used.

Opset 18 (``OPSET``). The graph has one input, ``input`` (N x C x H x W, N
dynamic), and one output, ``output`` (N x classes, same N). The model is
checked with ``onnx.checker.check_model(full_check=True)``, which also runs
ONNX shape inference, before it is written.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler import ir

OPSET = 18
PROTOBUF_LIMIT = 2**31 - 1  # bytes: one ONNX file (a protobuf message) cannot be larger
INPUT = "input"
OUTPUT = "output"


@dataclass(frozen=True)
class Exported:
    path: Path
    opset: int
    seconds: float  # torch.onnx.export and the check, not building the module
    bytes: int


@contextlib.contextmanager
def _quiet():
    """The exporter's progress lines, warnings and log records are not for netc's users."""
    loggers = [
        logging.getLogger(name)
        for name in ("torch.onnx", "torch.export", "torch._export", "onnxscript")
    ]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _check_size(net: ir.Network) -> None:
    """Refuse, before anything is built, a model whose float32 weights alone pass protobuf's 2 GB."""
    from dsl.errors import Span, SpecError

    weights = 4 * ir.total_params(net.body)
    if weights > PROTOBUF_LIMIT - 2**24:  # headroom for the graph itself
        at = net.span
        raise SpecError(
            f"network {net.name} has {weights / 1e9:.1f} GB of float32 weights: more than one "
            "ONNX file can hold (2 GB, protobuf's limit)",
            Span(at.file, at.line, at.column, at.end_line, at.end_column),
            hint="export a smaller variant (--set), or compile to PyTorch source instead",
        )


def export(
    net: ir.Network,
    path: str | Path,
    state_dict: dict[str, Any] | None = None,
    seed: int = 0,
    deploy: ir.Network | None = None,
) -> Exported:
    """Write ``net``'s deploy build to ``path`` as ONNX.

    ``deploy`` is the build to export, ``net`` after ``compiler.passes.optimise``;
    when None, ``optimise(net, target="onnx")``: the passes that pay on ONNX
    (``compiler.passes.TARGETS`` decides, for ``netc compile --emit onnx`` too).
    ``optimise(net, PASSES)`` gives the plain deploy build. Weights come from ``state_dict``, a checkpoint of the
    training build (aux heads' keys dropped, every other key must fit) or, without
    one, from the spec's initialisation under ``torch.manual_seed(seed)``.
    """
    _check_size(deploy or net)
    import onnx
    import torch

    from compiler.backends.runtime import build_module
    from compiler.passes import optimise

    deploy = optimise(net, target="onnx") if deploy is None else deploy
    if state_dict is None:
        torch.manual_seed(seed)
        state_dict = build_module(net, deploy=True).state_dict()
    module = build_module(deploy, deploy=True).eval()
    module.load_training_checkpoint(state_dict)
    # Batch 2, not 1: torch.export specialises a dimension of size 1.
    example = torch.randn(2, *net.input_shape)
    start = time.perf_counter()
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            opset_version=OPSET,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            external_data=False,
            optimize=True,
            verbose=False,
        )
    assert program is not None  # None only from the legacy exporter (dynamo=False)
    model = program.model_proto
    model.doc_string = f"{net.name} from {net.source}, deploy build (eval mode), exported by netc"
    for key, value in (("netc.network", net.name), ("netc.spec", net.source)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    seconds = time.perf_counter() - start
    Path(path).write_bytes(data)
    return Exported(Path(path), OPSET, seconds, len(data))
