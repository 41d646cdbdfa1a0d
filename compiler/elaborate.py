"""AST to IR: bind parameters, expand blocks, infer every shape.

Elaboration walks the network body with a tensor in hand (its shape and the
expression of its channel count) and turns each statement into IR nodes,
checking names, argument types and shapes as it goes. Every problem is a
``SpecError`` at the span of the text that caused it.

Elaboration checks every value it puts in the IR (types, ranges, shapes), so
it builds the IR's models with ``model_construct``: Pydantic validates an IR
built by hand or read from JSON, and ``netc check`` builds no validator at
all (about a third of its time, bench/cli_speed.py).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from compiler import builtins as bi
from compiler import expr as ex
from compiler import ir, ops, shapes, symbolic
from compiler.budgets import Budget, Meter
from compiler.names import check_identifier
from compiler.symbolic import Sym, binop, neg
from dsl import ast
from dsl.errors import Span, SpecError, did_you_mean

PARAM_TYPES = ("int", "float", "bool", "str", "pair")
# Ranges of what is not an op argument: an aux head's weight, an init scheme's std.
_RANGES = {"weight": ops.Arg(ops.FLOAT, min=0), "std": ops.Arg(ops.FLOAT, min=0)}
# A block's integer parameter named like an op's argument takes that argument's range.
_BLOCK_RANGES = {
    name: arg
    for op in ops.OPS.values()
    for name, arg in op.args().items()
    if arg.kind in (ops.INT, ops.PAIR, ops.PADDING)
    and not arg.inferred
    and (arg.min, arg.max) != (None, None)
}
_INT_LIMIT = 2**63  # integers stay 64-bit: every backend, and torch, takes them


@dataclass(frozen=True)
class Override:
    """A network parameter set from outside the spec (CLI ``--set`` or the Python API)."""

    name: str
    value: Any  # a str from the command line, parsed by the parameter's type; else a value
    span: Span | None = None  # the name
    value_span: Span | None = None  # the value, where type errors point (else at the name)


@dataclass(frozen=True)
class Tensor:
    shape: ir.Shape
    channels: Sym  # shape[0], with the expression it came from


@functools.lru_cache(maxsize=4096)  # a block's body is elaborated once per use
def _span(span: Span) -> ir.SourceSpan:
    return ir.SourceSpan.model_construct(
        file=span.file,
        line=span.line,
        column=span.column,
        end_line=span.end_line,
        end_column=span.end_column,
    )


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "tuple"


def elaborate(
    files: list[ast.SpecFile],
    overrides: Sequence[Override] = (),
    input_shape: tuple[int, int, int] | None = None,
    input_span: Span | None = None,
    budget: Budget | None = None,
) -> ir.Network:
    """The root file's network (the last file), fully elaborated and shape-checked
    within ``budget`` (``compiler.budgets``)."""
    elaborator = _Elaborator(files)
    elaborator.meter = Meter(budget)
    return elaborator.network(files[-1], list(overrides), input_shape, input_span)


class _Elaborator:
    meter = Meter(None)

    def __init__(self, files: list[ast.SpecFile]):
        self.blocks: dict[str, ast.BlockDef] = {}
        for spec in files:
            for definition in spec.definitions:
                if definition.is_network:
                    continue
                self._declare(definition)
        self.stack: list[str] = []
        self.used: dict[str, ast.BlockDef] = {}
        self.declared: dict[int, tuple[ir.ParamDecl, ...]] = {}  # _params, per definition

    def _declare(self, definition: ast.BlockDef) -> None:
        check_identifier(definition.name, definition.name_span, "block")
        if definition.name in bi.BUILTINS:
            raise SpecError(
                f"block '{definition.name}' has the name of a built-in layer",
                definition.name_span,
                hint="choose another name",
            )
        previous = self.blocks.get(definition.name)
        if previous is not None:
            raise SpecError(
                f"block '{definition.name}' is already defined at {previous.name_span}",
                definition.name_span,
            )
        self.blocks[definition.name] = definition

    # -- the network ---------------------------------------------------------------

    def network(
        self,
        root: ast.SpecFile,
        overrides: list[Override],
        input_shape: tuple[int, int, int] | None,
        input_span: Span | None,
    ) -> ir.Network:
        networks = [d for d in root.definitions if d.is_network]
        if not networks:
            raise _no_network(root)
        if len(networks) > 1:
            raise SpecError(
                f"a spec file holds one network; '{networks[1].name}' is the second",
                networks[1].name_span,
            )
        net = networks[0]
        check_identifier(net.name, net.name_span, "network")
        if net.name in self.blocks:
            raise SpecError(
                f"network '{net.name}' has the name of block defined at "
                f"{self.blocks[net.name].name_span}",
                net.name_span,
            )

        decls = self._params(net)
        values = {d.name: d.default for d in decls}
        by_name = {p.name: p for p in net.params}
        for override in overrides:
            if override.name not in values:
                raise SpecError(
                    f"unknown parameter '{override.name}' of network {net.name}",
                    override.span,
                    hint=did_you_mean(override.name, values)
                    or "parameters: " + (", ".join(values) or "none"),
                )
            values[override.name] = _override_value(override, by_name[override.name].type)
        for p in net.params:
            if values[p.name] is None:
                raise SpecError(
                    f"parameter '{p.name}' of network {net.name} has no default and was not set",
                    p.span,
                    hint=f"give it a default, or pass --set {p.name}=...",
                )
        env = {name: Sym.ref(name, value) for name, value in values.items()}

        inputs = [s for s in net.body if isinstance(s, ast.InputStmt)]
        if len(inputs) > 1:
            raise SpecError("a network has one input statement", inputs[1].span)
        if input_shape is None:
            if not inputs:
                raise SpecError(
                    f"network {net.name} has no input statement",
                    net.name_span,
                    hint="add `input 3x224x224` (channels x height x width) to its body",
                )
            input_shape, input_span = inputs[0].shape, inputs[0].span
        # An input given from outside (no span) is blamed on the caller, not the spec.
        if len(input_shape) != 3 or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in input_shape
        ):
            raise SpecError(
                f"input shape must be (channels, height, width), got {tuple(input_shape)}",
                input_span,
            )
        if min(input_shape) < 1:
            raise SpecError(f"input {shapes.show(input_shape)} has an empty dimension", input_span)

        self.conditional: dict[str, Span] = {}  # named layers with a guard
        tensor = Tensor(tuple(input_shape), Sym.const(input_shape[0]))
        nodes, out, taps = self._body(net, env, tensor, network=True)
        heads = (self._aux(stmt, env, taps) for stmt in net.body if isinstance(stmt, ast.AuxStmt))
        aux = tuple(head for head in heads if head is not None)
        init = tuple(self._init(stmt) for stmt in net.body if isinstance(stmt, ast.InitStmt))
        first: dict[str, Span] = {}
        for stmt in (s for s in net.body if isinstance(s, ast.InitStmt)):
            if stmt.target in first:
                raise SpecError(
                    f"{stmt.target} is initialised twice (first at {first[stmt.target]})",
                    stmt.target_span,
                )
            first[stmt.target] = stmt.target_span

        return ir.Network.model_construct(
            name=net.name,
            doc="\n\n".join(dict.fromkeys(d for d in (root.doc, net.doc) if d)),
            source=root.path,
            params=decls,
            values=values,  # type: ignore[arg-type]  # no None left: checked above
            input_shape=tuple(input_shape),
            body=tuple(nodes),
            aux=aux,
            init=init,
            blocks={
                name: ir.BlockDecl.model_construct(
                    name=name, params=self._params(d), doc=d.doc, span=_span(d.name_span)
                )
                for name, d in self.used.items()
            },
            out_shape=out.shape,
            span=_span(net.name_span),
        )

    def _params(self, definition: ast.BlockDef) -> tuple[ir.ParamDecl, ...]:
        """The checked parameters of a block (or network), once per definition:
        a block used a thousand times is checked once."""
        if id(definition) in self.declared:
            return self.declared[id(definition)]
        seen: dict[str, Span] = {}
        decls = []
        for p in definition.params:
            check_identifier(p.name, p.span, "parameter")
            if p.name in seen:
                raise SpecError(f"parameter '{p.name}' is declared twice", p.span)
            if p.name in self.blocks:  # the generated __init__ would call the parameter
                raise SpecError(
                    f"parameter '{p.name}' has the name of block defined at "
                    f"{self.blocks[p.name].name_span}",
                    p.span,
                    hint="choose another name",
                )
            seen[p.name] = p.span
            if p.type not in PARAM_TYPES:
                raise SpecError(
                    f"unknown type '{p.type}'",
                    p.type_span,
                    hint=did_you_mean(p.type, PARAM_TYPES) or "types: " + ", ".join(PARAM_TYPES),
                )
            default = None
            if p.default is not None:
                default = _coerce(
                    self._eval(p.default, {}), p.type, p.default.span, p.name, builtin=False
                ).value
            decl = ir.ParamDecl.model_construct(name=p.name, type=p.type, default=default)  # type: ignore[arg-type]  # a type of PARAM_TYPES: checked above
            decls.append(decl)
        self.declared[id(definition)] = tuple(decls)
        return self.declared[id(definition)]

    # -- bodies --------------------------------------------------------------------

    def _body(
        self, definition: ast.BlockDef, env: dict[str, Sym], tensor: Tensor, network: bool
    ) -> tuple[list[ir.Node], Tensor, dict[str, Tensor]]:
        nodes: list[ir.Node] = []
        taps: dict[str, Tensor] = {}
        names: dict[str, Span] = {}

        def claim(name: str | None, span: Span | None) -> None:
            # Optional in the AST's types; the grammar gives every branch a name.
            assert name is not None and span is not None
            self.meter.name(name, span)
            check_identifier(name, span, "layer")
            if name in names:
                raise SpecError(f"duplicate name '{name}' (first used at {names[name]})", span)
            names[name] = span

        tensor = self._stmts(definition.body, definition, env, tensor, network, claim, nodes, taps)
        return nodes, tensor, taps

    def _stmts(
        self,
        stmts: tuple[ast.Stmt, ...],
        definition: ast.BlockDef,
        env: dict[str, Sym],
        tensor: Tensor,
        network: bool,
        claim,
        nodes: list[ir.Node],
        taps: dict[str, Tensor] | None,
    ) -> Tensor:
        """Elaborate statements in order, appending their nodes; ``taps`` (the network
        body's top level only) collects the tensor after each named statement."""
        previous: ast.Stmt | None = None
        for stmt in stmts:
            if isinstance(stmt, (ast.InputStmt, ast.AuxStmt, ast.InitStmt)):
                word = {ast.InputStmt: "input", ast.AuxStmt: "aux", ast.InitStmt: "init"}
                if not network:
                    raise SpecError(
                        f"'{word[type(stmt)]}' belongs in a network, not in block {definition.name}",
                        stmt.span,
                    )
                if taps is None:
                    raise SpecError(
                        f"'{word[type(stmt)]}' belongs in the network's body", stmt.span
                    )
                if isinstance(stmt, ast.AuxStmt):
                    claim(stmt.name, stmt.name_span)
                continue
            if isinstance(stmt, ast.ConcatStmt):
                node, tensor = self._join(stmt, definition, env, tensor, network, claim)
                nodes.append(node)
                previous = stmt
                continue
            if isinstance(stmt, ast.GroupStmt):  # the grammar puts groups in joins only
                raise SpecError("a group of statements belongs in a join's branches", stmt.span)
            if stmt.name is not None:
                claim(stmt.name, stmt.name_span)
            _missing_arrow(stmt, previous, self.blocks)
            previous = stmt
            if not network and stmt.guard is not None:
                # In a block, the condition is one of the instance's arguments: decided here.
                # A layer that is off is left out, so instances may differ (and the source
                # backend writes a class for each rendering).
                cond = _coerce(
                    self._eval(stmt.guard, env), "bool", stmt.guard.span, "the condition"
                )
                new, tensor = self._layer_stmt(stmt, env, tensor, None)
                _conditional_ok(new, stmt)
                nodes.extend(new if cond.value else ())
                continue
            guard = self._guard(stmt, env, network)
            on = stmt.guard is None or bool(self._eval(stmt.guard, env).value)
            new, tensor = self._layer_stmt(stmt, env, tensor, guard, on)
            nodes.extend(new)
            if stmt.name is not None and taps is not None:
                taps[stmt.name] = tensor
                if guard is not None and stmt.guard is not None:
                    self.conditional[stmt.name] = stmt.guard.span
        return tensor

    def _guard(self, stmt: ast.LayerStmt, env: dict[str, Sym], network: bool) -> ex.Expr | None:
        if stmt.guard is None:
            return None
        if not network:
            raise SpecError("conditions ('if') are allowed in a network body only", stmt.guard.span)
        return _coerce(self._eval(stmt.guard, env), "bool", stmt.guard.span, "the condition").tree

    def _layer_stmt(
        self,
        stmt: ast.LayerStmt,
        env: dict[str, Sym],
        tensor: Tensor,
        guard: ex.Expr | None,
        on: bool = True,
    ) -> tuple[list[ir.Node], Tensor]:
        calls = self._expand(stmt.chain, env)
        if stmt.name is None:
            nodes = []
            for call in calls:
                node, tensor = self._call(call, env, tensor, None)
                nodes.append(node)
        elif len(calls) == 1 and not isinstance(stmt.chain[0], ast.Repeat):
            node, tensor = self._call(calls[0], env, tensor, stmt.name)
            nodes = [node]
        else:  # a chain, or a repeat (even of one): an nn.Sequential numbered 0, 1, ...
            node, tensor = self._seq(stmt.name, calls, env, tensor, stmt.span)
            nodes = [node]
        if guard is not None:
            _conditional_ok(nodes, stmt)
            # a layer switched off is not built: it counts no parameters and no MACs
            update = {"guard": guard} if on else {"guard": guard, "params": 0, "macs": 0}
            nodes = [node.model_copy(update=update) for node in nodes]
        return nodes, tensor

    def _expand(self, chain: tuple[ast.Link, ...], env: dict[str, Sym]) -> list[ast.Call]:
        """A chain's calls, each ``[...] * n`` written out n times."""
        calls: list[ast.Call] = []
        for link in chain:
            if isinstance(link, ast.Call):
                calls.append(link)
                continue
            count = _coerce(self._eval(link.count, env), "int", link.count.span, "repeat count")
            if count.value < 1:
                raise SpecError(
                    f"a repeat count must be at least 1, got {count.value}", link.count.span
                )
            inner = self._expand(link.chain, env)
            calls.extend(inner * count.value)
        return calls

    def _seq(
        self, name: str, chain: list[ast.Call], env: dict[str, Sym], tensor: Tensor, span: Span
    ) -> tuple[ir.Node, Tensor]:
        items = []
        start = tensor
        for index, call in enumerate(chain):
            node, tensor = self._call(call, env, tensor, str(index))
            items.append(node)
        return (
            ir.Seq.model_construct(
                name=name,
                items=tuple(items),
                in_shape=start.shape,
                out_shape=tensor.shape,
                span=_span(span),
                channels_expr=tensor.channels.tree,
            ),
            tensor,
        )

    def _join(
        self,
        stmt: ast.ConcatStmt,
        definition: ast.BlockDef,
        env: dict[str, Sym],
        tensor: Tensor,
        network: bool,
        claim,
    ) -> tuple[ir.Node, Tensor]:
        """``concat`` / ``add`` / ``mul`` over branches that all read ``tensor``."""
        word = stmt.kind
        joins: dict[str, Literal["cat", "add", "mul"]] = {
            "concat": "cat",
            "add": "add",
            "mul": "mul",
        }
        join = joins[word]
        branches: list[ir.Node] = []
        outputs: list[tuple[Tensor, str, Span]] = []
        for index, branch in enumerate(stmt.branches):
            if isinstance(branch, ast.GroupStmt):
                items: list[ir.Node] = []
                out = self._stmts(branch.body, definition, env, tensor, network, claim, items, None)
                if not items:
                    raise SpecError(f"an empty group in {word}", branch.span)
                label = f"the group at line {branch.span.line}"
                node: ir.Node = self._group(items, tensor, out, branch.span)
            else:
                if branch.guard is not None:
                    article = "an" if word == "add" else "a"
                    raise SpecError(
                        f"{article} {word} branch cannot be conditional", branch.guard.span
                    )
                if branch.name is not None:
                    claim(branch.name, branch.name_span)
                new, out = self._layer_stmt(branch, env, tensor, None)
                first = branch.chain[0]
                label = (
                    f"'{branch.name}'"
                    if branch.name
                    else f"'{first.name}'"
                    if isinstance(first, ast.Call)
                    else f"branch {index + 1}"
                )
                node = new[0] if len(new) == 1 else self._group(new, tensor, out, branch.span)
            if join == "cat" and len(out.shape) != 3:
                raise SpecError(
                    f"concat branch {label} gives a flat vector; concat joins feature maps",
                    branch.span,
                )
            self._check_join(join, outputs, out, label, branch.span)
            _not_in_place(node, f"the input of every {word} branch")
            branches.append(node)
            outputs.append((out, label, branch.span))

        scales: tuple[float, ...] = ()
        scale_exprs: tuple[ex.Expr | None, ...] = ()
        if stmt.scales:
            if join != "add":
                scaled = next(s for s in stmt.scales if s is not None)
                raise SpecError(
                    f"only the branches of an add can be scaled, not those of a {word}",
                    scaled.span,
                )
            syms = [
                None if e is None else _coerce(self._eval(e, env), "float", e.span, "scale")
                for e in stmt.scales
            ]
            scales = tuple(1.0 if sym is None else sym.value for sym in syms)
            scale_exprs = tuple(None if sym is None else sym.tree for sym in syms)

        if join == "cat":
            channels = symbolic.total([out.channels for out, _, _ in outputs])
            result = Tensor((channels.value, *outputs[0][0].shape[1:]), channels)
        else:
            shape = tuple(max(dims) for dims in zip(*(out.shape for out, _, _ in outputs)))
            widest = next(out for out, _, _ in outputs if out.shape[0] == shape[0])
            result = Tensor(shape, widest.channels)
        node = ir.Concat.model_construct(
            name=None,
            branches=tuple(branches),
            join=join,
            scales=scales,
            scale_exprs=scale_exprs,
            in_shape=tensor.shape,
            out_shape=result.shape,
            span=_span(stmt.span),
            channels_expr=result.channels.tree,
        )
        return node, result

    @staticmethod
    def _check_join(
        join: str, outputs: list[tuple[Tensor, str, Span]], out: Tensor, label: str, span: Span
    ) -> None:
        """The shape rule at a join, checked as each branch comes: a concat's
        branches agree on height x width, an add's on the whole shape, and a mul's
        broadcast (each dimension equal, or 1 on one side)."""
        if not outputs:
            return
        first, first_label, _ = outputs[0]
        if join == "cat":
            if first.shape[1:] != out.shape[1:]:
                (_, h0, w0), (_, h, w) = first.shape, out.shape
                raise SpecError(
                    f"concat inputs disagree on height x width: {h0}x{w0} "
                    f"({first_label}) vs {h}x{w} ({label})",
                    span,
                    hint="every branch must keep the same spatial size (check stride and padding)",
                )
            return
        for previous, previous_label, _ in outputs:
            a, b = previous.shape, out.shape
            same = a == b
            broadcast = len(a) == len(b) and all(x == y or 1 in (x, y) for x, y in zip(a, b))
            if not same and not (join == "mul" and broadcast):
                word = "add" if join == "add" else "mul"
                raise SpecError(
                    f"{word} inputs disagree: {shapes.show(a)} ({previous_label}) "
                    f"vs {shapes.show(b)} ({label})",
                    span,
                    hint="an add needs equal shapes"
                    if join == "add"
                    else "a mul needs equal shapes, or 1 where they differ (a C x 1 x 1 gate)",
                )

    @staticmethod
    def _group(items: list[ir.Node], start: Tensor, out: Tensor, span: Span) -> ir.Node:
        return ir.Group(
            name=None,
            items=tuple(items),
            in_shape=start.shape,
            out_shape=out.shape,
            span=_span(span),
            channels_expr=out.channels.tree,
        )

    # -- calls -----------------------------------------------------------------------

    def _call(
        self, call: ast.Call, env: dict[str, Sym], tensor: Tensor, name: str | None
    ) -> tuple[ir.Node, Tensor]:
        if call.name in bi.BUILTINS:
            return self._builtin(call, bi.BUILTINS[call.name], env, tensor, name)
        if call.name in self.blocks:
            if name is None:
                raise SpecError(
                    f"block '{call.name}' needs a name: its layers become module attributes",
                    call.span,
                    hint=f"write `name = {call.name}(...)`",
                )
            return self._block(call, self.blocks[call.name], env, tensor, name)
        raise SpecError(
            f"unknown layer or block '{call.name}'",
            call.name_span,
            hint=did_you_mean(call.name, [*bi.BUILTINS, *self.blocks])
            or _expected_call(self.blocks),
        )

    def _builtin(
        self,
        call: ast.Call,
        spec: bi.Builtin,
        env: dict[str, Sym],
        tensor: Tensor,
        name: str | None,
    ) -> tuple[ir.Node, Tensor]:
        given = self._bind(call, spec.args, env)
        values: dict[str, Any] = dict(spec.fixed)
        exprs: dict[str, ex.Expr] = {}
        for arg in spec.args:
            if arg.name in given:
                values[arg.name] = given[arg.name].value
                exprs[arg.name] = given[arg.name].tree
            elif arg.default is bi.SAME_AS_KERNEL:
                values[arg.name] = values["kernel_size"]
            else:
                values[arg.name] = _default(arg)
        for field in spec.inferred:
            values[field] = tensor.channels.value
            exprs[field] = tensor.channels.tree
        op = spec.op.model_construct(**values)
        if name is None and op.op in ir.STATEFUL_OPS:
            raise SpecError(
                f"'{call.name}' has weights, so it needs a name",
                call.span,
                hint=f"write `name = {call.name}(...)`",
            )
        try:
            out_shape, params, macs = shapes.infer(op, tensor.shape)
        except shapes.ShapeError as err:
            raise SpecError(str(err), call.span, hint=err.hint) from None
        self.meter.layer(params, macs, out_shape, call.span)
        if spec.produces:
            channels = symbolic.folded(given[spec.produces])
        elif op.op == "flatten":
            channels = symbolic.times(tensor.channels, out_shape[0] // tensor.shape[0])
        else:
            channels = tensor.channels
        node = ir.Layer.model_construct(
            name=name,
            op=op,
            exprs=exprs,
            params=params,
            macs=macs,
            in_shape=tensor.shape,
            out_shape=out_shape,
            span=_span(call.span),
            channels_expr=channels.tree,
        )
        return node, Tensor(out_shape, channels)

    def _block(
        self,
        call: ast.Call,
        definition: ast.BlockDef,
        env: dict[str, Sym],
        tensor: Tensor,
        name: str,
    ) -> tuple[ir.Node, Tensor]:
        if definition.name in self.stack:
            cycle = " -> ".join([*self.stack[self.stack.index(definition.name) :], definition.name])
            raise SpecError(f"block '{definition.name}' calls itself: {cycle}", call.span)
        self.meter.depth(len(self.stack) + 1, call.span, [*self.stack, definition.name])
        self.meter.expansion(self._size(definition), call.span, f"{name} = {definition.name}(...)")
        decls = self._params(definition)
        specs = tuple(
            bi.ArgSpec(d.name, d.type, bi.REQUIRED if d.default is None else d.default)
            for d in decls
        )
        given = self._bind(call, specs, env, builtin=False)
        args = {s.name: given[s.name] if s.name in given else Sym.const(s.default) for s in specs}
        inner = {n: Sym.ref(n, sym.value) for n, sym in args.items()}
        inner["in_channels"] = Sym.ref("in_channels", tensor.channels.value)

        self.stack.append(definition.name)
        self.used.setdefault(definition.name, definition)
        try:
            body, out, _ = self._body(
                definition, inner, Tensor(tensor.shape, inner["in_channels"]), False
            )
        finally:
            self.stack.pop()
        if not body:
            raise SpecError(f"block '{definition.name}' has an empty body", definition.name_span)

        bindings = {n: sym.tree for n, sym in args.items()}
        bindings["in_channels"] = tensor.channels.tree
        channels = symbolic.substitute(out.channels, bindings)
        node = ir.Block.model_construct(
            name=name,
            block=definition.name,
            args={n: sym.value for n, sym in args.items()},
            arg_exprs={n: sym.tree for n, sym in given.items()},
            in_channels_expr=tensor.channels.tree,
            body=tuple(body),
            in_shape=tensor.shape,
            out_shape=out.shape,
            span=_span(call.span),
            channels_expr=channels.tree,
        )
        return node, Tensor(out.shape, channels)

    def _size(self, definition: ast.BlockDef) -> int:
        """How many layers a call of ``definition`` expands to (its body's layer calls,
        block calls counted by their own size): known before expanding anything, so
        a block calling a block twice, twenty levels down, is refused at once."""
        sizes: dict[str, int] = self.__dict__.setdefault("_sizes", {})
        todo = [definition]
        while todo:
            current = todo[-1]
            if current.name in sizes:
                todo.pop()
                continue
            calls = [c for stmt in current.body for c in _calls(stmt)]
            pending = [
                self.blocks[c.name]
                for c in calls
                if c.name in self.blocks and c.name not in sizes and self.blocks[c.name] not in todo
            ]
            if pending:
                todo.extend(pending)
                continue
            sizes[current.name] = sum(
                sizes.get(c.name, 0) if c.name in self.blocks else 1 for c in calls
            )
            todo.pop()
        return sizes[definition.name]

    def _bind(
        self,
        call: ast.Call,
        specs: tuple[bi.ArgSpec, ...],
        env: dict[str, Sym],
        builtin: bool = True,
    ) -> dict[str, Sym]:
        """Match a call's arguments to a signature; evaluate and type-check each."""
        by_name = {s.name: s for s in specs}
        bound: dict[str, Sym] = {}
        position = 0
        seen_keyword = False
        for arg in call.args:
            if arg.name is None:
                if seen_keyword:
                    raise SpecError("positional argument after keyword arguments", arg.span)
                if position >= len(specs):
                    raise SpecError(
                        f"'{call.name}' takes at most {len(specs)} argument"
                        f"{'s' if len(specs) != 1 else ''}, got {len(call.args)}",
                        arg.span,
                        hint=_signature(call.name, specs),
                    )
                spec = specs[position]
                position += 1
            else:
                seen_keyword = True
                keyword = by_name.get(arg.name)
                if keyword is None:
                    raise SpecError(
                        f"'{call.name}' has no argument '{arg.name}'",
                        arg.span,
                        hint=did_you_mean(arg.name, by_name) or _signature(call.name, specs),
                    )
                spec = keyword
                if spec.name in bound:
                    raise SpecError(f"argument '{arg.name}' is given twice", arg.span)
            rule = spec.range if builtin else _BLOCK_RANGES.get(spec.name)
            bound[spec.name] = _coerce(
                self._eval(arg.value, env), spec.kind, arg.value.span, spec.name, builtin, rule
            )
        for spec in specs:
            if spec.default is bi.REQUIRED and spec.name not in bound:
                raise SpecError(
                    f"'{call.name}' is missing argument '{spec.name}'",
                    call.span,
                    hint=_signature(call.name, specs),
                )
        return bound

    def _eval(self, expr: ast.Expr, env: dict[str, Sym]) -> Sym:
        if isinstance(expr, ast.Literal):
            return _finite(Sym.const(expr.value), expr.span)
        if isinstance(expr, ast.Ref):
            if expr.name not in env:
                raise SpecError(
                    f"unknown name '{expr.name}'",
                    expr.span,
                    hint=did_you_mean(expr.name, env)
                    or ("names in scope: " + ", ".join(sorted(env)) if env else _NO_NAMES),
                )
            return env[expr.name]
        if isinstance(expr, ast.TupleExpr):
            items = [self._eval(item, env) for item in expr.items]
            return Sym(
                tuple(i.value for i in items),
                ex.Tuple.model_construct(items=tuple(i.tree for i in items)),
            )
        if isinstance(expr, ast.Neg):
            operand = self._eval(expr.operand, env)
            _number(operand, expr.operand.span, "-")
            return neg(operand)
        left, right = self._eval(expr.left, env), self._eval(expr.right, env)
        _number(left, expr.left.span, expr.op)
        _number(right, expr.right.span, expr.op)
        if expr.op in ("/", "//") and right.value == 0:
            raise SpecError("division by zero", expr.right.span)
        return _finite(binop(expr.op, left, right), expr.span)

    # -- aux heads and init ------------------------------------------------------------

    def _aux(
        self, stmt: ast.AuxStmt, env: dict[str, Sym], taps: dict[str, Tensor]
    ) -> ir.Aux | None:
        if stmt.name == "main":
            raise SpecError(
                "aux head name 'main' is taken by the network's main output",
                stmt.name_span,
                hint="choose another name",
            )
        if stmt.tap not in taps:
            raise SpecError(
                f"aux head '{stmt.name}' taps '{stmt.tap}', which is not a named layer of the network",
                stmt.tap_span,
                hint=did_you_mean(stmt.tap, taps)
                or "named layers of the network: " + (", ".join(taps) or "none"),
            )
        if stmt.tap in self.conditional:
            raise SpecError(
                f"aux head '{stmt.name}' taps '{stmt.tap}', which is conditional "
                f"(at {self.conditional[stmt.tap]})",
                stmt.tap_span,
                hint="tap a layer that is always there",
            )
        weight = 1.0
        if stmt.weight is not None:
            weight = _coerce(
                self._eval(stmt.weight, env), "float", stmt.weight.span, "weight"
            ).value
        guard = None
        on = True
        if stmt.guard is not None:
            value = _coerce(self._eval(stmt.guard, env), "bool", stmt.guard.span, "the condition")
            guard, on = value.tree, bool(value.value)
        head_stmt = ast.LayerStmt(stmt.name, stmt.chain, None, stmt.span, stmt.name_span)
        try:
            (head,), _ = self._layer_stmt(head_stmt, env, taps[stmt.tap], None)
        except SpecError:
            if on:
                raise
            return None  # switched off, and it could not run at this input anyway
        _not_in_place(head, f"'{stmt.tap}', which the network goes on with")
        return ir.Aux.model_construct(
            name=stmt.name,
            tap=stmt.tap,
            weight=weight,
            head=head,
            guard=guard,
            span=_span(stmt.span),
        )

    def _init(self, stmt: ast.InitStmt) -> ir.InitRule:
        if stmt.target not in bi.INIT_TARGETS:
            raise SpecError(
                f"cannot initialise '{stmt.target}'",
                stmt.target_span,
                hint=did_you_mean(stmt.target, bi.INIT_TARGETS)
                or "init applies to " + ", ".join(bi.INIT_TARGETS),
            )
        scheme = stmt.call.name
        if scheme not in bi.INIT_SCHEMES:
            raise SpecError(
                f"unknown initialisation '{scheme}'",
                stmt.call.name_span,
                hint=did_you_mean(scheme, bi.INIT_SCHEMES)
                or "schemes: " + ", ".join(bi.INIT_SCHEMES),
            )
        specs = bi.INIT_SCHEMES[scheme]
        bound = self._bind(stmt.call, specs, {})
        args = {name: sym.value for name, sym in bound.items()}
        positional = [a for a in stmt.call.args if a.name is None]
        spans = {specs[i].name: a.value.span for i, a in enumerate(positional)}
        spans.update({a.name: a.value.span for a in stmt.call.args if a.name is not None})
        for name, value in args.items():
            choices = bi.INIT_CHOICES.get(name)
            if choices and value not in choices:
                raise SpecError(
                    f'{name} must be one of {", ".join(choices)}, got "{value}"',
                    spans[name],
                    hint=did_you_mean(value, choices),
                )
        # target and scheme: checked against INIT_TARGETS and INIT_SCHEMES above
        return ir.InitRule.model_construct(target=stmt.target, scheme=scheme, args=args)  # type: ignore[arg-type]


def _conditional_ok(nodes: list[ir.Node], stmt: ast.LayerStmt) -> None:
    """A condition may switch single layers that keep the shape, so that nothing after
    them depends on it."""
    for node in nodes:
        if not isinstance(node, ir.Layer) or node.in_shape != node.out_shape:
            raise SpecError(
                "only single layers that keep the shape can be conditional",
                stmt.span,
                hint="make the whole network a parameterised variant instead",
            )


def _first_layer(node: ir.Node) -> ir.Layer | None:
    """The layer that reads a node's input first (None where several do: a join)."""
    while not isinstance(node, ir.Layer):
        items = node.items if isinstance(node, (ir.Seq, ir.Group)) else getattr(node, "body", ())
        if not items:
            return None
        node = items[0]
    return node


def _not_in_place(node: ir.Node, what: str) -> None:
    """An in-place activation may not start a branch (or an aux head): it would
    overwrite a tensor that others read after it."""
    layer = _first_layer(node)
    if layer is not None and getattr(layer.op, "inplace", False):
        span = layer.span
        raise SpecError(
            f"in-place {layer.op.op} would overwrite {what}",
            Span(span.file, span.line, span.column, span.end_line, span.end_column),
            hint="drop inplace=true here, or apply the activation after a layer of the branch",
        )


@functools.cache
def _default(arg: bi.ArgSpec) -> Any:
    """A built-in argument's default, normalised like a written value (once)."""
    return _coerce(Sym.const(arg.default), arg.kind, None, arg.name).value


_NO_NAMES = "a default or an init argument is a constant: no names are in scope there"


def _expected_call(blocks: Mapping[str, ast.BlockDef]) -> str:
    """The hint for a call to an unknown name with no near match: what could be called."""
    hint = "expected one of the built-in layers (" + ", ".join(sorted(bi.BUILTINS)) + ")"
    if blocks:
        return hint + " or a block in scope (" + ", ".join(sorted(blocks)) + ")"
    return hint + "; no blocks are in scope (is an import missing?)"


def _signature(name: str, specs: tuple[bi.ArgSpec, ...]) -> str:
    parts = [s.name if s.default is bi.REQUIRED else f"{s.name}=..." for s in specs]
    return f"{name}({', '.join(parts)})"


def _no_network(root: ast.SpecFile) -> SpecError:
    """The error for a root file with no network, at the end of what it holds."""
    end = root.end_span or Span(root.path, 1, 1, 1, 2)
    hint = "add `network Name(...) { ... }`"
    if root.definitions or root.imports:
        held = [
            _count(len(root.definitions), "block"),
            _count(len(root.imports), "import"),
        ]
        what = " and ".join(h for h in held if h)
        if root.definitions:
            hint += "; a file of blocks alone is a library: import it from a spec with a network"
        return SpecError(f"no network in this file, only {what}", end, hint=hint)
    if (end.line, end.column) == (1, 1):
        return SpecError("empty file, expected a network", end, hint=hint)
    return SpecError("no network in this file, only comments", end, hint=hint)


def _count(n: int, noun: str) -> str:
    return "" if n == 0 else f"{n} {noun}" + "s" * (n != 1)


def _finite(sym: Sym, span: Span | None) -> Sym:
    """Floats too large for a double (1e999) become inf: no layer, and no Python source,
    takes that; integers stay within 64 bits."""
    value = sym.value
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError("number out of range: it overflows a 64-bit float", span)
    if isinstance(value, int) and not -_INT_LIMIT <= value < _INT_LIMIT:
        raise SpecError("number out of range: it overflows a 64-bit integer", span)
    return sym


def _calls(stmt: ast.Stmt) -> list[ast.Call]:
    """Every call a statement makes, in repeats, joins and groups too."""
    if isinstance(stmt, ast.LayerStmt):
        return _chain_calls(stmt.chain)
    if isinstance(stmt, ast.ConcatStmt):
        return [c for branch in stmt.branches for c in _calls(branch)]
    if isinstance(stmt, ast.GroupStmt):
        return [c for inner in stmt.body for c in _calls(inner)]
    return []


def _chain_calls(chain: tuple[ast.Link, ...]) -> list[ast.Call]:
    out: list[ast.Call] = []
    for link in chain:
        out.extend([link] if isinstance(link, ast.Call) else _chain_calls(link.chain))
    return out


def _missing_arrow(stmt: ast.LayerStmt, previous: ast.Stmt | None, blocks: Mapping) -> None:
    """An unnamed layer with weights (or block) right after another statement on its
    line is a chain missing its ``->``, not a layer missing its name."""
    if stmt.name is not None or previous is None or previous.span.end_line != stmt.span.line:
        return
    call = stmt.chain[0]
    if not isinstance(call, ast.Call):
        return
    if call.name in blocks or call.name in _WEIGHTED:
        last = previous.chain[-1] if isinstance(previous, ast.LayerStmt) else None
        if isinstance(previous, ast.ConcatStmt):
            before = previous.kind
        else:
            before = last.name if isinstance(last, ast.Call) else "]"
        raise SpecError(
            f"missing '->' between '{before}' and '{call.name}'",
            Span(
                call.span.file,
                call.span.line,
                call.span.column,
                call.span.line,
                call.span.column + 1,
            ),
            hint=f"a chain is written `{before}(...) -> {call.name}(...)`",
        )


_WEIGHTED = {name for name, b in bi.BUILTINS.items() if b.inferred}  # conv, batchnorm, linear


def _number(sym: Sym, span: Span, op: str) -> None:
    if isinstance(sym.value, bool) or not isinstance(sym.value, (int, float)):
        raise SpecError(f"'{op}' needs numbers, got a {_type_name(sym.value)}", span)


def _coerce(
    sym: Sym,
    kind: str,
    span: Span | None,
    what: str,
    builtin: bool = True,
    rule: ops.Arg | None = None,
) -> Sym:
    """Check a value against an argument kind and range (``rule``: an op
    argument's, from the registry; else, for built-ins, ``_RANGES``); normalise
    pairs and floats. A block's parameter takes only the integer ranges of the
    op arguments of its name (``_bind``): a float parameter ``p`` may mean
    something else than a dropout probability."""
    value = sym.value

    def wrong(expected: str) -> SpecError:
        shown = (
            f'"{value}"'
            if isinstance(value, str)
            else repr(value).replace("True", "true").replace("False", "false")
        )
        return SpecError(f"{what} expects {expected}, got {_type_name(value)} {shown}", span)

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if kind == "int":
        if not is_int(value):
            raise wrong("an integer")
    elif kind == "float":
        if not (is_int(value) or isinstance(value, float)):
            raise wrong("a number")
        value = float(value)
    elif kind in ("bool", "str"):
        if not isinstance(value, bool if kind == "bool" else str):
            raise wrong("true or false" if kind == "bool" else "a string")
    elif kind in (bi.PAIR, bi.PADDING):
        if kind == bi.PADDING and isinstance(value, str):
            if value not in ("same", "valid"):
                raise wrong('an integer, a pair, "same" or "valid"')
            value = "same" if value == "same" else (0, 0)
        elif is_int(value):
            value = (value, value)
        elif not (isinstance(value, tuple) and len(value) == 2 and all(is_int(v) for v in value)):
            raise wrong("an integer or a pair of integers")
    elif kind == bi.FLOATS:
        if not (
            isinstance(value, tuple)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        ):
            raise wrong("a tuple of numbers")
        value = tuple(float(v) for v in value)
    if rule is None and builtin:
        rule = _RANGES.get(what)
    if rule is not None:
        message = rule.range_error(what, value, shown=value if kind == "float" else sym.value)
        if message is not None:
            raise SpecError(message, span)
    return Sym(value, sym.tree)


def _override_value(override: Override, type_: str) -> Any:
    value = override.value
    if isinstance(value, str) and type_ != "str":
        value = _parse_override(value, type_, override)
    span = override.value_span or override.span
    sym = _finite(Sym.const(value), span) if isinstance(value, (int, float)) else Sym.const(value)
    return _coerce(sym, type_, span, f"parameter '{override.name}'").value


def _parse_override(text: str, type_: str, override: Override) -> Any:
    try:
        if type_ == "int" and len(text.strip().lstrip("+-").lstrip("0")) > 19:
            raise SpecError(
                f"parameter '{override.name}' is out of range: {len(text):,} digits",
                override.value_span or override.span,
            )
        if type_ == "int":
            return int(text)
        if type_ == "float":
            return float(text)
    except ValueError:
        pass
    if type_ == "bool" and text in ("true", "false"):
        return text == "true"
    expected = {"int": "an integer", "float": "a number", "bool": "true or false"}[type_]
    raise SpecError(
        f"parameter '{override.name}' is {type_}, so it expects {expected}, got '{text}'",
        override.value_span or override.span,
    )
