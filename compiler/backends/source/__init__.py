"""IR to one standalone PyTorch source file that reads like a hand-written one.

The emitted module imports torch (and ``typing``) only. It holds one
``nn.Module`` class per block definition, leaves first, then the network
class; layers are declared in spec order with the expressions the spec wrote
(``ConvBlock(in_channels, ch3x3red, 1)``), and ``forward`` is straight-line
with a ``# N x C x H x W`` comment wherever the shape changes. Inside a block
class, sizes that differ between instances are shown symbolically:
``in_channels`` or ``ch1x1 + ch3x3`` for channels, ``H x W`` for the block's
input size, ``H' x W'`` for a size computed from it.

Spec text reaches the output only as identifiers that pass
``compiler.names.check_identifier`` (again, here) and as the IR's expression
trees (``compiler.expr``), printed by ``compiler.expr.to_python`` once every
name they read is checked to be in scope (``scope.Scope``); docstrings are escaped.
Generated locals and attributes come from
``Namespace``. The text is laid out by a Jinja2 template and formatted by
ruff, in a fixed order, so the same network gives the same bytes.

The backend is a small package around a plan (``plan.Plan``): ``emitter``
walks the IR and records in the plan the classes the file holds (each
instance's rendering, a ``Draft``) and what the file needs at module level
(imports, netc's helpers, the outputs tuple, the deploy loader's tables, all
names unique); ``render`` lays the plan out with the template and formats it.
``scope`` writes expressions and call arguments, ``layout`` the forward lines
and their shape comments, ``loader`` the deploy checkpoint tables, ``text``
the docstrings.

This package does not import torch.
"""

from __future__ import annotations

from compiler import ir
from compiler.backends.source.emitter import build_plan
from compiler.backends.source.render import _ruff, format_source, render
from compiler.backends.source.scope import _args

__all__ = ["_args", "_ruff", "emit", "format_source"]


def emit(net: ir.Network, deploy: bool = False, source: str | None = None) -> str:
    """The generated module's text, formatted; ``source`` names the spec in the header."""
    return format_source(render(build_plan(net, deploy), source))
