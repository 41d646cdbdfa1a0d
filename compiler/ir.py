"""The checked network: frozen Pydantic models, JSON-serialisable, spans kept.

Every node carries its input and output shape, its parameter count and its
multiply-accumulates, so backends never recompute them. Op fields reuse
PyTorch's argument names so backends pass them straight through.

Fields called ``exprs`` hold, for code generation, the expression a value
was written as, in the enclosing block's scope (``{"out_channels":
Ref(name="ch3x3")}``): typed trees (``compiler.expr``), never source text.
Guards are expressions of the network's parameters, evaluated against
``Network.values``.

This module imports neither torch, nor Lark, nor Jinja2.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from compiler import expr as ex
from compiler.expr import Expr

Pair = tuple[int, int]
Shape = tuple[int, ...]  # (C, H, W) for feature maps, (F,) after flatten
Value = bool | int | float | str | tuple[int | float, ...]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class SourceSpan(_Frozen):
    file: str
    line: int
    column: int
    end_line: int
    end_column: int


# -- ops: one class per layer kind, tagged by ``op`` ---------------------------


class Conv(_Frozen):
    op: Literal["conv"] = "conv"
    in_channels: int
    out_channels: int
    kernel_size: Pair
    stride: Pair = (1, 1)
    padding: Pair | Literal["same"] = (0, 0)
    dilation: Pair = (1, 1)
    groups: int = 1
    bias: bool = True


class BatchNorm(_Frozen):
    op: Literal["batchnorm"] = "batchnorm"
    num_features: int
    eps: float = 1e-5
    momentum: float = 0.1


class ReLU(_Frozen):
    op: Literal["relu"] = "relu"


class MaxPool(_Frozen):
    op: Literal["maxpool"] = "maxpool"
    kernel_size: Pair
    stride: Pair
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    ceil_mode: bool = False


class AvgPool(_Frozen):
    op: Literal["avgpool"] = "avgpool"
    kernel_size: Pair
    stride: Pair
    padding: Pair = (0, 0)
    ceil_mode: bool = False
    count_include_pad: bool = True


class AdaptiveAvgPool(_Frozen):
    op: Literal["adaptive_avgpool"] = "adaptive_avgpool"
    output_size: Pair


class LRN(_Frozen):
    """Local response normalisation across channels (the paper's LRN)."""

    op: Literal["lrn"] = "lrn"
    size: int
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


class Dropout(_Frozen):
    op: Literal["dropout"] = "dropout"
    p: float = 0.5


class Dropout2d(_Frozen):
    op: Literal["dropout2d"] = "dropout2d"
    p: float = 0.5


class Flatten(_Frozen):
    op: Literal["flatten"] = "flatten"


class Linear(_Frozen):
    op: Literal["linear"] = "linear"
    in_features: int
    out_features: int
    bias: bool = True


class Softmax(_Frozen):
    op: Literal["softmax"] = "softmax"
    dim: int = 1


class ScaleShift(_Frozen):
    """A fixed per-channel affine map ``x * scale[c] + shift[c]`` (input re-normalisation)."""

    op: Literal["scale_shift"] = "scale_shift"
    scale: tuple[float, ...]
    shift: tuple[float, ...]


# -- deploy-only ops: made by compiler.passes, never written in a spec ---------


class ConvSource(_Frozen):
    """Where one slice of a deploy convolution's weights comes from in a training
    checkpoint (the ``state_dict`` of the unoptimised model).

    ``conv`` is the training convolution's module path: ``{conv}.weight`` (and
    ``{conv}.bias`` where ``bias``) give ``out_channels`` consecutive output
    channels of the deploy weight. ``bn``, when set, is the module path of the
    batch norm folded into it (``{bn}.weight``, ``.bias``, ``.running_mean``,
    ``.running_var``; ``.num_batches_tracked`` is not used), with its ``eps``::

        scale = bn.weight / sqrt(bn.running_var + eps)
        weight = conv.weight * scale[:, None, None, None]
        bias = (conv.bias - bn.running_mean) * scale + bn.bias   # conv.bias: 0 if none
    """

    conv: str
    out_channels: int
    bias: bool = True
    bn: str | None = None
    eps: float = 1e-5


class FusedConv(_Frozen):
    """A deploy convolution made of training-time ones, its ReLU in the call.

    Its weight (bias) is its ``sources``' weights (biases), each transformed as
    ``ConvSource`` says, concatenated along output channels in order: one source
    for a folded batch norm or a fused ReLU, several for sibling 1x1
    convolutions fused horizontally (``Fork``). ``bias`` is false only when no
    source has a bias or a batch norm. ``relu``: ReLU is applied to the output.
    """

    op: Literal["fused_conv"] = "fused_conv"
    in_channels: int
    out_channels: int
    kernel_size: Pair
    stride: Pair = (1, 1)
    padding: Pair | Literal["same"] = (0, 0)
    dilation: Pair = (1, 1)
    groups: int = 1
    bias: bool = True
    relu: bool = False
    sources: tuple[ConvSource, ...]

    @property
    def split(self) -> tuple[int, ...]:
        """The output channels of each source, in order (``torch.split`` sizes)."""
        return tuple(s.out_channels for s in self.sources)


Op = Annotated[
    Conv
    | BatchNorm
    | ReLU
    | MaxPool
    | AvgPool
    | AdaptiveAvgPool
    | LRN
    | Dropout
    | Dropout2d
    | Flatten
    | Linear
    | Softmax
    | ScaleShift
    | FusedConv,
    Field(discriminator="op"),
]

OP_KINDS: tuple[str, ...] = (
    "conv",
    "batchnorm",
    "relu",
    "maxpool",
    "avgpool",
    "adaptive_avgpool",
    "lrn",
    "dropout",
    "dropout2d",
    "flatten",
    "linear",
    "softmax",
    "scale_shift",
    "fused_conv",
)

STATEFUL_OPS = frozenset({"conv", "batchnorm", "linear", "fused_conv"})


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
    """Named parallel branches on one input, joined along channels."""

    kind: Literal["concat"] = "concat"
    branches: tuple[Node, ...]


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


Node = Annotated[Layer | Seq | Block | Concat | Fork, Field(discriminator="kind")]


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
    type: Literal["int", "float", "bool", "str"]
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
    if isinstance(node, Fork):
        return (node.head, *(b.node for b in node.branches if b.node is not None))
    return ()


def join(prefix: str, name: str | None) -> str:
    return f"{prefix}.{name}" if prefix and name is not None else (name or prefix)


def walk(
    nodes: tuple[Node, ...], prefix: str = "", depth: int = 0
) -> Iterator[tuple[str, Node, int]]:
    """Every node under ``nodes``, parents first, with its dotted module path.

    A concat (or fork) is no module: its branches live on the enclosing block,
    so they keep the concat's prefix. Functional layers (no name) share their parent's path.
    """
    for node in nodes:
        path = prefix if isinstance(node, (Concat, Fork)) else join(prefix, node.name)
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
