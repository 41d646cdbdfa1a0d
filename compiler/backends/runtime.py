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
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from compiler import expr as ex
from compiler import ir, ops


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


class FusedConv2d(nn.Conv2d):
    """A deploy convolution (``ir.FusedConv``): batch norm folded in, sibling
    convolutions stacked, its ReLU applied in place on its output.

    The same PyTorch calls as the generated deploy source, so the two run at the
    same speed and give the same numbers (NaN and inf included). oneDNN's private
    fused kernel with a prepacked weight and an activation arena ran here until
    bench/deploy_speed.py showed they do not pay once freed memory stays in the
    heap (``--mallopt``; README, "Deploy speed on CPU"): 5% slower at batch 16, 3% faster
    at batch 1, four times the memory of a forward.
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

    def extra_repr(self) -> str:
        return super().extra_repr() + (", relu=True" if self.relu else "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._conv_forward(x, self.weight, self.bias)
        return F.relu(y, inplace=True) if self.relu else y


# One entry per op kind: the module a named layer becomes.
# netc's own modules where torch.nn's will not do: built like the op's Torch
# descriptor says (``compiler.ops``); a fused convolution from its op.
_CLASSES: dict[str, Callable[..., nn.Module]] = {"scale_shift": ScaleShift}
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
            return torch.cat([self._modules[name](x) for name in what], 1)
        if kind == "join":
            join, scales, branches = what
            outputs = []
            for steps in branches:
                y = x
                for step_kind, step_what in steps:
                    y = self._step(step_kind, step_what, y)
                outputs.append(y)
            if join == "cat":
                return torch.cat(outputs, 1)
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
                outputs.append(y if name is None else self._modules[name](y))
            return torch.cat(outputs, 1)
        return what(x, self.training)

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

    def forward(self, x: torch.Tensor):
        if self._channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
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
