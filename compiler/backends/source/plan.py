"""The plan of one generated file: what it holds, decided while the IR is walked.

The emitter (``emitter.py``) fills it; the template (``render.py``) lays it
out. Everything at module level is here, named once through ``names``: the
classes (one per distinct rendering of a block, leaves first), the network's
draft, netc's helpers the file uses, its imports, the outputs tuple of a
network with aux heads and the deploy loader's tables.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field

from compiler import ir
from compiler.backends.source.layout import ClassPlan, Draft
from compiler.backends.source.loader import Loader
from compiler.names import MODULE_NAMES, RESERVED, Namespace

# netc's helpers a generated file may hold (the template defines each): name -> kind
HELPERS = {"ScaleShift": "class", "scale_shift": "function"}


def _spec_names(net: ir.Network) -> set[str]:
    """Every parameter and layer name of the spec (blocks, branches and aux heads included)."""
    names = {p.name for p in net.params} | {p.name for b in net.blocks.values() for p in b.params}
    nodes = (*net.body, *(head.head for head in net.aux))
    names.update(node.name for _, node, _ in ir.walk(nodes) if node.name)
    return names


@dataclass
class Plan:
    net: ir.Network
    deploy: bool
    heads: tuple[ir.Aux, ...]  # the aux heads built (none in a deploy build)
    taken: set[str]  # module-level names in use: forward locals must not hide them
    names: Namespace  # hands out module-level names
    classes: list[ClassPlan] = field(default_factory=list)
    by_key: dict[tuple, ClassPlan] = field(default_factory=dict)  # (block, rendering) -> class
    helpers: dict[str, str] = field(default_factory=dict)  # helper -> its name in this file
    functional: bool = False  # the file needs torch.nn.functional as F
    ordered_dict: str | None = None  # collections.OrderedDict's name, once a chain needs it
    outputs: str | None = None  # the training outputs' NamedTuple, with aux heads
    network: Draft | None = None
    params_used: list[str] = field(default_factory=list)  # the network class's parameters
    loader: Loader | None = None  # deploy: the fused convolutions' tables

    @classmethod
    def start(cls, net: ir.Network, deploy: bool) -> Plan:
        taken = {*MODULE_NAMES, *RESERVED, *net.blocks, net.name}
        # Helpers netc adds (ScaleShift, scale_shift, OrderedDict, ...) also avoid every
        # name the spec brings in: a parameter or a forward local of that name would hide them.
        names = Namespace({*taken, *dir(builtins), *_spec_names(net)})
        return cls(net, deploy, () if deploy else net.aux, taken, names)

    def module_name(self, candidate: str) -> str:
        """A fresh module-level name, ``candidate`` unless something has it."""
        name = self.names.create(candidate)
        self.taken.add(name)
        return name

    def helper(self, name: str) -> str:
        """The name of netc's helper class or function ``name`` in this file."""
        if name not in HELPERS:
            raise ValueError(f"no helper {name!r} in the template")
        if name not in self.helpers:
            self.helpers[name] = self.module_name(name)
        return self.helpers[name]

    def ordered_dict_name(self) -> str:
        if self.ordered_dict is None:
            self.ordered_dict = self.module_name("OrderedDict")
        return self.ordered_dict
