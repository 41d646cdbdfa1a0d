"""IR to ONNX: the eval graph of the deploy build, with a dynamic batch axis.

The graph is written straight from the IR, one node sequence per layer, in
one walk over the deploy network (``compiler.passes.optimise(net,
target="onnx")`` unless told otherwise): linear in the network's size, with
nothing traced, so a 100,000-layer chain exports in seconds (PyTorch's
exporter, ``torch.onnx.export``, took 4 to 12 s for GoogLeNet and was
superlinear in depth). Each op kind has one lowering (``LOWERINGS``, keyed
like ``compiler.ops.OPS``); the walk (``_Emitter``) runs chains, blocks,
joins and forks exactly as the runtime backend does (``BlockModule``), so
the graph computes what the deploy module computes.

The graph is the one onnxruntime runs fastest, the shape torchvision's own
GoogLeNet export has: Conv (its ReLU a Relu after it, which onnxruntime
fuses), Concat, MaxPool, GlobalAveragePool, Flatten, Gemm; batch norm folded
by the deploy passes; no Transpose or Reshape. Only what ONNX cannot say in
one op is written out in several: an adaptive average pool to a size that
does not divide the input (Slice and ReduceMean per window), an LRN of even
size, the exact GELU, PyTorch's ceil_mode where ONNX's size formula differs
(a Slice) or where an average pool's last window runs past the padding
(Pad, AveragePool, Mul: runtimes disagree on that window's divisor), a fused
sibling convolution's ``Fork`` (a Split; the ONNX target does not fuse
siblings, ``compiler.passes.TARGETS``).

The weights are the deploy module's ``state_dict`` (``compiler.backends.
runtime``): a training checkpoint converted as the passes say
(``load_training_checkpoint``), or the spec's initialisation under
``torch.manual_seed(seed)``. Initializers are named after its keys; nodes
after the module paths of their layers (an unnamed layer: its parent's path
and its op, ``inception3a.relu``), made unique with ``_1``, ``_2`` ...
Constants a lowering needs are initializers named after their node.

Opset 18 (``OPSET``). The graph has one input, ``input`` (N x C x H x W, N
the symbolic dimension ``batch``), and one output, ``output`` (N x classes,
same N). The model is checked with ``onnx.checker.check_model(full_check=True)``,
which also runs ONNX shape inference, before it is written. The same network
and weights give the same bytes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compiler import ir

if TYPE_CHECKING:
    import numpy as np
    import onnx

OPSET = 18
IR_VERSION = 8  # the IR version that came with opset 18: what the oldest runtime for it reads
PROTOBUF_LIMIT = 2**31 - 1  # bytes: one ONNX file (a protobuf message) cannot be larger
INPUT = "input"
OUTPUT = "output"
BATCH = "batch"  # the input's and output's symbolic first dimension


@dataclass(frozen=True)
class Exported:
    path: Path
    opset: int
    seconds: float  # building the graph, checking and serialising it; not the weights
    bytes: int


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


# -- the graph under construction --------------------------------------------------------------


class Graph:
    """The nodes and initializers of one graph, in order, and its names.

    Node outputs, initializers and node names share one namespace: a node's
    (first) output is named as the node is, so every name in the file says
    where it comes from.
    """

    def __init__(
        self,
        proto: onnx.GraphProto,
        weights: Mapping[str, np.ndarray],
        reserved: tuple[str, ...] = (),
    ):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.proto = proto  # nodes and initializers are added in place: no copies
        self.weights = weights
        self.taken: set[str] = {*reserved, *weights}
        self.added: set[str] = set()  # the weights made initializers so far
        self.attributes: dict[tuple, onnx.AttributeProto] = {}

    def unique(self, name: str) -> str:
        """``name``, or ``name_1``, ``name_2`` ... if it is taken; taken from now on."""
        found, index = name, 0
        while found in self.taken:
            index += 1
            found = f"{name}_{index}"
        self.taken.add(found)
        return found

    def node(self, op_type: str, inputs: list[str], name: str, **attributes: Any) -> str:
        """Add a node named ``name`` (made unique); its output, named as it is."""
        return self.nodes_out(op_type, inputs, name, 1, **attributes)[0]

    def nodes_out(
        self, op_type: str, inputs: list[str], name: str, outputs: int, **attributes: Any
    ) -> list[str]:
        """Add a node with ``outputs`` outputs: the first named as the node, then ``.1`` ..."""
        name = self.unique(name)
        names = [name, *(self.unique(f"{name}.{i}") for i in range(1, outputs))]
        node = self.proto.node.add(op_type=op_type, name=name, input=inputs, output=names)
        node.attribute.extend(self._attribute(k, v) for k, v in sorted(attributes.items()))
        return names

    def _attribute(self, key: str, value: Any) -> onnx.AttributeProto:
        """``helper.make_attribute``, made once per key and value: it costs more
        than the rest of a node (a 100,000-layer chain has 50,000 ``pads``)."""
        cache_key = (key, type(value), tuple(value) if isinstance(value, list) else value)
        found = self.attributes.get(cache_key)
        if found is None:
            found = self.attributes[cache_key] = self.helper.make_attribute(key, value)
        return found

    def weight(self, key: str) -> str:
        """The initializer of the state_dict entry ``key``, added on first use."""
        if key not in self.added:
            self.added.add(key)
            self.proto.initializer.append(self.numpy_helper.from_array(self.weights[key], key))
        return key

    def constant(self, name: str, value: Any, dtype: str = "float32") -> str:
        """An initializer holding ``value`` (a number or nested lists), named after ``name``."""
        import numpy as np

        name = self.unique(name)
        tensor = self.numpy_helper.from_array(np.array(value, dtype=dtype), name)
        self.proto.initializer.append(tensor)
        return name

    def ints(self, name: str, values: list[int]) -> str:
        """An int64 vector: the ``axes``, ``starts`` ... inputs of Slice, Split, ReduceMean."""
        return self.constant(name, values, "int64")


# -- one lowering per op kind --------------------------------------------------------------------
# A lowering adds the nodes of one layer: ``lower(graph, layer, x, path, name)`` -> the
# output's name. ``x`` is the input's name, ``path`` the layer's module path (its
# state_dict keys start with it), ``name`` what its nodes are named after.

Lowering = Callable[[Graph, ir.Layer, str, str, str], str]
LOWERINGS: dict[str, Lowering] = {}


def lowers(*tags: str) -> Callable[[Lowering], Lowering]:
    def add(fn: Lowering) -> Lowering:
        for tag in tags:
            if tag in LOWERINGS:
                raise ValueError(f"op {tag!r} is lowered twice")
            LOWERINGS[tag] = fn
        return fn

    return add


def _pads(padding: tuple[int, int]) -> list[int]:
    """ONNX's pads (every begin, then every end) of PyTorch's symmetric padding."""
    return [*padding, *padding]


@lowers("conv", "fused_conv")
def _conv(g: Graph, layer: ir.Layer, x: str, path: str, name: str) -> str:
    op = layer.op
    assert isinstance(op, ir.Conv | ir.FusedConv)
    if op.padding == "same":  # PyTorch pads the odd one out at the end
        totals = [d * (k - 1) for k, d in zip(op.kernel_size, op.dilation)]
        pads = [t // 2 for t in totals] + [t - t // 2 for t in totals]
    else:
        pads = _pads(op.padding)
    inputs = [x, g.weight(f"{path}.weight")]
    if op.bias:
        inputs.append(g.weight(f"{path}.bias"))
    y = g.node(
        "Conv",
        inputs,
        name,
        kernel_shape=list(op.kernel_size),
        strides=list(op.stride),
        pads=pads,
        dilations=list(op.dilation),
        group=op.groups,
    )
    if isinstance(op, ir.FusedConv) and op.relu:
        y = g.node("Relu", [y], f"{name}.relu")
    return y


@lowers("batchnorm")
def _batchnorm(g: Graph, layer: ir.Layer, x: str, path: str, name: str) -> str:
    op = layer.op
    assert isinstance(op, ir.BatchNorm)
    stats = [g.weight(f"{path}.{key}") for key in ("weight", "bias", "running_mean", "running_var")]
    return g.node("BatchNormalization", [x, *stats], name, epsilon=op.eps)


def _unary(op_type: str, **attributes: Any) -> Lowering:
    def lower(g: Graph, layer: ir.Layer, x: str, path: str, name: str) -> str:
        return g.node(op_type, [x], name, **attributes)

    return lower


def _itself(g: Graph, layer: ir.Layer, x: str, path: str, name: str) -> str:
    """Identity, and dropout in eval mode: the input itself, no node."""
    return x


lowers("relu")(_unary("Relu"))
lowers("sigmoid")(_unary("Sigmoid"))
lowers("tanh")(_unary("Tanh"))
lowers("hardswish")(_unary("HardSwish"))
lowers("flatten")(_unary("Flatten", axis=1))  # torch.flatten(x, 1); a flat input stays as it is
lowers("identity", "dropout", "dropout2d")(_itself)


@lowers("relu6")
def _relu6(g: Graph, layer: ir.Layer, x: str, path: str, name: str) -> str:
    low, high = g.constant(f"{name}.min", 0.0), g.constant(f"{name}.max", 6.0)
    return g.node("Clip", [x, low, high], name)


@lowers("leaky_relu")
def _leaky_relu(g: Graph, layer: ir.Layer, x: str, path: str, name: str) -> str:
    assert isinstance(layer.op, ir.ops.LeakyReLU)
    return g.node("LeakyRelu", [x], name, alpha=layer.op.negative_slope)


@lowers("gelu")
def _gelu(g: Graph, layer: ir.Layer, x: str, path: str, name: str) -> str:
    """x * 0.5 * (1 + erf(x / sqrt 2)): opset 18 has no Gelu; onnxruntime fuses this
    pattern (Div, Erf, Add, Mul, Mul: PyTorch's own export of it) into its Gelu kernel."""
    scaled = g.node("Div", [x, g.constant(f"{name}.sqrt2", math.sqrt(2.0))], f"{name}.div")
    erf = g.node("Erf", [scaled], f"{name}.erf")
    plus = g.node("Add", [erf, g.constant(f"{name}.one", 1.0)], f"{name}.add")
    times = g.node("Mul", [x, plus], f"{name}.mul")
    return g.node("Mul", [times, g.constant(f"{name}.half", 0.5)], name)


@lowers("silu")
def _silu(g: Graph, layer: ir.Layer, x: str, path: str, name: str) -> str:
    return g.node("Mul", [x, g.node("Sigmoid", [x], f"{name}.sigmoid")], name)


@lowers("linear")
def _linear(g: Graph, layer: ir.Layer, x: str, path: str, name: str) -> str:
    op = layer.op
    assert isinstance(op, ir.Linear)
    inputs = [x, g.weight(f"{path}.weight")]
    if op.bias:
        inputs.append(g.weight(f"{path}.bias"))
    return g.node("Gemm", inputs, name, transB=1)


@lowers("softmax")
def _softmax(g: Graph, layer: ir.Layer, x: str, path: str, name: str) -> str:
    assert isinstance(layer.op, ir.Softmax)
    return g.node("Softmax", [x], name, axis=layer.op.dim)


@lowers("scale_shift")
def _scale_shift(g: Graph, layer: ir.Layer, x: str, path: str, name: str) -> str:
    op = layer.op
    assert isinstance(op, ir.ScaleShift)
    scale = g.constant(f"{name}.scale", [[[s]] for s in op.scale])  # C x 1 x 1: broadcast
    shift = g.constant(f"{name}.shift", [[[s]] for s in op.shift])
    return g.node("Add", [g.node("Mul", [x, scale], f"{name}.mul"), shift], name)


def _cut_last_window(g: Graph, layer: ir.Layer, y: str, name: str) -> str:
    """PyTorch's ceil_mode drops a last window that would start in the right padding;
    opset 18's shape formula keeps it (onnxruntime drops it too: its sizes are
    PyTorch's), so where they differ the result is sliced to PyTorch's size."""
    op = layer.op
    assert isinstance(op, ir.MaxPool | ir.AvgPool)
    dilation = op.dilation if isinstance(op, ir.MaxPool) else (1, 1)
    sizes = layer.in_shape[1:]
    onnx_sizes = [
        -(-(n + 2 * p - d * (k - 1) - 1) // s) + 1
        for n, k, s, p, d in zip(sizes, op.kernel_size, op.stride, op.padding, dilation)
    ]
    if list(layer.out_shape[1:]) == onnx_sizes:
        return y
    ends = g.ints(f"{name}.ends", list(layer.out_shape[1:]))
    starts, axes = g.ints(f"{name}.starts", [0, 0]), g.ints(f"{name}.axes", [2, 3])
    return g.node("Slice", [y, starts, ends, axes], f"{name}.cut")


@lowers("maxpool")
def _maxpool(g: Graph, layer: ir.Layer, x: str, path: str, name: str) -> str:
    op = layer.op
    assert isinstance(op, ir.MaxPool)
    return _pool(g, layer, x, name, "MaxPool", dilations=list(op.dilation))


@lowers("avgpool")
def _avgpool(g: Graph, layer: ir.Layer, x: str, path: str, name: str) -> str:
    op = layer.op
    assert isinstance(op, ir.AvgPool)
    if op.ceil_mode and any(_overhang(layer)):
        return _avgpool_overhanging(g, layer, x, name)
    return _pool(g, layer, x, name, "AveragePool", count_include_pad=int(op.count_include_pad))


def _axes(layer: ir.Layer) -> list[tuple[int, int, int, int, int]]:
    """Per spatial axis of an average pool: input size, output size, kernel, stride, padding."""
    op = layer.op
    assert isinstance(op, ir.AvgPool)
    return list(zip(layer.in_shape[1:], layer.out_shape[1:], op.kernel_size, op.stride, op.padding))


def _overhang(layer: ir.Layer) -> list[int]:
    """Per spatial axis, how far ceil_mode's last window runs past the right padding."""
    return [max(0, (out - 1) * s + k - (n + 2 * p)) for n, out, k, s, p in _axes(layer)]


def _avgpool_overhanging(g: Graph, layer: ir.Layer, x: str, name: str) -> str:
    """A ceil_mode average pool whose last window runs past the padding. PyTorch
    divides such a window by the part of it inside the padded input; runtimes do
    not agree on that (onnxruntime before 1.29 divides by the whole kernel), so
    the graph says it without ceil_mode: zeros padded out to the last window's
    end, a floor-mode AveragePool over them, and a constant per output position
    that turns its kernel-size divisor into PyTorch's."""
    op = layer.op
    assert isinstance(op, ir.AvgPool)
    (ph, pw), (eh, ew) = op.padding, _overhang(layer)
    pads = g.ints(f"{name}.pads", [0, 0, ph, pw, 0, 0, ph + eh, pw + ew])
    padded = g.node("Pad", [x, pads], f"{name}.pad")
    y = g.node(
        "AveragePool", [padded], name, kernel_shape=list(op.kernel_size), strides=list(op.stride)
    )
    counts = [_window_counts(*axis, op.count_include_pad) for axis in _axes(layer)]
    area = op.kernel_size[0] * op.kernel_size[1]
    scale = [[area / (rows * cols) for cols in counts[1]] for rows in counts[0]]
    return g.node("Mul", [y, g.constant(f"{name}.divisor", scale)], f"{name}.divide")


def _window_counts(
    size: int, out: int, kernel: int, stride: int, padding: int, count_include_pad: bool
) -> list[int]:
    """PyTorch's avg_pool2d divisor along one axis, for each output position: the
    window clipped to the padded input, or to the input without count_include_pad."""
    counts = []
    for i in range(out):
        start = i * stride - padding
        end = min(start + kernel, size + padding)
        if not count_include_pad:
            start, end = max(start, 0), min(end, size)
        counts.append(end - start)
    return counts


def _pool(g: Graph, layer: ir.Layer, x: str, name: str, op_type: str, **extra: Any) -> str:
    """A max or average pool: kernel, stride, padding and ceil_mode as PyTorch has them."""
    op = layer.op
    assert isinstance(op, ir.MaxPool | ir.AvgPool)
    y = g.node(
        op_type,
        [x],
        name,
        kernel_shape=list(op.kernel_size),
        strides=list(op.stride),
        pads=_pads(op.padding),
        ceil_mode=int(op.ceil_mode),
        **extra,
    )
    return _cut_last_window(g, layer, y, name) if op.ceil_mode else y


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling windows along one axis: output ``i`` averages
    ``[floor(i * size / out), ceil((i + 1) * size / out))``."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


@lowers("adaptive_avgpool")
def _adaptive_avgpool(g: Graph, layer: ir.Layer, x: str, path: str, name: str) -> str:
    """GlobalAveragePool to 1x1; an AveragePool where the input divides evenly; else,
    per axis that does not, each output row (column) the mean of its window's slice."""
    op = layer.op
    assert isinstance(op, ir.AdaptiveAvgPool)
    sizes = layer.in_shape[1:]
    if op.output_size == (1, 1):
        return g.node("GlobalAveragePool", [x], name)
    if all(n % m == 0 for n, m in zip(sizes, op.output_size)):
        kernel = [n // m for n, m in zip(sizes, op.output_size)]
        return g.node("AveragePool", [x], name, kernel_shape=kernel, strides=kernel)
    y = x
    for axis, size, out in zip((2, 3), sizes, op.output_size):
        if size == out:
            continue
        at = f"{name}.{'hw'[axis - 2]}"
        axes = g.ints(f"{at}.axes", [axis])
        rows = []
        for index, (start, end) in enumerate(adaptive_windows(size, out)):
            window = [g.ints(f"{at}{index}.start", [start]), g.ints(f"{at}{index}.end", [end])]
            part = g.node("Slice", [y, *window, axes], f"{at}{index}.slice")
            rows.append(g.node("ReduceMean", [part, axes], f"{at}{index}", keepdims=1))
        y = g.node("Concat", rows, at, axis=axis)
    return y


@lowers("lrn")
def _lrn(g: Graph, layer: ir.Layer, x: str, path: str, name: str) -> str:
    """ONNX's LRN is PyTorch's ``local_response_norm`` (alpha / size times the sum of
    squares over a window of channels, plus k, to the beta: x divided by that) for an
    odd size. For an even one their windows differ (ONNX's is ``[c - (size - 1) // 2,
    c + size // 2]``, PyTorch's ``[c - size // 2, c + (size - 1) // 2]``) and
    onnxruntime has no kernel, so it is written out as PyTorch computes it: the
    squares, as N x 1 x C x H x W, averaged over ``size`` channels with that padding."""
    op = layer.op
    assert isinstance(op, ir.LRN)
    if op.size % 2:
        return g.node("LRN", [x], name, size=op.size, alpha=op.alpha, beta=op.beta, bias=op.k)
    axis = g.ints(f"{name}.axis", [1])
    squares = g.node("Mul", [x, x], f"{name}.square")
    volume = g.node("Unsqueeze", [squares, axis], f"{name}.unsqueeze")
    mean = g.node(
        "AveragePool",
        [volume],
        f"{name}.window",
        kernel_shape=[op.size, 1, 1],
        pads=[op.size // 2, 0, 0, (op.size - 1) // 2, 0, 0],
        count_include_pad=1,
    )
    mean = g.node("Squeeze", [mean, axis], f"{name}.squeeze")
    scaled = g.node("Mul", [mean, g.constant(f"{name}.alpha", op.alpha)], f"{name}.alpha")
    shifted = g.node("Add", [scaled, g.constant(f"{name}.k", op.k)], f"{name}.k")
    div = g.node("Pow", [shifted, g.constant(f"{name}.beta", op.beta)], f"{name}.pow")
    return g.node("Div", [x, div], name)


# -- the walk --------------------------------------------------------------------------------


class _Emitter:
    """Runs the deploy network's nodes into a ``Graph``, as ``runtime.BlockModule`` runs them."""

    def __init__(self, g: Graph, enabled: Callable[[ir.Expr | None], bool]):
        self.g, self.enabled = g, enabled

    def sequence(self, nodes: tuple[ir.Node, ...], prefix: str, x: str) -> str:
        """A block body, the network body or a group: switched-off layers are skipped."""
        for node in nodes:
            if isinstance(node, ir.Layer) and not self.enabled(node.guard):
                continue
            x = self.node(node, prefix, x)
        return x

    def node(self, node: ir.Node, prefix: str, x: str) -> str:
        if isinstance(node, ir.Layer):
            path = ir.join(prefix, node.name)
            name = path if node.name is not None else ir.join(prefix, node.op.op)
            return LOWERINGS[node.op.op](self.g, node, x, path, name)
        if isinstance(node, ir.Seq):  # an nn.Sequential runs every item
            path = ir.join(prefix, node.name)
            for item in node.items:
                x = self.node(item, path, x)
            return x
        if isinstance(node, ir.Block):
            return self.sequence(node.body, ir.join(prefix, node.name), x)
        if isinstance(node, ir.Group):
            return self.sequence(node.items, prefix, x)
        if isinstance(node, ir.Concat):
            outputs = [self.sequence((branch,), prefix, x) for branch in node.branches]
            return self.join(node, prefix, outputs)
        if isinstance(node, ir.Fork):
            return self.fork(node, prefix, x)
        raise TypeError(f"no lowering for a {node.kind} node")

    def join(self, node: ir.Concat, prefix: str, outputs: list[str]) -> str:
        g = self.g
        if node.join == "cat":
            return g.node("Concat", outputs, ir.join(prefix, "cat"), axis=1)
        name = ir.join(prefix, node.join)
        if node.scales:  # y * s, as the runtime computes it: in float32
            outputs = [
                y
                if s == 1
                else g.node("Mul", [y, g.constant(f"{name}.scale{i}", s)], f"{name}.scale{i}")
                for i, (y, s) in enumerate(zip(outputs, node.scales))
            ]
        out = outputs[0]
        for y in outputs[1:]:  # left to right, as the runtime sums (rounding included)
            out = g.node("Add" if node.join == "add" else "Mul", [out, y], name)
        return out

    def fork(self, node: ir.Fork, prefix: str, x: str) -> str:
        """The head convolution once, its output split along channels, each piece
        into its branch (other branches read the input), the branches concatenated."""
        g, head = self.g, node.head
        assert isinstance(head.op, ir.FusedConv) and head.name is not None
        y = self.node(head, prefix, x)
        at = f"{ir.join(prefix, head.name)}.split"
        sizes = g.ints(f"{at}.sizes", list(head.op.split))
        pieces = g.nodes_out("Split", [y, sizes], at, len(head.op.split), axis=1)
        outputs = []
        for branch in node.branches:
            z = x if branch.piece is None else pieces[branch.piece]
            outputs.append(z if branch.node is None else self.node(branch.node, prefix, z))
        return g.node("Concat", outputs, ir.join(prefix, "cat"), axis=1)


def build_model(deploy: ir.Network, weights: Mapping[str, Any]) -> onnx.ModelProto:
    """The ONNX model of ``deploy`` (a deploy build) with ``weights`` (its module's
    ``state_dict``: tensors or arrays), not yet checked."""
    import numpy as np
    import onnx
    import torch
    from onnx import TensorProto, helper

    arrays = {
        key: np.ascontiguousarray(
            value.detach().to("cpu", torch.float32).numpy() if torch.is_tensor(value) else value,
            dtype=np.float32,
        )
        for key, value in weights.items()
        if not key.endswith("num_batches_tracked")  # a training statistic
    }
    model = onnx.ModelProto(ir_version=IR_VERSION, producer_name="netc")
    model.opset_import.add(domain="", version=OPSET)
    g = Graph(model.graph, arrays, reserved=(INPUT, OUTPUT))
    y = _Emitter(g, deploy.enabled).sequence(deploy.body, "", INPUT)
    if y == INPUT:  # nothing but identities: the output is the input
        g.proto.node.add(op_type="Identity", name=OUTPUT, input=[INPUT], output=[OUTPUT])
    else:  # the last value is the output: renamed where it is made and read
        for node in g.proto.node:
            for names in (node.output, node.input):
                for i, value in enumerate(names):
                    if value == y:
                        names[i] = OUTPUT
    graph = model.graph
    graph.name = deploy.name
    graph.input.append(
        helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [BATCH, *deploy.input_shape])
    )
    graph.output.append(
        helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [BATCH, *deploy.out_shape])
    )
    model.doc_string = (
        f"{deploy.name} from {deploy.source}, deploy build (eval mode), exported by netc"
    )
    for key, value in (("netc.network", deploy.name), ("netc.spec", deploy.source)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def deploy_weights(
    net: ir.Network, deploy: ir.Network, state_dict: Mapping[str, Any] | None, seed: int
) -> dict[str, Any]:
    """The state_dict of ``deploy``'s module (tensors): ``state_dict``, a training
    checkpoint, converted (``runtime.training_to_deploy``) and checked as the
    module's ``load_training_checkpoint`` checks it, with its errors; or, when
    None, the training build's initialisation under ``torch.manual_seed(seed)``.

    A checkpoint is checked against the module's keys and shapes, the module
    built on the meta device (no memory, no initialisation), without its
    ``load_state_dict``: its strict load filters every key for every submodule
    (quadratic: minutes at 10,000 layers). That is called only where the keys
    or shapes do not fit, to raise its error.
    """
    import torch

    from compiler.backends.runtime import build_module, training_to_deploy

    if state_dict is None:
        torch.manual_seed(seed)
        state_dict = build_module(net, deploy=True).state_dict()
        return training_to_deploy(deploy, state_dict, drop_aux=True)[0]  # fits: netc made it
    converted, _ = training_to_deploy(deploy, state_dict, drop_aux=True)
    with torch.device("meta"):
        module = build_module(deploy, deploy=True)
    expected = module.state_dict()
    fits = expected.keys() == converted.keys() and all(
        isinstance(value, torch.Tensor) and value.shape == expected[key].shape
        for key, value in converted.items()
    )
    if not fits:
        module.load_state_dict(converted, strict=True, assign=True)  # raises what does not fit
    return converted


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
    ``optimise(net, PASSES)`` gives the plain deploy build. Weights come from
    ``state_dict``, a checkpoint of the training build (aux heads' keys dropped,
    every other key must fit) or, without one, from the spec's initialisation
    under ``torch.manual_seed(seed)``.
    """
    _check_size(deploy or net)
    import onnx

    from compiler import no_gc
    from compiler.passes import optimise

    deploy = optimise(net, target="onnx") if deploy is None else deploy
    with no_gc():  # many long-lived objects, no cycles (see compiler.no_gc)
        weights = deploy_weights(net, deploy, state_dict, seed)
        start = time.perf_counter()
        data = build_model(deploy, weights).SerializeToString()
        del weights
        onnx.checker.check_model(data, full_check=True)
    seconds = time.perf_counter() - start
    Path(path).write_bytes(data)
    return Exported(Path(path), OPSET, seconds, len(data))
