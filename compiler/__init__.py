"""netc's middle and back end: elaboration to IR, shape inference, backends.

The two calls most users need::

    net = compiler.load("specs/googlenet_v1.net", num_classes=10, aux=False)
    model = compiler.build("specs/googlenet_v1.net", num_classes=10)

``load`` returns the checked IR and never imports torch; ``build`` returns an
``nn.Module``; ``quantize_int8`` turns an fp32 ONNX export into a statically
quantized int8 one, calibrated on a ``netc train`` data source. Importing the package imports neither the front end (Lark) nor
torch: ``compiler.ir`` and ``compiler.expr`` stand alone.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compiler import ir

if TYPE_CHECKING:
    from torch import nn

    from compiler.backends.quantize import Quantized
    from compiler.budgets import Budget
    from compiler.elaborate import Override
    from dsl import SpecError

__all__ = ["Budget", "SpecError", "build", "ir", "load", "quantize_int8"]


def load(
    path: str | Path,
    input_shape: tuple[int, int, int] | None = None,
    overrides: Sequence[Override] = (),
    *,
    budget: Budget | None = None,
    **params: Any,
) -> ir.Network:
    """Parse, elaborate and shape-check a spec; ``params`` override its parameters.

    ``budget`` (``compiler.Budget(max_params=..., ...)``) bounds what the spec may
    ask for; the defaults refuse anything that would need tens of gigabytes."""
    from compiler.budgets import Budget
    from compiler.elaborate import Override
    from compiler.elaborate import elaborate as _elaborate  # keeps compiler.elaborate the module
    from dsl import load as load_files

    budget = budget or Budget()
    with no_gc():
        files = load_files(path, max_bytes=budget.max_file_size or 2**62)
        extra = [Override(name, value) for name, value in params.items()]
        return _elaborate(files, [*overrides, *extra], input_shape, budget=budget)


@contextmanager
def no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: elaboration makes many long-lived
    objects and no garbage cycles, and the collector's full passes over them
    made checking a 1,000-block spec twice as slow (bench/compile_scaling.py)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def build(
    spec: str | Path | ir.Network,
    input_shape: tuple[int, int, int] | None = None,
    deploy: bool = False,
    **params: Any,
) -> nn.Module:
    """An ``nn.Module`` for a spec path (or an already loaded network)."""
    from compiler.backends.runtime import build_module

    net = spec if isinstance(spec, ir.Network) else load(spec, input_shape, **params)
    return build_module(net, deploy=deploy)


def quantize_int8(
    spec: str | Path | ir.Network,
    fp32: str | Path,
    path: str | Path,
    calibrate: str,
    *,
    normalize: str | None = None,
    batches: int | None = None,
    method: str | None = None,
    activations: str | None = None,
    keep_float: Sequence[str] = (),
) -> Quantized:
    """Write ``fp32`` (an fp32 ONNX file of ``spec``, as ``onnx_export.export`` writes it)
    to ``path`` as a statically quantized int8 ONNX model: QDQ, per-channel symmetric
    int8 weights, ``activations`` (``"uint8"``, ``"int8"``), ``method`` (``"minmax"``,
    ``"entropy"``, ``"percentile"``) calibration on ``batches`` batches of ``calibrate``'s
    training split (a ``netc train --data`` source: ``"digits"``, ``"cifar10:PATH"``, ...),
    resized and normalised (``normalize``: ``"MEAN,STD"``) as in training; ``keep_float``:
    ``"first"`` (convolution) and/or ``"last"`` (linear layer) stay in float32.
    Bad data, options or files raise ``compiler.training.TrainingError`` or
    ``compiler.backends.quantize.QuantizeError``, each with a one-line message."""
    from compiler.backends import quantize
    from compiler.training import ship

    net = spec if isinstance(spec, ir.Network) else load(spec)
    data = ship.calibration_batches(
        net, calibrate, normalize, batches or quantize.DEFAULT_BATCHES, quantize.BATCH
    )
    return quantize.quantize(
        net,
        fp32,
        path,
        data,
        method=method or quantize.DEFAULT_METHOD,
        activations=activations or quantize.DEFAULT_ACTIVATIONS,
        keep_float=keep_float,
    )


def __getattr__(name: str) -> Any:
    if name == "SpecError":  # the front end's error, loaded on first use
        from dsl import SpecError

        return SpecError
    if name == "Budget":  # the resource budgets, likewise
        from compiler.budgets import Budget

        return Budget
    raise AttributeError(f"module 'compiler' has no attribute {name!r}")
