"""fp32 ONNX to int8 ONNX: static quantization for CPU deployment.

``quantize(net, fp32, path, batches)`` reads an fp32 ONNX file of ``net`` (the
one ``onnx_export.export`` writes: one input, N x C x H x W with N dynamic),
calibrates activation ranges on ``batches`` (float32 arrays, the network's
input as the model sees it: resized and normalised), and writes the model in
the QDQ format with onnxruntime's ``quantize_static``: QuantizeLinear /
DequantizeLinear pairs around every quantized operator, which onnxruntime's
CPU provider fuses into integer kernels (QLinearConv, QGemm, ...).

* Weights: int8, symmetric, one scale per output channel (``per_channel``).
* Activations: ``uint8`` (asymmetric, the default) or ``int8``. onnxruntime's
  x86 integer kernels multiply unsigned by signed bytes (AVX2, AVX-512 VNNI's
  ``vpdpbusd``): with uint8 activations GoogLeNet-CIFAR at batch 16 runs in
  0.25x the fp32 time on a VNNI CPU, with int8 activations in 0.64x
  (``bench/int8_speed.py --compare``). The two agree equally well with fp32:
  a ReLU's output is non-negative, and uint8 with zero point 0 and int8 with
  zero point -128 hold the same 256 values.
* Calibration: ``minmax`` (the default), ``entropy`` or ``percentile``.
  Measured on GoogLeNet-CIFAR trained on digits (``bench/int8_speed.py
  --compare``): MinMax and Entropy give the same scales here (100% top-1
  agreement with fp32 on the held-out split, logits off by 0.9% RMS), while
  Percentile clips ranges that matter after batch-norm folding (99.7%, -0.28
  points, 1.25%). MinMax is also the cheapest (at 32 batches Entropy took
  2.4x as long) and keeps memory bounded (the calibration model reduces every
  tensor to its minimum and maximum per batch), where the histogram methods
  keep every activation of every calibration batch until the end.
  (onnxruntime's ``CalibMaxIntermediateOutputs`` would bound that, but in
  1.32 it drops the batches it was meant to merge: microsoft/onnxruntime#18893.)
  8 batches of 32 images: 32 batches brought the logit error from 0.93% to
  0.85%, in 3.5x the time.
* ``keep_float``: ``first`` (the first convolution, which sees the normalised
  image) and/or ``last`` (the final Gemm/MatMul, the class scores) stay in
  float32. Off by default: top-1 did not change. ``last`` halves the logit
  error (0.93% to 0.49%) for no measurable time, worth it where the scores
  themselves are used; ``first`` costs time (GoogLeNet-CIFAR's first
  convolution in float: 0.35x fp32 instead of 0.25x) and gained nothing.
* ``preprocess``: onnxruntime's ``quant_pre_process`` (symbolic shape
  inference, its graph optimisations) before calibration. Off by default:
  ``onnx_export`` writes an optimised model whose shapes ONNX's checker has
  already inferred, and pre-processing changed neither the quantized graph
  (the same nodes) nor its speed, only took longer.

The result is checked with ``onnx.checker`` and carries the fp32 model's
metadata plus ``netc.quantization``. Depends on the IR (the input shape, the
name) and on the ONNX file; no other backend, no torch.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler import ir

METHODS = ("minmax", "entropy", "percentile")
ACTIVATIONS = ("uint8", "int8")
KEEP_FLOAT = ("first", "last")
DEFAULT_METHOD = "minmax"
DEFAULT_ACTIVATIONS = "uint8"
BATCH = 32  # images per calibration batch (netc compile --quantize int8)
DEFAULT_BATCHES = 8


class QuantizeError(Exception):
    """A bad input to quantization: one line for the user, no traceback."""


@dataclass(frozen=True)
class Quantized:
    path: Path
    seconds: float  # (pre-processing,) calibration, quantization and the check
    bytes: int
    images: int  # calibration images
    method: str
    activations: str
    kept_float: tuple[str, ...]  # ONNX node names left in float32
    quantized: int  # DequantizeLinear nodes (weights and activations)


def _input(model) -> tuple[str, tuple[Any, ...]]:
    """The model's one input (not an initializer): its name and its dims."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise QuantizeError(f"expected an ONNX model with one input, found {len(inputs)}")
    dims = tuple(
        d.dim_value if d.HasField("dim_value") else d.dim_param
        for d in inputs[0].type.tensor_type.shape.dim
    )
    return inputs[0].name, dims


def _kept_nodes(model, keep: Sequence[str]) -> list[str]:
    """The ONNX node names that ``keep`` (``first``, ``last``) leaves in float32."""
    names = []
    nodes = list(model.graph.node)
    if "first" in keep:
        names += [n.name for n in nodes if n.op_type == "Conv"][:1]
    if "last" in keep:
        names += [n.name for n in nodes if n.op_type in ("Gemm", "MatMul")][-1:]
    return names


class _Batches:
    """The calibration batches, checked as they come, as onnxruntime's reader hands them out."""

    def __init__(self, name: str, shape: tuple[int, ...], batches: Iterable[Any]) -> None:
        self.name, self.shape, self.images = name, shape, 0
        self._batches: Iterator[Any] = iter(batches)

    def get_next(self) -> dict[str, Any] | None:
        import numpy as np

        batch = next(self._batches, None)
        if batch is None:
            return None
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.shape:
            got = "x".join(map(str, batch.shape[1:]))
            want = "x".join(map(str, self.shape))
            raise QuantizeError(f"a calibration batch holds {got} images: the network takes {want}")
        self.images += len(batch)
        return {self.name: batch}


def _reader(batches: _Batches):
    """``batches`` as an onnxruntime ``CalibrationDataReader`` (imported only when used)."""
    from onnxruntime.quantization import CalibrationDataReader  # type: ignore[import-untyped]

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, Any] | None:
            return batches.get_next()

    return Reader()


def quantize(
    net: ir.Network,
    fp32: str | Path,
    path: str | Path,
    batches: Iterable[Any],
    *,
    method: str = DEFAULT_METHOD,
    activations: str = DEFAULT_ACTIVATIONS,
    keep_float: Sequence[str] = (),
    preprocess: bool = False,
) -> Quantized:
    """Write ``fp32`` (an fp32 ONNX file of ``net``) to ``path`` as a statically
    quantized int8 model, calibrated on ``batches`` (float32, N x C x H x W)."""
    if method not in METHODS:
        raise QuantizeError(f"calibration method must be one of {', '.join(METHODS)}: '{method}'")
    if activations not in ACTIVATIONS:
        raise QuantizeError(f"activations must be uint8 or int8, got '{activations}'")
    for item in keep_float:
        if item not in KEEP_FLOAT:
            raise QuantizeError(f"keep_float takes first and/or last, got '{item}'")
    import onnx
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

    start = time.perf_counter()
    try:
        model = onnx.load(str(fp32))
    except (OSError, DecodeError) as err:
        raise QuantizeError(f"{fp32}: not an ONNX model ({str(err).splitlines()[0]})") from None
    name, dims = _input(model)
    if len(dims) != 4 or tuple(dims[1:]) != tuple(net.input_shape):
        shown = "x".join(map(str, dims))
        raise QuantizeError(
            f"{fp32}: its input is {shown}, but {net.name} takes N x "
            + "x".join(map(str, net.input_shape))
        )
    with tempfile.TemporaryDirectory(prefix="netc-quantize-") as work:
        source, graph = Path(fp32), model
        if preprocess:
            source = Path(work) / "preprocessed.onnx"
            _preprocess(model, source)
            graph = onnx.load(str(source))
        reader = _Batches(name, tuple(net.input_shape), batches)
        kept = _kept_nodes(graph, keep_float)
        _quantize_static(source, Path(work) / "int8.onnx", reader, method, activations, kept)
        if reader.images == 0:
            raise QuantizeError("no calibration images")
        result = onnx.load(str(Path(work) / "int8.onnx"))
    _annotate(result, model, method, activations, kept, reader.images)
    onnx.checker.check_model(result, full_check=True)
    data = result.SerializeToString()
    quantized = sum(1 for n in result.graph.node if n.op_type == "DequantizeLinear")
    Path(path).write_bytes(data)
    return Quantized(
        Path(path),
        time.perf_counter() - start,
        len(data),
        reader.images,
        method,
        activations,
        tuple(kept),
        quantized,
    )


def _preprocess(model, target: Path) -> None:
    from onnxruntime.quantization.shape_inference import (  # type: ignore[import-untyped]
        quant_pre_process,
    )

    with _quiet():
        quant_pre_process(model, str(target), skip_symbolic_shape=False)


def _quantize_static(
    source: Path, target: Path, reader: _Batches, method: str, activations: str, kept: list[str]
) -> None:
    from onnxruntime.capi.onnxruntime_pybind11_state import (  # type: ignore[import-untyped]
        Fail,
        InvalidArgument,
    )
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    calibrate = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]
    extra: dict[str, Any] = {"WeightSymmetric": True, "ActivationSymmetric": False}
    with _quiet():
        try:
            quantize_static(
                str(source),
                str(target),
                _reader(reader),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=False,
                activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=kept,
                calibrate_method=calibrate,
                extra_options=extra,
            )
        except (ValueError, Fail, InvalidArgument) as err:
            if reader.images == 0:
                raise QuantizeError("no calibration images") from None
            raise QuantizeError(f"quantization failed: {str(err).splitlines()[0]}") from None


def _annotate(result, fp32, method: str, activations: str, kept: list[str], images: int) -> None:
    result.doc_string = (fp32.doc_string + "; " if fp32.doc_string else "") + ("int8 (QDQ) by netc")
    present = {p.key for p in result.metadata_props}
    for prop in fp32.metadata_props:
        if prop.key not in present:
            result.metadata_props.add(key=prop.key, value=prop.value)
    what = (
        f"int8 QDQ, per-channel symmetric int8 weights, {activations} activations, "
        f"{method} calibration on {images} images"
    )
    if kept:
        what += f", float32: {', '.join(kept)}"
    result.metadata_props.add(key="netc.quantization", value=what)


class _quiet:
    """onnxruntime's quantizer logs and warns (and prints) as it goes: not for netc's users."""

    def __enter__(self) -> None:
        import contextlib
        import io
        import logging
        import warnings

        self._stack = contextlib.ExitStack()
        self._stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        self._stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        self._stack.callback(root.setLevel, level)

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
