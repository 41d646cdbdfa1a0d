"""IR to ``nn.Module`` at runtime.

The module tree mirrors the spec: every named layer or block is an attribute,
a named chain is an ``nn.Sequential``, so the spec's names are the
``state_dict`` keys. Unnamed layers are weightless and run as functional calls.
In training the network returns its main output and every aux head's output
as a named tuple; in eval, the main tensor alone; a deploy build has no aux
heads at all.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Mapping
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn

from compiler import expr as ex
from compiler import ir, ops, shapes
from compiler.shapes import conv_out, pool_out


class ScaleShift(nn.Module):
    """``x * scale[c] + shift[c]`` with fixed constants (no state_dict entries)."""

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, scale: tuple[float, ...], shift: tuple[float, ...]):
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor(shift).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


def _plain_tensors_only(x: torch.Tensor) -> bool:
    """Whether ``x`` is a real CPU float tensor in inference (no autograd, no tracing,
    compiling or exporting): the case for oneDNN's private fused kernels."""
    return (
        _MKLDNN_CONV
        and type(x) is torch.Tensor  # not a fake, functional or traced tensor
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.dim() == 4
        and not torch.is_grad_enabled()
        and not torch.jit.is_tracing()
        and not torch.compiler.is_compiling()
        and not torch.compiler.is_exporting()
        and not torch.onnx.is_in_onnx_export()
    )


_MKLDNN_CONV = torch.backends.mkldnn.is_available() and hasattr(
    torch.ops.mkldnn, "_convolution_pointwise"
)


class Arena(threading.local):
    """Activation buffers of one deploy network, per thread: every step writes
    its output into the same memory on every call.

    A fresh tensor of a few MB is fresh pages from the OS, and the page faults
    that fill them cost about a fifth of a GoogLeNet forward on CPU (batch 16;
    bench/deploy_speed.py). The buffers are used only inside the network's
    forward (``ARENA`` is set there), in inference, on plain CPU tensors;
    they hold one set of activations per thread (about 160 MB for GoogLeNet at
    batch 16), replaced when the input shape changes. The network never
    returns one of them.
    """

    # Smaller outputs come from memory the C allocator keeps: no page faults to save,
    # and the in-place convolution's zeroing would cost more than it saves (batch 1).
    MIN_BYTES = 1 << 20

    def __init__(self) -> None:
        self.buffers: dict[object, torch.Tensor] = {}

    def get(
        self,
        key: object,
        shape: tuple[int, ...],
        like: torch.Tensor,
        dtype: torch.dtype | None = None,
        channels_last: bool | None = None,
    ) -> torch.Tensor:
        """The buffer ``key`` (an owner's id, and a name), of ``shape``, in the
        memory format of ``like`` (or channels_last as told)."""
        dtype = dtype or like.dtype
        if channels_last is None:  # channels innermost, as in a slice of a channels_last tensor
            channels_last = like.dim() == 4 and like.stride(1) <= min(like.stride()[2:])
        buffer = self.buffers.get(key)
        if (
            buffer is None
            or buffer.shape != shape
            or buffer.dtype != dtype
            or (channels_last != buffer.is_contiguous(memory_format=torch.channels_last))
        ):
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            buffer = torch.empty(shape, dtype=dtype, memory_format=fmt)
            self.buffers[key] = buffer
        return buffer

    def owns(self, x: torch.Tensor) -> bool:
        storage = x.untyped_storage().data_ptr()
        return any(b.untyped_storage().data_ptr() == storage for b in self.buffers.values())


ARENA: ContextVar[Arena | None] = ContextVar("netc_arena", default=None)


def _buffer(
    key: object, shape: tuple[int, ...], like: torch.Tensor, dtype=None, channels_last=None
) -> torch.Tensor | None:
    """The arena's buffer for an output of ``shape``, or None: outside a deploy
    forward, or too small to be worth it."""
    arena = ARENA.get()
    size = math.prod(shape) * (dtype or like.dtype).itemsize
    if arena is None or size < Arena.MIN_BYTES:
        return None
    return arena.get(key, shape, like, dtype, channels_last)


class FusedConv2d(nn.Conv2d):
    """A deploy convolution (``ir.FusedConv``): batch norm folded in, sibling
    convolutions stacked, ReLU applied in the call.

    On CPU in inference it runs oneDNN's convolution (the one ``torch.compile``
    uses) on a weight reordered once for oneDNN and cached until the weight
    changes, writing into the network's ``Arena`` (the in-place variant adds the
    convolution to its output buffer, so that is zeroed first); otherwise, and
    under tracing, compiling or export, a plain convolution. Either way the ReLU
    is ``torch.relu_`` on the output: oneDNN's fused ReLU post-op turns NaN into
    0 (and, after the in-place variant's add, inf too), where the training build
    keeps them (tests/test_deploy_checkpoints.py).
    """

    def __init__(self, op: ir.FusedConv):
        super().__init__(
            op.in_channels,
            op.out_channels,
            op.kernel_size,
            stride=op.stride,
            padding=op.padding,
            dilation=op.dilation,
            groups=op.groups,
            bias=op.bias,
        )
        self.relu = op.relu
        self._onednn = not shapes.onednn_unsafe(op)  # that kernel crashes on some shapes
        self._packed: tuple[tuple, torch.Tensor] | None = None

    def extra_repr(self) -> str:
        return super().extra_repr() + (", relu=True" if self.relu else "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.padding, tuple) and self._onednn and _plain_tensors_only(x):
            size = [
                conv_out(n, k, s, p, d)
                for n, k, s, p, d in zip(
                    x.shape[2:], self.kernel_size, self.stride, self.padding, self.dilation
                )
            ]
            out = _buffer(id(self), (x.shape[0], self.out_channels, *size), x)
            if out is None:
                y = torch.ops.mkldnn._convolution_pointwise(
                    x,
                    self._mkldnn_weight(x),
                    self.bias,
                    self.padding,
                    self.stride,
                    self.dilation,
                    self.groups,
                    "none",
                    [],
                    "",
                )
                return torch.relu_(y) if self.relu else y
            y = torch.ops.mkldnn._convolution_pointwise_.binary(
                out.zero_(),
                x,
                self._mkldnn_weight(x),
                self.bias,
                self.padding,
                self.stride,
                self.dilation,
                self.groups,
                "add",
                1.0,
                None,
                [],
                "",
            )
            return torch.relu_(y) if self.relu else y
        y = self._conv_forward(x, self.weight, self.bias)
        return F.relu(y, inplace=True) if self.relu else y

    def _mkldnn_weight(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        key = (w.data_ptr(), w._version, tuple(x.shape[1:]))
        if self._packed is None or self._packed[0] != key:
            # torch's stub for this op lags its signature (input size, lists).
            packed = torch._C._nn.mkldnn_reorder_conv2d_weight(  # type: ignore[call-arg]
                w.detach().contiguous().to_mkldnn(),
                self.padding,  # type: ignore[arg-type]
                self.stride,  # type: ignore[arg-type]
                self.dilation,  # type: ignore[arg-type]
                self.groups,
                x.shape,
            )
            self._packed = (key, packed)
        return self._packed[1]


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` that writes into the network's ``Arena`` when there is one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if ARENA.get() is None or not _plain_tensors_only(x):
            return super().forward(x)
        k, s, p, d = (
            v if isinstance(v, tuple) else (v, v)
            for v in (self.kernel_size, self.stride, self.padding, self.dilation)
        )
        size = [pool_out(*args, self.ceil_mode) for args in zip(x.shape[2:], k, s, p, d)]
        shape = (*x.shape[:2], *size)
        out = _buffer(id(self), shape, x)
        if out is None:
            return super().forward(x)
        indices = _buffer((id(self), "indices"), shape, x, torch.long)
        torch.ops.aten.max_pool2d_with_indices.out(
            x, k, s, p, d, self.ceil_mode, out=out, indices=indices
        )
        return out


# One entry per op kind: the module a named layer becomes.
# netc's own modules where torch.nn's will not do: built like the op's Torch
# descriptor says (``compiler.ops``); a fused convolution from its op.
_CLASSES: dict[str, Callable[..., nn.Module]] = {"maxpool": MaxPool2d, "scale_shift": ScaleShift}
_FROM_OP: dict[str, Callable[..., nn.Module]] = {"fused_conv": FusedConv2d}


def _scale_shift(x: torch.Tensor, scale, shift) -> torch.Tensor:
    return x * x.new_tensor(scale).view(1, -1, 1, 1) + x.new_tensor(shift).view(1, -1, 1, 1)


def _split(op) -> tuple[list, dict]:
    args = op.torch_args()
    return [v for _, v, pos, _ in args if pos], {n: v for n, v, pos, _ in args if not pos}


def _module_builder(tag: str) -> Callable[..., nn.Module]:
    if tag in _FROM_OP:
        return _FROM_OP[tag]
    cls = _CLASSES.get(tag) or getattr(nn, ops.OPS[tag].torch.module)

    def build(op) -> nn.Module:
        args, kwargs = _split(op)
        return cls(*args, **kwargs)

    return build


def _function(name: str) -> Callable[..., torch.Tensor]:
    """Looked up at each call, not cached: what F.dropout is may change (tests patch it)."""
    if name == "scale_shift":
        return _scale_shift
    owner, attr = name.split(".")
    return getattr({"F": F, "torch": torch}[owner], attr)


class _Call:
    """An unnamed layer's call, ``call(x, training)``, its arguments bound once
    from the op's Torch descriptor (picklable: the function is kept by name)."""

    __slots__ = ("args", "function", "kwargs", "training")

    def __init__(self, op) -> None:
        spec = op.torch
        args, self.kwargs = _split(op)
        self.function, self.args, self.training = spec.function, (*spec.extra, *args), spec.training

    def __call__(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        fn = _function(self.function)
        if self.training:
            return fn(x, *self.args, training=training, **self.kwargs)
        return fn(x, *self.args, **self.kwargs)


# op kind -> the module of a named layer; -> the call of an unnamed (weightless) one
MODULES: dict[str, Callable[..., nn.Module]] = {tag: _module_builder(tag) for tag in ops.OPS}
FUNCTIONS: dict[str, Callable[..., _Call]] = {
    tag: _Call for tag, op in ops.OPS.items() if op.torch.function is not None
}


def build_node(node: ir.Node, enabled: Callable[[ir.Expr | None], bool]) -> nn.Module:
    if isinstance(node, ir.Layer):
        return MODULES[node.op.op](node.op)
    if isinstance(node, ir.Seq):  # items keep their names: passes may remove some
        items = OrderedDict((_named(item), build_node(item, enabled)) for item in node.items)
        return nn.Sequential(items)
    if isinstance(node, ir.Block):
        return BlockModule(node.body, enabled, node.block)
    raise TypeError(f"a {node.kind} node is built by its enclosing block")


def _named(node: ir.Node) -> str:
    """A node that is a module attribute has a name (Concat and anonymous layers are none)."""
    assert node.name is not None, f"an unnamed {node.kind} as a module"
    return node.name


class BlockModule(nn.Module):
    """One block instance: its named children, run in spec order."""

    # torch types children as optional; netc registers none that is None.
    _modules: dict[str, nn.Module]  # type: ignore[assignment]

    def __init__(
        self, body: tuple[ir.Node, ...], enabled: Callable[[ir.Expr | None], bool], block: str
    ):
        super().__init__()
        # Internal attributes start with '_': spec names cannot, so no layer shadows them.
        self._block = block
        self._steps: list[tuple[str, object]] = self._compile(body, enabled)

    def _compile(
        self, body: tuple[ir.Node, ...], enabled: Callable[[ex.Expr | None], bool]
    ) -> list[tuple[str, object]]:
        """The steps that run ``body``, its modules added to this one as they come."""
        steps: list[tuple[str, object]] = []
        for node in body:
            if isinstance(node, ir.Layer) and not enabled(node.guard):
                continue
            if (
                isinstance(node, ir.Concat)
                and node.join == "cat"
                and all(b.name is not None and not isinstance(b, ir.Group) for b in node.branches)
            ):
                for branch in node.branches:
                    self.add_module(_named(branch), build_node(branch, enabled))
                steps.append(("concat", tuple(b.name for b in node.branches)))
            elif isinstance(node, ir.Concat):
                branches = tuple(tuple(self._compile((b,), enabled)) for b in node.branches)
                steps.append(("join", (node.join, node.scales, branches)))
            elif isinstance(node, ir.Group):
                steps.extend(self._compile(node.items, enabled))
            elif isinstance(node, ir.Fork):
                head = node.head.op
                assert isinstance(head, ir.FusedConv)
                self.add_module(_named(node.head), build_node(node.head, enabled))
                for fb in node.branches:
                    if fb.node is not None:
                        self.add_module(fb.name, build_node(fb.node, enabled))
                reads = tuple((b.piece, b.node and b.name) for b in node.branches)
                steps.append(("fork", (node.head.name, head.split, reads)))
            elif isinstance(node, ir.Layer) and node.name is None:
                if node.op.op != "identity":  # the input itself: no step
                    steps.append(("call", FUNCTIONS[node.op.op](node.op)))
            else:
                self.add_module(_named(node), build_node(node, enabled))
                steps.append(("module", node.name))
        return steps

    def extra_repr(self) -> str:
        return f"block={self._block}"

    def _step(self, kind: str, what, x: torch.Tensor) -> torch.Tensor:
        if kind == "module":
            return self._modules[what](x)
        if kind == "concat":
            return self._cat([self._modules[name](x) for name in what], what)
        if kind == "join":
            join, scales, branches = what
            outputs = []
            for steps in branches:
                y = x
                for step_kind, step_what in steps:
                    y = self._step(step_kind, step_what, y)
                outputs.append(y)
            if join == "cat":
                return self._cat(outputs, what)
            if scales:
                outputs = [y if s == 1 else y * s for y, s in zip(outputs, scales)]
            out = outputs[0]
            for y in outputs[1:]:
                out = out + y if join == "add" else out * y
            return out
        if kind == "fork":
            head, split, reads = what
            pieces = torch.split(self._modules[head](x), split, 1)
            outputs = []
            for piece, name in reads:
                y = x if piece is None else pieces[piece]
                if name is not None and piece is not None:
                    # A slice of channels is no input for a convolution: copy it
                    # into a buffer here rather than into fresh memory there.
                    buffer = _buffer((id(self), name), y.shape, y)
                    y = y if buffer is None else buffer.copy_(y)
                outputs.append(y if name is None else self._modules[name](y))
            return self._cat(outputs, what)
        return what(x, self.training)

    def _cat(self, outputs: list[torch.Tensor], key) -> torch.Tensor:
        shape = (outputs[0].shape[0], sum(y.shape[1] for y in outputs), *outputs[0].shape[2:])
        out = _buffer((id(self), key), shape, outputs[0])
        if out is None or not _plain_tensors_only(outputs[0]):
            return torch.cat(outputs, 1)
        return torch.cat(outputs, 1, out=out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for kind, what in self._steps:
            x = self._step(kind, what, x)
        return x


class NetworkModule(BlockModule):
    """The whole network: the body, plus aux heads tapped off named nodes in training."""

    def __init__(self, net: ir.Network, deploy: bool = False):
        super().__init__(net.body, net.enabled, net.name)
        self._network = net.name
        heads = () if deploy else net.active_aux()
        self.aux_weights = {head.name: head.weight for head in heads}
        self._taps: dict[str, list[str]] = {}
        for head in heads:
            self.add_module(head.name, build_node(head.head, net.enabled))
            self._taps.setdefault(head.tap, []).append(head.name)
        self._outputs: Callable[..., tuple[torch.Tensor, ...]] = namedtuple(  # type: ignore[misc]
            f"{net.name}Outputs", ["main", *self.aux_weights]
        )
        self._ir = net
        self._deploy = deploy
        self._channels_last = net.memory_format == "channels_last"
        if self._channels_last:
            self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self._arena = Arena() if net.passes else None

    def use_arena(self, enabled: bool = True) -> None:
        """Deploy builds keep their activations in per-thread buffers (``Arena``),
        trading memory for speed; ``use_arena(False)`` frees them and stops that."""
        self._arena = Arena() if enabled else None

    def forward(self, x: torch.Tensor):
        arena = self._arena if not self.training and _plain_tensors_only(x) else None
        if arena is None:
            return self._forward(x)
        token = ARENA.set(arena)
        try:
            y = self._forward(x)
        finally:
            ARENA.reset(token)
        return y.clone() if arena.owns(y) else y

    def _forward(self, x: torch.Tensor):
        if (
            self._channels_last
            and x.dim() == 4
            and not x.is_contiguous(memory_format=torch.channels_last)
        ):
            buffer = _buffer("input", x.shape, x, channels_last=True)
            if buffer is None:
                x = x.contiguous(memory_format=torch.channels_last)
            else:
                x = buffer.copy_(x)
        aux: dict[str, torch.Tensor] = {}
        for kind, what in self._steps:
            x = self._step(kind, what, x)
            if self.training and kind == "module" and what in self._taps:
                for name in self._taps[what]:
                    aux[name] = self._modules[name](x)
        if self.training and self.aux_weights:
            return self._outputs(x, **aux)
        return x

    def load_training_checkpoint(self, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
        """Load a training checkpoint (the unoptimised model's ``state_dict``):
        batch norms are folded and sibling convolutions stacked as the IR's
        ``FusedConv`` sources say. The aux heads' keys are dropped, and
        returned; any other key left over or missing is an error."""
        converted, dropped = training_to_deploy(self._ir, state_dict, drop_aux=self._deploy)
        self.load_state_dict(converted, strict=True)
        return dropped

    def loss(self, outputs, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the main output plus each aux head's, times its weight."""
        if isinstance(outputs, torch.Tensor):
            return F.cross_entropy(outputs, target)
        total = F.cross_entropy(outputs.main, target)
        for name, weight in self.aux_weights.items():
            total = total + weight * F.cross_entropy(getattr(outputs, name), target)
        return total


class CheckpointError(KeyError):
    """A training checkpoint that does not fit the network: keys missing or left over."""

    def __str__(self) -> str:
        return self.args[0]


class CheckpointValueError(ValueError):
    """A training checkpoint whose value for a key is no tensor, or of the wrong shape."""


def training_to_deploy(
    net: ir.Network, state_dict: Mapping[str, torch.Tensor], drop_aux: bool = True
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A training checkpoint as the state_dict of ``net``'s module, and the aux
    heads' keys dropped (those of ``net.dropped_aux``, and of every aux head
    when ``drop_aux``). Each ``fused_conv`` takes its weight and bias from its
    ``ir.ConvSource`` list; every other layer keeps its keys."""
    left = dict(state_dict)
    heads = {*net.dropped_aux, *(a.name for a in net.aux if drop_aux)}
    dropped = [key for key in left if key.split(".", 1)[0] in heads]
    for key in dropped:
        del left[key]
    missing: list[str] = []

    def take(key: str, shape: tuple[int, ...] | None = None) -> torch.Tensor | None:
        """``key``'s tensor, of ``shape`` if given; None if missing (noted as
        missing if a shape is given: without one, the key is optional)."""
        if key not in left:
            if shape is not None:
                missing.append(key)
            return None
        value = left.pop(key)
        if not isinstance(value, torch.Tensor):
            raise CheckpointValueError(
                f"the checkpoint does not fit {net.name}: {key} is a {type(value).__name__}, "
                "not a tensor"
            )
        if shape is not None and tuple(value.shape) != shape:
            raise CheckpointValueError(
                f"the checkpoint does not fit {net.name}: {key} has shape "
                f"{tuple(value.shape)}, expected {shape}"
            )
        return value

    out: dict[str, torch.Tensor] = {}
    layers = [*ir.layers(net.body)]
    if not drop_aux:
        layers += [pair for a in net.active_aux() for pair in ir.layers((a.head,))]
    for path, layer in layers:
        if isinstance(layer.op, ir.FusedConv):
            op = layer.op
            per_source = (op.in_channels // op.groups, *op.kernel_size)
            fused = [_fold(source, take, per_source) for source in op.sources]
            folded = [f for f in fused if f is not None]
            if len(folded) == len(fused):
                out[f"{path}.weight"] = torch.cat([w for w, _ in folded])
                if layer.op.bias:
                    out[f"{path}.bias"] = torch.cat([b for _, b in folded])
        elif layer.op.op in ir.STATEFUL_OPS:
            for key in [k for k in left if k.rpartition(".")[0] == path]:
                value = take(key)  # its shape is checked by load_state_dict
                assert value is not None  # the key is there
                out[key] = value
    if missing or left:
        parts = []
        if missing:
            parts.append("missing keys: " + _some(missing))
        if left:
            parts.append("unexpected keys: " + _some(list(left)))
        raise CheckpointError(f"the checkpoint does not fit {net.name}: " + "; ".join(parts))
    return out, dropped


def _some(keys: list[str], shown: int = 8) -> str:
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def _fold(
    source: ir.ConvSource, take: Callable[..., torch.Tensor | None], per_channel: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """One source's weight (of ``out_channels`` x ``per_channel``) and bias, its batch
    norm folded in (in float64, then back to the checkpoint's dtype)."""
    channels = (source.out_channels,)
    weight = take(f"{source.conv}.weight", (*channels, *per_channel))
    bias = take(f"{source.conv}.bias", channels) if source.bias else None
    if source.bn is not None:
        stats = ("weight", "bias", "running_mean", "running_var")
        taken = {k: take(f"{source.bn}.{k}", channels) for k in stats}
        take(f"{source.bn}.num_batches_tracked")  # a training statistic, not needed
        bn = {k: v for k, v in taken.items() if v is not None}
        if len(bn) < len(stats):
            return None
    if weight is None:
        return None
    dtype = weight.dtype
    w = weight.double()
    b = bias.double() if bias is not None else w.new_zeros(source.out_channels)
    if source.bn is not None:
        scale = bn["weight"].double() / torch.sqrt(bn["running_var"].double() + source.eps)
        w = w * scale.view(-1, 1, 1, 1)
        b = (b - bn["running_mean"].double()) * scale + bn["bias"].double()
    return w.to(dtype), b.to(dtype)


_SCHEMES: dict[str, Callable[..., object]] = {
    "kaiming_normal": nn.init.kaiming_normal_,
    "kaiming_uniform": nn.init.kaiming_uniform_,
    "normal": nn.init.normal_,
    "trunc_normal": nn.init.trunc_normal_,
    "constant": nn.init.constant_,
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
}
_TARGETS = {"conv": nn.Conv2d, "linear": nn.Linear, "batchnorm": nn.BatchNorm2d}


def initialise(module: nn.Module, rules: tuple[ir.InitRule, ...]) -> None:
    """Apply the spec's ``init`` rules to weights, in module order; biases become zero."""
    by_type = {_TARGETS[rule.target]: rule for rule in rules}
    for m in module.modules():
        rule = by_type.get(type(m))
        if rule is None:
            continue
        _SCHEMES[rule.scheme](m.weight, **rule.args)
        if isinstance(m.bias, torch.Tensor):
            nn.init.zeros_(m.bias)


def build_module(net: ir.Network, deploy: bool = False) -> NetworkModule:
    module = NetworkModule(net, deploy=deploy)
    initialise(module, net.init)
    return module


def count_parameters(module: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in module.parameters())
