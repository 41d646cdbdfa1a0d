"""The checked network: frozen Pydantic models, JSON-serialisable, spans kept.

Every node carries its input and output shape, its parameter count and its
multiply-accumulates, so backends never recompute them. Op fields reuse
PyTorch's argument names so backends pass them straight through.

Fields called ``exprs`` hold, for code generation, the expression a value
was written as, in the enclosing block's scope (``{"out_channels":
Ref(name="ch3x3")}``): typed trees (``compiler.expr``), never source text.
Guards are expressions of the network's parameters, evaluated against
``Network.values``.

The ops (``Conv`` ...) are defined in ``compiler.ops`` and re-exported here.
This module imports neither torch, nor Lark, nor Jinja2.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from compiler import expr as ex
from compiler import ops
from compiler.expr import Expr
from compiler.ops import (  # noqa: F401  (the ops, re-exported)
    LRN,
    AdaptiveAvgPool,
    AvgPool,
    BatchNorm,
    Conv,
    ConvSource,
    Dropout,
    Dropout2d,
    Flatten,
    FusedConv,
    Linear,
    MaxPool,
    ReLU,
    ScaleShift,
    Softmax,
)
from compiler.ops.base import Pair, Shape  # noqa: F401  (Pair, re-exported)

Value = bool | int | float | str | tuple[int | float, ...]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class SourceSpan(_Frozen):
    file: str
    line: int
    column: int
    end_line: int
    end_column: int


# -- ops: one model per layer kind, tagged by ``op``, defined in compiler.ops ----------

# The union of every registered op, tagged by ``op``: an op is added in compiler.ops,
# not here. For the type checker, any op (narrow it with isinstance).
if TYPE_CHECKING:
    Op = ops.OpModel
else:
    Op = Annotated[Union[tuple(ops.OPS.values())], Field(discriminator="op")]  # noqa: UP007

OP_KINDS: tuple[str, ...] = tuple(ops.OPS)
STATEFUL_OPS = frozenset(tag for tag, cls in ops.OPS.items() if cls.stateful)


# -- graph nodes ----------------------------------------------------------------


class _Node(_Frozen):
    name: str | None  # attribute name in the parent module; None: a functional call
    in_shape: Shape
    out_shape: Shape
    span: SourceSpan
    # out_shape[0] as an expression in the enclosing scope; None: unknown (the number)
    channels_expr: Expr | None = None

    @property
    def channels(self) -> Expr:
        """out_shape[0] as an expression in the enclosing scope (a constant when unknown)."""
        return self.channels_expr if self.channels_expr is not None else ex.const(self.out_shape[0])


class Layer(_Node):
    kind: Literal["layer"] = "layer"
    op: Op
    exprs: dict[str, Expr] = {}
    params: int
    macs: int
    guard: Expr | None = None  # a bool expression of the network's parameters


class Seq(_Node):
    """A named chain ``a -> b -> c``: an ``nn.Sequential``, children named 0, 1, ..."""

    kind: Literal["seq"] = "seq"
    items: tuple[Node, ...]


class Block(_Node):
    """An instance of a user-defined block: its arguments and its expanded body."""

    kind: Literal["block"] = "block"
    block: str
    args: dict[str, Value]
    arg_exprs: dict[str, Expr] = {}
    in_channels_expr: Expr
    body: tuple[Node, ...]


class Concat(_Node):
    """Parallel branches on one input, joined: along channels (``join="cat"``), or
    element-wise, summed (``"add"``, each branch times its ``scales`` entry) or
    multiplied (``"mul"``, broadcasting dimensions of size 1). A branch is a named
    node (a module), an unnamed weightless layer (a call), or a ``Group``."""

    kind: Literal["concat"] = "concat"
    branches: tuple[Node, ...]
    join: Literal["cat", "add", "mul"] = "cat"
    scales: tuple[float, ...] = ()  # add: one factor per branch; (): every factor is 1
    scale_exprs: tuple[Expr | None, ...] = ()  # the factors as written (None: 1)


class Group(_Node):
    """A join's branch written as statements (``{ ... }``): its nodes run in order and
    their names are attributes of the enclosing block, as a concat's branches are."""

    kind: Literal["group"] = "group"
    items: tuple[Node, ...]


class ForkBranch(_Frozen):
    """One branch of a ``Fork``: what it reads, and what runs on that."""

    name: str  # the branch's name in the spec
    piece: int | None  # the piece of the fork's head output it reads; None: the fork's input
    node: Node | None  # runs on what it reads; None: what it reads is its output


class Fork(_Node):
    """Deploy builds: a ``Concat`` whose branches began with sibling 1x1
    convolutions on its input, now one convolution, ``head`` (a ``FusedConv``).

    The head runs once on the input; its output is split along channels into
    ``head.op.split`` pieces; piece ``i`` is the input of the branch with
    ``piece == i`` (what remains of that branch, ``node``, runs on it). Other
    branches read the fork's input. The branches' outputs are joined along
    channels in order, as the concat's were. Like a concat, a fork is no
    module: its head and branches are attributes of the enclosing block.
    """

    kind: Literal["fork"] = "fork"
    head: Layer
    branches: tuple[ForkBranch, ...]
    # head.op.split as expressions in the enclosing scope, for code generation
    # (ch1x1, ...; () when not recorded: the numbers).
    split_exprs: tuple[Expr, ...] = ()


Node = Annotated[Layer | Seq | Block | Concat | Group | Fork, Field(discriminator="kind")]


class Aux(_Frozen):
    """An auxiliary head, tapped off a named top-level node, active in training only."""

    name: str
    tap: str
    weight: float
    head: Node
    guard: Expr | None = None
    span: SourceSpan


class ParamDecl(_Frozen):
    name: str
    type: Literal["int", "float", "bool", "str", "pair"]
    default: Value | None = None


class BlockDecl(_Frozen):
    name: str
    params: tuple[ParamDecl, ...]
    doc: str = ""
    span: SourceSpan


class InitRule(_Frozen):
    """Weight initialisation for every layer of one kind (conv, linear, batchnorm)."""

    target: Literal["conv", "linear", "batchnorm"]
    scheme: Literal[
        "kaiming_normal",
        "kaiming_uniform",
        "normal",
        "trunc_normal",
        "constant",
        "xavier_uniform",
        "xavier_normal",
    ]
    args: dict[str, Value] = {}


class Network(_Frozen):
    name: str
    doc: str = ""
    source: str
    params: tuple[ParamDecl, ...]
    values: dict[str, Value]  # the parameters as bound for this build
    input_shape: Shape
    body: tuple[Node, ...]
    aux: tuple[Aux, ...] = ()
    init: tuple[InitRule, ...] = ()
    blocks: dict[str, BlockDecl] = {}
    out_shape: Shape
    span: SourceSpan
    # Set by compiler.passes for deploy builds:
    passes: tuple[str, ...] = ()  # the passes applied, in order
    dropped_aux: tuple[str, ...] = ()  # aux heads removed: their checkpoint keys are ignored
    memory_format: Literal["contiguous_format", "channels_last"] = "contiguous_format"

    def active_aux(self) -> tuple[Aux, ...]:
        return tuple(a for a in self.aux if self.enabled(a.guard))

    def enabled(self, guard: Expr | None) -> bool:
        """Whether a guard holds for this build's parameter values."""
        return guard is None or bool(ex.evaluate(guard, self.values))


# -- traversal ------------------------------------------------------------------


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Seq):
        return node.items
    if isinstance(node, Block):
        return node.body
    if isinstance(node, Concat):
        return node.branches
    if isinstance(node, Group):
        return node.items
    if isinstance(node, Fork):
        return (node.head, *(b.node for b in node.branches if b.node is not None))
    return ()


def join(prefix: str, name: str | None) -> str:
    return f"{prefix}.{name}" if prefix and name is not None else (name or prefix)


def walk(
    nodes: tuple[Node, ...], prefix: str = "", depth: int = 0
) -> Iterator[tuple[str, Node, int]]:
    """Every node under ``nodes``, parents first, with its dotted module path.

    A concat, group or fork is no module: its branches live on the enclosing block,
    so they keep the concat's prefix. Functional layers (no name) share their parent's path.
    """
    for node in nodes:
        path = prefix if isinstance(node, (Concat, Group, Fork)) else join(prefix, node.name)
        yield path, node, depth
        yield from walk(children(node), path, depth + 1)


def layers(nodes: tuple[Node, ...], prefix: str = "") -> Iterator[tuple[str, Layer]]:
    for path, node, _ in walk(nodes, prefix):
        if isinstance(node, Layer):
            yield path, node


def total_params(nodes: tuple[Node, ...]) -> int:
    return sum(layer.params for _, layer in layers(nodes))


def total_macs(nodes: tuple[Node, ...]) -> int:
    return sum(layer.macs for _, layer in layers(nodes))
