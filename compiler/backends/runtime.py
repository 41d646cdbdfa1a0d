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
from collections import namedtuple
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from compiler import ir


class ScaleShift(nn.Module):
    """``x * scale[c] + shift[c]`` with fixed constants (no state_dict entries)."""

    def __init__(self, scale: tuple[float, ...], shift: tuple[float, ...]):
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor(shift).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


# One entry per op kind: the module a named layer becomes.
MODULES: dict[str, Callable[..., nn.Module]] = {
    "conv": lambda op: nn.Conv2d(
        op.in_channels,
        op.out_channels,
        op.kernel_size,
        stride=op.stride,
        padding=op.padding,
        dilation=op.dilation,
        groups=op.groups,
        bias=op.bias,
    ),
    "batchnorm": lambda op: nn.BatchNorm2d(op.num_features, eps=op.eps, momentum=op.momentum),
    "relu": lambda op: nn.ReLU(),
    "maxpool": lambda op: nn.MaxPool2d(
        op.kernel_size, op.stride, op.padding, op.dilation, ceil_mode=op.ceil_mode
    ),
    "avgpool": lambda op: nn.AvgPool2d(
        op.kernel_size,
        op.stride,
        op.padding,
        ceil_mode=op.ceil_mode,
        count_include_pad=op.count_include_pad,
    ),
    "adaptive_avgpool": lambda op: nn.AdaptiveAvgPool2d(op.output_size),
    "lrn": lambda op: nn.LocalResponseNorm(op.size, op.alpha, op.beta, op.k),
    "dropout": lambda op: nn.Dropout(op.p),
    "dropout2d": lambda op: nn.Dropout2d(op.p),
    "flatten": lambda op: nn.Flatten(),
    "linear": lambda op: nn.Linear(op.in_features, op.out_features, bias=op.bias),
    "softmax": lambda op: nn.Softmax(op.dim),
    "scale_shift": lambda op: ScaleShift(op.scale, op.shift),
}

# The same, as a functional call, for unnamed (weightless) layers.
FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "relu": lambda op, x, training: F.relu(x),
    "maxpool": lambda op, x, training: F.max_pool2d(
        x, op.kernel_size, op.stride, op.padding, op.dilation, ceil_mode=op.ceil_mode
    ),
    "avgpool": lambda op, x, training: F.avg_pool2d(
        x, op.kernel_size, op.stride, op.padding, op.ceil_mode, op.count_include_pad
    ),
    "adaptive_avgpool": lambda op, x, training: F.adaptive_avg_pool2d(x, op.output_size),
    "lrn": lambda op, x, training: F.local_response_norm(x, op.size, op.alpha, op.beta, op.k),
    "dropout": lambda op, x, training: F.dropout(x, op.p, training),
    "dropout2d": lambda op, x, training: F.dropout2d(x, op.p, training),
    "flatten": lambda op, x, training: torch.flatten(x, 1),
    "softmax": lambda op, x, training: F.softmax(x, op.dim),
    "scale_shift": lambda op, x, training: (
        x * x.new_tensor(op.scale).view(1, -1, 1, 1) + x.new_tensor(op.shift).view(1, -1, 1, 1)
    ),
}


def build_node(node: ir.Node, enabled: Callable[[str | None], bool]) -> nn.Module:
    if isinstance(node, ir.Layer):
        return MODULES[node.op.op](node.op)
    if isinstance(node, ir.Seq):
        return nn.Sequential(*(build_node(item, enabled) for item in node.items))
    if isinstance(node, ir.Block):
        return BlockModule(node.body, enabled, node.block)
    raise TypeError(f"a {node.kind} node is built by its enclosing block")


class BlockModule(nn.Module):
    """One block instance: its named children, run in spec order."""

    def __init__(self, body: tuple[ir.Node, ...], enabled: Callable[[str | None], bool], block: str):
        super().__init__()
        # Internal attributes start with '_': spec names cannot, so no layer shadows them.
        self._block = block
        self._steps: list[tuple[str, object]] = []
        for node in body:
            if isinstance(node, ir.Layer) and not enabled(node.guard):
                continue
            if isinstance(node, ir.Concat):
                for branch in node.branches:
                    self.add_module(branch.name, build_node(branch, enabled))
                self._steps.append(("concat", tuple(b.name for b in node.branches)))
            elif node.name is None:
                self._steps.append(("call", node.op))
            else:
                self.add_module(node.name, build_node(node, enabled))
                self._steps.append(("module", node.name))

    def extra_repr(self) -> str:
        return f"block={self._block}"

    def _step(self, kind: str, what, x: torch.Tensor) -> torch.Tensor:
        if kind == "module":
            return self._modules[what](x)
        if kind == "concat":
            return torch.cat([self._modules[name](x) for name in what], 1)
        return FUNCTIONS[what.op](what, x, self.training)

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
        self._outputs = namedtuple(f"{net.name}Outputs", ["main", *self.aux_weights])

    def forward(self, x: torch.Tensor):
        aux: dict[str, torch.Tensor] = {}
        for kind, what in self._steps:
            x = self._step(kind, what, x)
            if self.training and what in self._taps:
                for name in self._taps[what]:
                    aux[name] = self._modules[name](x)
        if self.training and self.aux_weights:
            return self._outputs(x, **aux)
        return x

    def loss(self, outputs, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the main output plus each aux head's, times its weight."""
        if isinstance(outputs, torch.Tensor):
            return F.cross_entropy(outputs, target)
        total = F.cross_entropy(outputs.main, target)
        for name, weight in self.aux_weights.items():
            total = total + weight * F.cross_entropy(getattr(outputs, name), target)
        return total


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
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def build_module(net: ir.Network, deploy: bool = False) -> NetworkModule:
    module = NetworkModule(net, deploy=deploy)
    initialise(module, net.init)
    return module


def count_parameters(module: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in module.parameters())
