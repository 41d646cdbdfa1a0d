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
name they read is checked to be in scope (``_Scope``); docstrings are escaped. Generated locals and attributes come from
``Namespace``. The text is laid out by a Jinja2 template and formatted by
ruff, in a fixed order, so the same network gives the same bytes.

This module does not import torch.
"""

from __future__ import annotations

import builtins
import functools
import re
import subprocess
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from compiler import expr as ex
from compiler import ir
from compiler.expr import literal
from compiler.names import (
    MODULE_ATTRIBUTES,
    MODULE_NAMES,
    NETWORK_ATTRIBUTES,
    RESERVED,
    Namespace,
    check_identifier,
)
from dsl.errors import Span, SpecError

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
LINE_LENGTH = 100

# Each op's module and call come from its Torch descriptor (compiler.ops): ``nn.<module>``
# for a named layer (a helper class for ``helper`` ones), ``<function>(x, ...)`` for an
# unnamed one; arguments at PyTorch's default are left out, unless the spec wrote them.

_INIT_TARGETS = {"conv": "nn.Conv2d", "linear": "nn.Linear", "batchnorm": "nn.BatchNorm2d"}
# IR op kinds each init target's modules come from.
_INIT_KINDS = {"conv": ("conv", "fused_conv"), "linear": ("linear",), "batchnorm": ("batchnorm",)}
_RELU_MODULE = "nn.ReLU(inplace=True)"
_TYPES = {"int": "int", "float": "float", "bool": "bool", "str": "str"}


def _span(span: ir.SourceSpan) -> Span:
    return Span(span.file, span.line, span.column, span.end_line, span.end_column)


def _unsupported(what: str, span: ir.SourceSpan) -> SpecError:
    return SpecError(f"the source backend cannot emit {what}", _span(span))


# -- expressions ----------------------------------------------------------------------


class _Scope:
    """The names an expression may use inside one class: its constructor's parameters.

    ``init`` writes an expression for ``__init__``, where they are locals;
    ``forward`` for ``forward``, where each becomes an attribute that
    ``__init__`` sets (``self.p = p``). Either refuses a reference out of scope
    and anything that is not a ``compiler.expr`` tree (an IR built by hand).
    """

    def __init__(self, params: list[str], attrs: Namespace, span: ir.SourceSpan):
        self.params = params
        self.attrs = attrs
        self.span = span
        self.used: set[str] = set()  # parameters __init__ reads
        self.hyper: dict[str, str] = {}  # parameter -> attribute, for forward

    def _check(self, expr: ex.Expr) -> frozenset[str]:
        try:
            names = ex.names(expr)
        except TypeError as err:
            raise SpecError(
                f"the source backend refuses an expression: {err}", _span(self.span)
            ) from None
        unknown = names - set(self.params)
        if unknown:
            raise SpecError(
                f"the source backend found names out of scope in {ex.to_python(expr)}: "
                f"{', '.join(sorted(unknown))}",
                _span(self.span),
            )
        return names

    def init(self, expr: ex.Expr, as_list: bool = False) -> str:
        self.used |= self._check(expr)
        return ex.to_python(expr, as_list=as_list)

    def forward(self, expr: ex.Expr, as_list: bool = False) -> str:
        for name in sorted(self._check(expr)):
            if name not in self.hyper:
                self.hyper[name] = self.attrs.create(name)
                self.used.add(name)
        return ex.to_python(expr, lambda name: f"self.{self.hyper[name]}", as_list)


def _compact(value: object) -> object:
    """``(3, 3)`` -> ``3``: PyTorch reads one number as both sides."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        return value[0]
    return value


def _args(layer: ir.Layer, render) -> list[str]:
    """The call's arguments: what the spec wrote, else the value where it is not PyTorch's default."""
    out = []
    for name, value, positional, default in layer.op.torch_args():
        if name in layer.exprs:
            text = render(layer.exprs[name])
        elif default:
            continue
        else:
            text = literal(_compact(value))
        out.append(text if positional else f"{name}={text}")
    return out


# -- shape comments ---------------------------------------------------------------------------


@dataclass
class _Shape:
    """One forward line's shape in one instance of the class."""

    out_shape: ir.Shape
    channels_expr: str  # out_shape[0] in the class's scope, as code; "": a number
    in_shape: ir.Shape


def _dims(shapes: list[_Shape], inputs: list[ir.Shape], symbolic: bool) -> str:
    first = shapes[0]
    dims = ["N"]
    values = {s.out_shape[0] for s in shapes}
    exprs = {s.channels_expr for s in shapes}
    expr = next(iter(exprs))
    if symbolic:
        if len(exprs) == 1 and expr:
            dims.append(f"({expr})" if " " in expr else expr)
        elif len(values) == 1:
            dims.append(str(first.out_shape[0]))
        else:
            dims.append("C")
    else:
        named = f" ({expr})" if len(exprs) == 1 and expr else ""
        dims.append(f"{first.out_shape[0]}{named}")
    if len(first.out_shape) == 3:
        for axis, letter in ((1, "H"), (2, "W")):
            sizes = {s.out_shape[axis] for s in shapes}
            if len(sizes) == 1:
                dims.append(str(first.out_shape[axis]))
            elif all(s.out_shape[axis] == i[axis] for s, i in zip(shapes, inputs)):
                dims.append(letter)
            else:
                dims.append(letter + "'")
    return " x ".join(dims)


# -- classes ----------------------------------------------------------------------------------


@dataclass
class _Step:
    """A forward line: ``x = self.conv(x)``; ``guard`` puts it under an ``if``."""

    code: str
    shape: _Shape | tuple[_Shape, ...] | None  # None: no comment; a tuple: one per output
    guard: str | None = None


@dataclass
class _Draft:
    """One instance's rendering of a class; instances with equal ``key`` share a class."""

    params: list[str]  # signature entries, rendered
    init: list[str]
    hyper: list[str]
    forward: list[_Step]
    tail: list[str]  # lines after the forward steps (aux outputs), or []
    in_shape: ir.Shape
    takes_in_channels: bool = False

    @property
    def key(self) -> tuple:
        return (
            tuple(self.params),
            tuple(self.init),
            tuple(self.hyper),
            tuple((s.code, s.guard, s.shape is None) for s in self.forward),
            tuple(self.tail),
        )


@dataclass
class _Class:
    name: str
    block: str
    doc: str
    drafts: list[_Draft] = field(default_factory=list)


def _doc(text: str) -> str:
    """Text made safe inside a triple-quoted docstring, and nothing else changed."""
    text = text.replace("\\", "\\\\")
    text = re.sub(r'"(?=")|"$', '\\\\"', text)
    return "".join(
        c if c == "\n" or c.isprintable() else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def _comment(text: str) -> str:
    """Text made safe on one comment line."""
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


class _Emitter:
    def __init__(self, net: ir.Network, deploy: bool):
        self.net = net
        self.deploy = deploy
        self.heads = () if deploy else net.aux
        check_identifier(net.name, _span(net.span), "network")
        for name in net.blocks:
            check_identifier(name, _span(net.blocks[name].span), "block")
        # Names at module level; forward locals must not hide the ones forward uses.
        self.module_taken = {*MODULE_NAMES, *RESERVED, *net.blocks, net.name}
        self.module_names = Namespace({*self.module_taken, *dir(builtins)})
        self.classes: list[_Class] = []
        self.by_key: dict[tuple, _Class] = {}
        self.scale_shift: str | None = None  # the helper class, once a named scale_shift needs it
        self.scale_shift_function: str | None = None  # the helper function, for unnamed ones
        self.functional_used = False  # whether the module needs torch.nn.functional as F
        self.ordered_dict: str | None = None  # collections.OrderedDict, once a chain needs it

    # -- constructors of child modules, in the parent's __init__ scope

    def ctor(self, node: ir.Node, scope: _Scope) -> str:
        scope.span = node.span
        if isinstance(node, ir.Layer):
            spec = node.op.torch
            if spec.helper:  # netc's own class, emitted when used; its tuples are lists
                name = self._helper_class(spec.module)
                return f"{name}({', '.join(_args(node, lambda t: scope.init(t, as_list=True)))})"
            return f"nn.{spec.module}({', '.join(_args(node, scope.init))})"
        if isinstance(node, ir.Seq):
            return self._sequential(node, scope)
        if isinstance(node, ir.Block):
            cls = self.block_class(node)
            decls = {p.name: p for p in self.net.blocks[node.block].params}
            given = [scope.init(node.in_channels_expr)] if cls.drafts[0].takes_in_channels else []
            keyword = False
            for p in self.net.blocks[node.block].params:
                keyword = keyword or decls[p.name].default is not None
                if p.name in node.arg_exprs:
                    text = scope.init(node.arg_exprs[p.name])
                    given.append(f"{p.name}={text}" if keyword else text)
                elif not keyword:
                    raise _unsupported(f"block {node.block} without argument {p.name!r}", node.span)
            return f"{cls.name}({', '.join(given)})"
        raise _unsupported(f"a {node.kind} node here", node.span)

    def _sequential(self, node: ir.Seq, scope: _Scope) -> str:
        """``nn.Sequential(...)``; a deploy convolution with a fused ReLU is followed by
        ``nn.ReLU(inplace=True)`` (a sequential has no other call to put it in). Items
        keep their names, which are their ``state_dict`` keys: where a deploy pass
        removed some, the names are written out (``OrderedDict``)."""
        items: list[tuple[str, str]] = []
        for item in node.items:
            if not item.name or not item.name.isdigit():
                raise _unsupported(f"a chain item named {item.name!r}", item.span)
            items.append((item.name, self.ctor(item, scope)))
            if isinstance(item, ir.Layer) and getattr(item.op, "relu", False):
                names = {i.name for i in node.items} | {n for n, _ in items}
                relu = str(int(item.name) + 1)
                items.append((relu if relu not in names else f"{item.name}_relu", _RELU_MODULE))
        if [name for name, _ in items] == [str(i) for i in range(len(items))]:
            return f"nn.Sequential({', '.join(ctor for _, ctor in items)})"
        if self.ordered_dict is None:
            self.ordered_dict = self._module_name("OrderedDict")
        pairs = ", ".join(f"({literal(name)}, {ctor})" for name, ctor in items)
        return f"nn.Sequential({self.ordered_dict}([{pairs}]))"

    def _helper_class(self, module: str) -> str:
        """The emitted name of netc's helper class ``module`` (the template defines it)."""
        if module != "ScaleShift":
            raise ValueError(f"no helper class {module!r} in the template")
        if self.scale_shift is None:
            self.scale_shift = self._module_name(module)
        return self.scale_shift

    def _helper_function(self, function: str) -> str:
        """The emitted name of netc's helper function ``function`` (the template defines it)."""
        if function != "scale_shift":
            raise ValueError(f"no helper function {function!r} in the template")
        if self.scale_shift_function is None:
            self.scale_shift_function = self._module_name(function)
        return self.scale_shift_function

    def _module_name(self, candidate: str) -> str:
        name = self.module_names.create(candidate)
        self.module_taken.add(name)
        return name

    # -- one forward line per node

    def functional(self, layer: ir.Layer, scope: _Scope) -> str:
        scope.span = layer.span
        spec = layer.op.torch
        if spec.function is None:
            raise _unsupported(f"an unnamed '{layer.op.op}' layer", layer.span)
        function = spec.function
        if spec.helper:  # netc's own function, emitted when used; its tuples are lists
            function = self._helper_function(spec.function)
            args = _args(layer, lambda t: scope.forward(t, as_list=True))
        else:
            args = _args(layer, scope.forward)
        self.functional_used |= function.startswith("F.")
        parts = ["x", *map(literal, spec.extra), *args]
        if spec.training:
            parts.append("self.training")
        return f"{function}({', '.join(parts)})"

    def body(
        self,
        nodes: tuple[ir.Node, ...],
        scope: _Scope,
        init: list[str],
        steps: list[_Step],
        local: Namespace,
        taps: dict[str, list[ir.Aux]] | None = None,
    ) -> None:
        for node in nodes:
            guard = None
            scope.span = node.span
            if isinstance(node, ir.Layer) and node.guard is not None:
                guard = self._guard(node.guard, scope)
            if isinstance(node, ir.Concat):
                names = []
                for branch in node.branches:
                    attr = self._attr(branch)
                    init.append(f"self.{attr} = {self.ctor(branch, scope)}")
                    names.append(local.create(attr))
                    steps.append(
                        _Step(f"{names[-1]} = {self._call(branch, attr)}", self._shape(branch))
                    )
                steps.append(_Step(f"x = torch.cat([{', '.join(names)}], 1)", self._shape(node)))
            elif isinstance(node, ir.Fork):
                self._fork(node, scope, init, steps, local)
            elif isinstance(node, ir.Layer) and node.name is None:
                steps.append(_Step(f"x = {self.functional(node, scope)}", self._shape(node), guard))
            elif not isinstance(node, (ir.Layer, ir.Seq, ir.Block)) or node.name is None:
                raise _unsupported(f"a {node.kind} node", node.span)
            else:
                attr = self._attr(node)
                init.append(f"self.{attr} = {self.ctor(node, scope)}")
                steps.append(_Step(f"x = {self._call(node, attr)}", self._shape(node), guard))
            for head in (taps or {}).get(node.name or "", ()):
                self._aux_step(head, scope, steps, local)

    def _call(self, node: ir.Node, attr: str, arg: str = "x") -> str:
        """The call of child module ``attr``; a deploy convolution's fused ReLU runs on
        its output, in place (the output is fresh)."""
        call = f"self.{attr}({arg})"
        if isinstance(node, ir.Layer) and getattr(node.op, "relu", False):
            self.functional_used = True
            return f"F.relu({call}, inplace=True)"
        return call

    def _fork(
        self, node: ir.Fork, scope: _Scope, init: list[str], steps: list[_Step], local: Namespace
    ) -> None:
        """A deploy build's fused sibling convolutions: the head runs once, its output is
        split along channels, and each piece starts the branch it belongs to."""
        head = node.head
        attr = self._attr(head)
        init.append(f"self.{attr} = {self.ctor(head, scope)}")
        fused = local.create(attr)
        steps.append(_Step(f"{fused} = {self._call(head, attr)}", self._shape(head)))
        assert isinstance(head.op, ir.FusedConv)
        split = head.op.split
        exprs = (
            node.split_exprs if len(node.split_exprs) == len(split) else tuple(map(ex.const, split))
        )
        pieces: list[str | None] = [None] * len(split)
        names: list[str] = []
        calls: list[_Step] = []
        for branch in node.branches:
            scope.span = node.span
            name = check_identifier(branch.name, _span(node.span), "layer")
            names.append(local.create(name))
            if branch.piece is not None:
                pieces[branch.piece] = names[-1]
                arg = names[-1]
            elif branch.node is not None:
                arg = "x"
            else:
                raise _unsupported(
                    f"fork branch {branch.name!r} without a piece or a node", node.span
                )
            if branch.node is not None:
                init.append(f"self.{name} = {self.ctor(branch.node, scope)}")
                call = self._call(branch.node, name, arg)
                calls.append(_Step(f"{names[-1]} = {call}", self._shape(branch.node)))
        read = [p for p in pieces if p is not None]
        if len(read) < len(pieces):
            raise _unsupported("a fork with a piece no branch reads", node.span)
        sizes_text = scope.forward(ex.Tuple(items=exprs), as_list=True)
        shapes = tuple(
            _Shape((n, *head.out_shape[1:]), _code(e), node.in_shape) for e, n in zip(exprs, split)
        )
        targets = ", ".join(read) + ("," if len(read) == 1 else "")
        steps.append(_Step(f"{targets} = torch.split({fused}, {sizes_text}, 1)", shapes))
        steps.extend(calls)
        steps.append(_Step(f"x = torch.cat([{', '.join(names)}], 1)", self._shape(node)))

    def _locals(self) -> Namespace:
        """Names for forward's locals: none may hide what forward reads."""
        return Namespace({"self", "x", *self.module_taken})

    def _attr(self, node: ir.Node) -> str:
        assert node.name is not None, f"an unnamed {node.kind} as an attribute"
        return check_identifier(node.name, _span(node.span), "layer")

    def _shape(self, node: ir.Node) -> _Shape | None:
        if isinstance(node, ir.Layer) and node.op.keeps_shape and node.in_shape == node.out_shape:
            return None
        return _Shape(node.out_shape, _code(node.channels), node.in_shape)

    def _guard(self, guard: ex.Expr, scope: _Scope) -> str:
        return scope.forward(guard)  # the layer's span is the scope's already

    # -- block classes: one per distinct rendering, leaves first

    def block_class(self, node: ir.Block) -> _Class:
        decl = self.net.blocks.get(node.block)
        if decl is None:
            raise _unsupported(
                f"block {node.block!r}, which the network does not declare", node.span
            )
        params = [check_identifier(p.name, _span(decl.span), "parameter") for p in decl.params]
        attrs = Namespace({*MODULE_ATTRIBUTES, *_child_names(node.body)})
        scope = _Scope(["in_channels", *params], attrs, node.span)
        local = self._locals()
        init: list[str] = []
        steps: list[_Step] = []
        self.body(node.body, scope, init, steps, local)
        signature = _signature(decl.params)
        takes_in_channels = "in_channels" in scope.used
        if takes_in_channels:
            signature.insert(0, "in_channels: int")
        draft = _Draft(
            params=signature,
            init=init,
            hyper=[f"self.{attr} = {name}" for name, attr in scope.hyper.items()],
            forward=steps,
            tail=[],
            in_shape=node.in_shape,
            takes_in_channels=takes_in_channels,
        )
        key = (node.block, draft.key)
        cls = self.by_key.get(key)
        if cls is None:
            first = next((c for c in self.classes if c.block == node.block), None)
            name = node.block if first is None else self._module_name(node.block)
            doc = decl.doc or f"The {node.block} block."
            if first is not None:
                doc += (
                    f"\n\nA second class for {node.block}: these instances need different code "
                    f"from {first.name}'s (a size that depends on the input)."
                )
            cls = _Class(name, node.block, doc + f"\n\nFrom {decl.span.file}:{decl.span.line}.")
            self.by_key[key] = cls
            self.classes.append(cls)
        cls.drafts.append(draft)
        return cls

    # -- the network class

    def network(self) -> _Draft:
        net = self.net
        check_identifier(net.name, _span(net.span), "network")
        child_names = _child_names(net.body) | {h.name for h in self.heads}
        attrs = Namespace({*MODULE_ATTRIBUTES, *NETWORK_ATTRIBUTES, *child_names})
        params = [check_identifier(p.name, _span(net.span), "parameter") for p in net.params]
        scope = _Scope(params, attrs, net.span)
        self.outputs = self._module_name(f"{net.name}Outputs") if self.heads else None
        local = self._locals()
        init: list[str] = []
        steps: list[_Step] = []
        taps: dict[str, list[ir.Aux]] = {}
        for head in self.heads:
            taps.setdefault(head.tap, []).append(head)
        self.aux_locals: dict[str, str] = {}
        if self.deploy and net.memory_format == "channels_last":
            steps.append(_Step("x = x.contiguous(memory_format=torch.channels_last)", None))
        self.body(net.body, scope, init, steps, local, taps)
        init.extend(self._aux_init(scope))
        init.extend(self._init_weights(params))
        if self.deploy and net.memory_format == "channels_last":
            init.append("# channels_last (NHWC): oneDNN runs convolutions and pools in it natively")
            init.append("# on CPU. forward converts its input; loading weights keeps the format.")
            init.append("self.to(memory_format=torch.channels_last)")
        # The bound values (spec defaults, --set) are the class's defaults; a deploy
        # build leaves out what only the aux heads used.
        bound = [p.model_copy(update={"default": net.values[p.name]}) for p in net.params]
        used = [p for p in bound if not self.deploy or p.name in scope.used]
        self.params_used = [p.name for p in used]
        return _Draft(
            params=_signature(used, keyword_only=True),
            init=init,
            hyper=[f"self.{attr} = {name}" for name, attr in scope.hyper.items()],
            forward=steps,
            tail=self._aux_return(),
            in_shape=net.input_shape,
        )

    def _aux_step(self, head: ir.Aux, scope: _Scope, steps: list[_Step], local: Namespace) -> None:
        name = check_identifier(head.name, _span(head.span), "layer")
        var = self.aux_locals[name] = local.create(name)
        steps.append(_Step(f"{var}: torch.Tensor | None = None", None))
        condition = (
            "self.training" if head.guard is None else f"self.{name} is not None and self.training"
        )
        steps.append(_Step(f"if {condition}:", None))
        steps.append(_Step(f"    {var} = self.{name}(x)", self._shape(head.head)))

    def _aux_init(self, scope: _Scope) -> list[str]:
        lines: list[str] = []
        guards = list(dict.fromkeys(h.guard for h in self.heads))
        for guard in guards:
            heads = [h for h in self.heads if h.guard == guard]
            built = [f"self.{h.name} = {self.ctor(h.head, scope)}" for h in heads]
            if guard is None:
                lines.extend(built)
                continue
            lines.append(f"if {scope.init(guard)}:")
            lines.extend("    " + line for line in built)
            lines.append("else:")
            lines.extend(f"    self.{h.name} = None" for h in heads)
        return lines

    def _aux_return(self) -> list[str]:
        if not self.heads:
            return []
        names = [self.aux_locals[h.name] for h in self.heads]
        joined = " and ".join(f"{n} is not None" for n in names)
        if len({h.guard for h in self.heads}) > 1:  # some heads may be off: Optional fields
            joined = " or ".join(f"{n} is not None" for n in names)
        return [
            f"if {joined}:",
            f"    return {self.outputs}(x, {', '.join(names)})",
            "return x",
        ]

    def _init_weights(self, params: list[str]) -> list[str]:
        if not self.net.init:
            return []
        var = Namespace({"self", *params, *self.module_taken}).create("m")
        nodes = [*ir.walk(self.net.body), *(n for h in self.heads for n in ir.walk((h.head,)))]
        biased = {
            target: all(
                getattr(node.op, "bias", True)
                for _, node, _ in nodes
                if isinstance(node, ir.Layer) and node.op.op in _INIT_KINDS[target]
            )
            for target in _INIT_TARGETS
        }
        lines = [
            "# Weight initialisation, as the spec's init rules say; biases start at zero.",
            f"for {var} in self.modules():",
        ]
        cases: list[tuple[list[str], list[str]]] = []  # (module classes, body)
        for rule in self.net.init:
            args = "".join(f", {k}={literal(v)}" for k, v in rule.args.items())
            body = [f"        nn.init.{rule.scheme}_({var}.weight{args})"]
            if biased[rule.target]:
                body.append(f"        nn.init.zeros_({var}.bias)")
            else:
                body.append(f"        if {var}.bias is not None:")
                body.append(f"            nn.init.zeros_({var}.bias)")
            if cases and cases[-1][1] == body:  # the same for both: one branch
                cases[-1][0].append(_INIT_TARGETS[rule.target])
            else:
                cases.append(([_INIT_TARGETS[rule.target]], body))
        for index, (classes, body) in enumerate(cases):
            keyword = "if" if index == 0 else "elif"
            kinds = classes[0] if len(classes) == 1 else f"({', '.join(classes)})"
            lines.append(f"    {keyword} isinstance({var}, {kinds}):")
            lines.extend(body)
        return lines


def _code(expr: ex.Expr) -> str:
    """A size in a shape comment: its expression where it reads a parameter, else ""."""
    return "" if ex.is_const(expr) else ex.to_python(expr)


def _child_names(nodes: tuple[ir.Node, ...]) -> set[str]:
    names: set[str | None] = set()
    for node in nodes:
        if isinstance(node, ir.Concat):
            names |= {b.name for b in node.branches}
        elif isinstance(node, ir.Fork):
            names |= {node.head.name, *(b.name for b in node.branches if b.node is not None)}
        else:
            names.add(node.name)
    return {name for name in names if name is not None}


def _signature(
    params: tuple[ir.ParamDecl, ...] | list[ir.ParamDecl], keyword_only: bool = False
) -> list[str]:
    out = []
    defaults = False
    for p in params:
        text = f"{p.name}: {_TYPES[p.type]}"
        if p.default is not None:
            text += f" = {literal(p.default)}"
            defaults = True
        elif defaults and "*" not in out:  # a required parameter after a defaulted one
            out.append("*")
        out.append(text)
    if keyword_only and out:
        out = ["*", *(p for p in out if p != "*")]
    return out


# -- assembling the file ------------------------------------------------------------------------


def _forward_lines(drafts: list[_Draft], symbolic: bool) -> list[str]:
    """The forward body of a class, with each line's shape comment."""
    first = drafts[0]
    inputs = [d.in_shape for d in drafts]
    starts = [_Shape(d.in_shape, "in_channels" if symbolic else "", d.in_shape) for d in drafts]
    lines = [f"# {_dims(starts, inputs, symbolic)}"]
    steps = first.forward
    returns = bool(steps) and not first.tail and steps[-1].guard is None
    returns = returns and steps[-1].code.startswith("x = ")
    open_guard = None
    for index, step in enumerate(steps):
        if step.guard != open_guard and step.guard is not None:
            lines.append(f"if {step.guard}:")
        open_guard = step.guard
        indent = "    " if step.guard is not None else ""
        code = indent + step.code
        if returns and index == len(steps) - 1:
            code = "return " + step.code[len("x = ") :]
        if step.shape is not None:
            # Every instance of a class runs the same lines: their shapes are alike.
            shapes = [d.forward[index].shape for d in drafts]
            if isinstance(step.shape, tuple):  # several outputs (a split)
                split = [s for s in shapes if isinstance(s, tuple)]
                parts = [
                    _dims([s[k] for s in split], inputs, symbolic) for k in range(len(step.shape))
                ]
                comment = f"# {', '.join(parts)}"
            else:
                one = [s for s in shapes if isinstance(s, _Shape)]
                comment = f"# {_dims(one, inputs, symbolic)}"
            if len(code) + len(comment) + 2 + 8 <= LINE_LENGTH:  # 8: forward's own indent
                code += "  " + comment
            else:  # on the line above, so that ruff need not split the statement around it
                lines.append(indent + comment)
        lines.append(code)
    lines.extend(first.tail)
    if not first.tail and not returns:
        lines.append("return x")
    return lines


def show_shape(shape: ir.Shape) -> str:
    return " x ".join(["N", *map(str, shape)])


def _aux_names(net: ir.Network) -> tuple[str, ...]:
    """The training build's aux heads: those a deploy pass dropped, and those left."""
    return (*net.dropped_aux, *(h.name for h in net.aux))


def _fused_convs(net: ir.Network) -> list[tuple[str, tuple[ir.ConvSource, ...]]]:
    """Each deploy convolution whose weights are not a training convolution's as they
    are (its module path, its sources): batch norm folded in, or siblings stacked."""
    out = []
    for path, layer in ir.layers(net.body):
        if isinstance(layer.op, ir.FusedConv):
            sources = layer.op.sources
            if len(sources) > 1 or sources[0].bn is not None or sources[0].conv != path:
                out.append((path, sources))
    return out


@dataclass
class _Loader:
    """The tables from which a deploy module's loader builds its fused weights.

    ``folded``: convolutions with a batch norm folded in, which keep their name;
    ``stacked``: every other fused convolution (siblings stacked), by module path.
    ``ConvSource``'s defaults are what most sources here have, so rows stay short.
    """

    names: dict[str, str]  # ConvSource, FOLDED_BN, FUSED_CONVS -> the module-level name used
    defaults: dict[str, object]  # bias, eps
    folded: list[str]  # ConvSource(...) rows
    stacked: list[tuple[str, list[str]]]

    @classmethod
    def build(cls, net: ir.Network, module_name) -> _Loader | None:
        fused = _fused_convs(net)
        if not fused:
            return None
        sources = [s for _, group in fused for s in group]
        eps = Counter(s.eps for s in sources if s.bn is not None)
        defaults = {
            "bias": Counter(s.bias for s in sources).most_common(1)[0][0],
            "eps": eps.most_common(1)[0][0] if eps else ir.ConvSource.model_fields["eps"].default,
        }
        names = {name: module_name(name) for name in ("ConvSource", "FOLDED_BN", "FUSED_CONVS")}

        def row(source: ir.ConvSource) -> str:
            args = [literal(source.conv)]
            if source.bn is not None:
                args.append(literal(source.bn))
            if source.bias != defaults["bias"]:
                args.append(f"bias={literal(source.bias)}")
            if source.bn is not None and source.eps != defaults["eps"]:
                args.append(f"eps={literal(source.eps)}")
            return f"{names['ConvSource']}({', '.join(args)})"

        folded = [row(g[0]) for path, g in fused if len(g) == 1 and g[0].conv == path]
        stacked = [
            (path, [row(s) for s in g]) for path, g in fused if len(g) > 1 or g[0].conv != path
        ]
        return cls(names, defaults, folded, stacked)


def _network_doc(net: ir.Network, deploy: bool, params_used: list[str]) -> str:
    heads = net.active_aux()
    params = ir.total_params(net.body)
    aux_params = sum(ir.total_params((h.head,)) for h in heads)
    lines = [net.doc or f"The {net.name} network."]
    facts = (
        f"{net.name}: input {show_shape(net.input_shape)}, output {show_shape(net.out_shape)}; "
        f"{params:,} parameters"
    )
    if heads and not deploy:
        facts += f" ({params + aux_params:,} with the aux heads {', '.join(h.name for h in heads)})"
    facts += f"; {ir.total_macs(net.body) / 1e9:.2f} GMACs per image."
    lines.append(facts)
    if params_used:
        lines.append(
            "Built with "
            + ", ".join(f"{k}={literal(net.values[k])}" for k in params_used)
            + "; each is a keyword argument of the class."
        )
    if deploy:
        passes = [p for p in net.passes if p != "drop_unused"]
        lines.append(
            ("Deploy build: no aux heads. " if _aux_names(net) else "Deploy build. ")
            + (f"Optimised by netc's deploy passes {', '.join(passes)}. " if passes else "")
            + f"{net.name}.from_training_checkpoint(state_dict) loads a checkpoint of the "
            "training build: it drops the aux heads' keys, returns their names, "
            + (
                "builds the fused convolutions' weights from the training ones "
                "(batch norms folded, siblings stacked), "
                if _fused_convs(net)
                else ""
            )
            + "and loads the rest with strict=True."
        )
    return "\n\n".join([lines[0], *(_wrap(line) for line in lines[1:])])


def _wrap(paragraph: str) -> str:
    return textwrap.fill(paragraph, width=88, break_long_words=False, break_on_hyphens=False)


@functools.lru_cache(maxsize=1)
def _template():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["doc"] = _doc
    env.filters["literal"] = literal
    return env.get_template("module.py.jinja")


def emit(net: ir.Network, deploy: bool = False, source: str | None = None) -> str:
    """The generated module's text, formatted; ``source`` names the spec in the header."""
    emitter = _Emitter(net, deploy)
    network = emitter.network()
    heads = emitter.heads
    summary = f"Input {show_shape(net.input_shape)}, output {show_shape(net.out_shape)}."
    if heads:
        summary += (
            f" In training mode forward returns {emitter.outputs}(main, "
            f"{', '.join(h.name for h in heads)}); in eval mode, the main output alone."
        )
    classes = [
        {
            "name": cls.name,
            "doc": cls.doc,
            "params": cls.drafts[0].params,
            "init": cls.drafts[0].hyper + cls.drafts[0].init,
            "forward": _forward_lines(cls.drafts, symbolic=True),
        }
        for cls in emitter.classes
    ]
    loader = _Loader.build(net, emitter._module_name) if deploy else None
    text = _template().render(
        source=_comment(source or net.source),
        docstring=_network_doc(net, deploy, emitter.params_used),
        typing=["NamedTuple"] if heads or loader else [],
        ordered_dict=emitter.ordered_dict,
        functional=emitter.functional_used or bool(heads),
        classes=classes,
        scale_shift=emitter.scale_shift,
        scale_shift_function=emitter.scale_shift_function,
        network={
            "name": net.name,
            "doc": f"{net.name}, from {net.span.file}:{net.span.line}.\n\n{_wrap(summary)}",
            "params": network.params,
            "init": network.hyper + network.init,
            "forward": _forward_lines([network], symbolic=False),
            "returns": f"torch.Tensor | {emitter.outputs}" if heads else "torch.Tensor",
        },
        outputs=emitter.outputs,
        heads=[{"name": h.name, "weight": h.weight} for h in heads],
        optional_fields=len({h.guard for h in heads}) > 1,  # some heads may be off
        deploy=deploy,
        aux_names=_aux_names(net) if deploy else (),
        loader=loader,
    )
    return format_source(text)


# -- formatting -----------------------------------------------------------------------------------


def _ruff() -> str:
    try:
        from ruff.__main__ import find_ruff_bin

        return find_ruff_bin()
    except (ImportError, FileNotFoundError):
        import shutil

        found = shutil.which("ruff")
        if found is None:
            raise SpecError("cannot format the generated source: ruff is not installed") from None
        return found


def format_source(text: str) -> str:
    """``ruff format`` with fixed settings, so the bytes do not depend on the caller's config."""
    command = [
        _ruff(),
        "format",
        "--isolated",
        "--line-length",
        str(LINE_LENGTH),
        "--target-version",
        "py311",
        "--stdin-filename",
        "generated.py",
        "-",
    ]
    done = subprocess.run(command, input=text.encode("utf-8"), capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            "netc generated source that ruff cannot format (a netc bug):\n"
            + done.stderr.decode("utf-8", "replace")
        )
    return done.stdout.decode("utf-8")
