"""IR to class drafts: the constructors, forward lines and classes of one file.

One ``Emitter`` walks the network once. Each block instance becomes a
``Draft`` of its class (signature, ``__init__`` and forward lines); instances
whose drafts agree share one class. Module-level decisions (names, helpers,
imports) go into the ``Plan``.
"""

from __future__ import annotations

import os

from compiler import expr as ex
from compiler import ir
from compiler.backends.source.layout import ClassPlan, Draft, Shape, Step
from compiler.backends.source.loader import Loader
from compiler.backends.source.plan import Plan
from compiler.backends.source.scope import Scope, _args, code, span_of
from compiler.expr import literal
from compiler.names import MODULE_ATTRIBUTES, NETWORK_ATTRIBUTES, Namespace, check_identifier
from dsl.errors import SpecError

_INIT_TARGETS = {"conv": "nn.Conv2d", "linear": "nn.Linear", "batchnorm": "nn.BatchNorm2d"}
# IR op kinds each init target's modules come from.
_INIT_KINDS = {"conv": ("conv", "fused_conv"), "linear": ("linear",), "batchnorm": ("batchnorm",)}
_RELU_MODULE = "nn.ReLU(inplace=True)"
_TYPES = {
    "int": "int",
    "float": "float",
    "bool": "bool",
    "str": "str",
    "pair": "int | tuple[int, int]",
}


def unsupported(what: str, span: ir.SourceSpan) -> SpecError:
    return SpecError(f"the source backend cannot emit {what}", span_of(span))


def build_plan(net: ir.Network, deploy: bool) -> Plan:
    """The plan of the file for ``net`` (its deploy build when ``deploy``)."""
    plan = Plan.start(net, deploy)
    plan.network = Emitter(plan).network()
    plan.loader = Loader.build(net, plan.module_name) if deploy else None
    return plan


class Emitter:
    """Walks the IR and writes each class's drafts into the plan."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.net = net = plan.net
        self.deploy = plan.deploy
        self.heads = plan.heads
        check_identifier(net.name, span_of(net.span), "network")
        for name in net.blocks:
            check_identifier(name, span_of(net.blocks[name].span), "block")
        self.aux_locals: dict[str, str] = {}  # aux head -> its local in forward

    # -- constructors of child modules, in the parent's __init__ scope

    def ctor(self, node: ir.Node, scope: Scope) -> str:
        scope.span = node.span
        if isinstance(node, ir.Layer):
            spec = node.op.torch
            if spec.helper:  # netc's own class, emitted when used; its tuples are lists
                name = self.plan.helper(spec.module)
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
                    raise unsupported(f"block {node.block} without argument {p.name!r}", node.span)
            return f"{cls.name}({', '.join(given)})"
        raise unsupported(f"a {node.kind} node here", node.span)

    def _sequential(self, node: ir.Seq, scope: Scope) -> str:
        """``nn.Sequential(...)``; a deploy convolution with a fused ReLU is followed by
        ``nn.ReLU(inplace=True)`` (a sequential has no other call to put it in). Items
        keep their names, which are their ``state_dict`` keys: where a deploy pass
        removed some, the names are written out (``OrderedDict``)."""
        items: list[tuple[str, str]] = []
        for item in node.items:
            if not item.name or not item.name.isdigit():
                raise unsupported(f"a chain item named {item.name!r}", item.span)
            items.append((item.name, self.ctor(item, scope)))
            if isinstance(item, ir.Layer) and getattr(item.op, "relu", False):
                names = {i.name for i in node.items} | {n for n, _ in items}
                relu = str(int(item.name) + 1)
                items.append((relu if relu not in names else f"{item.name}_relu", _RELU_MODULE))
        if [name for name, _ in items] == [str(i) for i in range(len(items))]:
            ctors = {ctor for _, ctor in items}
            if len(items) > 2 and len(ctors) == 1:  # a repeat: n instances of one module
                return f"nn.Sequential(*[{items[0][1]} for _ in range({len(items)})])"
            return f"nn.Sequential({', '.join(ctor for _, ctor in items)})"
        pairs = ", ".join(f"({literal(name)}, {ctor})" for name, ctor in items)
        return f"nn.Sequential({self.plan.ordered_dict_name()}([{pairs}]))"

    # -- one forward line per node

    def functional(self, layer: ir.Layer, scope: Scope, arg: str = "x") -> str:
        scope.span = layer.span
        spec = layer.op.torch
        if layer.op.op == "identity":
            return arg  # the input itself
        if spec.function is None:
            raise unsupported(f"an unnamed '{layer.op.op}' layer", layer.span)
        function = spec.function
        if spec.helper:  # netc's own function, emitted when used; its tuples are lists
            function = self.plan.helper(spec.function)
            args = _args(layer, lambda t: scope.forward(t, as_list=True))
        else:
            args = _args(layer, scope.forward)
        self.plan.functional |= function.startswith("F.")
        parts = [arg, *map(literal, spec.extra), *args]
        if spec.training:
            parts.append("self.training")
        return f"{function}({', '.join(parts)})"

    def body(
        self,
        nodes: tuple[ir.Node, ...],
        scope: Scope,
        init: list[str],
        steps: list[Step],
        local: Namespace,
        taps: dict[str, list[ir.Aux]] | None = None,
        var: str = "x",
        src: str | None = None,
    ) -> None:
        """The forward lines of ``nodes``, each ``var = ...(var)``; the first reads
        ``src`` (default: ``var``). Their modules' constructors go to ``init``."""
        for node in nodes:
            arg, src = src or var, None
            guard = None
            scope.span = node.span
            if isinstance(node, ir.Layer) and node.guard is not None:
                guard = self._guard(node.guard, scope)
            if isinstance(node, ir.Concat) and (
                node.join != "cat"
                or any(b.name is None or isinstance(b, ir.Group) for b in node.branches)
            ):
                self._join(node, scope, init, steps, local, var, arg)
            elif isinstance(node, ir.Concat):
                names = []
                for branch in node.branches:
                    attr = self._attr(branch)
                    init.append(f"self.{attr} = {self.ctor(branch, scope)}")
                    names.append(local.create(attr))
                    steps.append(
                        Step(f"{names[-1]} = {self._call(branch, attr, arg)}", self._shape(branch))
                    )
                steps.append(Step(f"{var} = torch.cat([{', '.join(names)}], 1)", self._shape(node)))
            elif isinstance(node, ir.Group):
                self.body(node.items, scope, init, steps, local, None, var, arg)
            elif isinstance(node, ir.Fork):
                self._fork(node, scope, init, steps, local, var, arg)
            elif isinstance(node, ir.Layer) and node.name is None:
                text = self.functional(node, scope, arg)
                if text != var:  # identity on itself: no line
                    steps.append(Step(f"{var} = {text}", self._shape(node), guard))
            elif not isinstance(node, (ir.Layer, ir.Seq, ir.Block)) or node.name is None:
                raise unsupported(f"a {node.kind} node", node.span)
            else:
                attr = self._attr(node)
                ctor = self.ctor(node, scope)
                if (  # a conditional layer with weights: none when it is off
                    isinstance(node, ir.Layer)
                    and node.guard is not None
                    and node.op.op in ir.STATEFUL_OPS
                ):
                    init.append(f"self.{attr} = {ctor} if {scope.init(node.guard)} else None")
                else:
                    init.append(f"self.{attr} = {ctor}")
                steps.append(
                    Step(f"{var} = {self._call(node, attr, arg)}", self._shape(node), guard)
                )
            for head in (taps or {}).get(node.name or "", ()):
                self._aux_step(head, scope, steps, local)

    def _join(
        self,
        node: ir.Concat,
        scope: Scope,
        init: list[str],
        steps: list[Step],
        local: Namespace,
        var: str,
        arg: str,
    ) -> None:
        """A join whose branches may be unnamed layers or groups, or that adds or
        multiplies: each branch into a local (an identity branch is ``arg`` itself),
        then one line that joins them."""
        terms = []
        for index, branch in enumerate(node.branches):
            scope.span = branch.span
            if isinstance(branch, ir.Layer) and branch.name is None and branch.op.op == "identity":
                name = arg
            elif isinstance(branch, ir.Group):
                name = local.create(_group_name(branch))
                self.body(branch.items, scope, init, steps, local, None, name, arg)
                if not branch.items:
                    name = arg
            elif isinstance(branch, ir.Layer) and branch.name is None:
                name = local.create(branch.op.op)
                text = self.functional(branch, scope, arg)
                steps.append(Step(f"{name} = {text}", self._shape(branch)))
            else:
                attr = self._attr(branch)
                init.append(f"self.{attr} = {self.ctor(branch, scope)}")
                name = local.create(attr)
                steps.append(Step(f"{name} = {self._call(branch, attr, arg)}", self._shape(branch)))
            scale = node.scale_exprs[index] if node.scale_exprs else None
            if scale is not None:
                scope.span = node.span
                factor = scope.forward(scale)
                simple = factor.replace("self.", "", 1).replace(".", "", 1).isalnum()
                name = f"{factor} * {name}" if simple else f"({factor}) * {name}"
            elif node.scales and node.scales[index] != 1:
                name = f"{literal(node.scales[index])} * {name}"
            terms.append(name)
        if node.join == "cat":
            text = f"torch.cat([{', '.join(terms)}], 1)"
        else:
            text = (" + " if node.join == "add" else " * ").join(terms)
        steps.append(Step(f"{var} = {text}", self._shape(node)))

    def _call(self, node: ir.Node, attr: str, arg: str = "x") -> str:
        """The call of child module ``attr``; a deploy convolution's fused ReLU runs on
        its output, in place (the output is fresh)."""
        call = f"self.{attr}({arg})"
        if isinstance(node, ir.Layer) and getattr(node.op, "relu", False):
            self.plan.functional = True
            return f"F.relu({call}, inplace=True)"
        return call

    def _fork(
        self,
        node: ir.Fork,
        scope: Scope,
        init: list[str],
        steps: list[Step],
        local: Namespace,
        var: str = "x",
        arg: str = "x",
    ) -> None:
        """A deploy build's fused sibling convolutions: the head runs once, its output is
        split along channels, and each piece starts the branch it belongs to."""
        head = node.head
        attr = self._attr(head)
        init.append(f"self.{attr} = {self.ctor(head, scope)}")
        fused = local.create(attr)
        steps.append(Step(f"{fused} = {self._call(head, attr, arg)}", self._shape(head)))
        assert isinstance(head.op, ir.FusedConv)
        split = head.op.split
        exprs = (
            node.split_exprs if len(node.split_exprs) == len(split) else tuple(map(ex.const, split))
        )
        pieces: list[str | None] = [None] * len(split)
        names: list[str] = []
        calls: list[Step] = []
        for branch in node.branches:
            scope.span = node.span
            name = check_identifier(branch.name, span_of(node.span), "layer")
            names.append(local.create(name))
            if branch.piece is not None:
                pieces[branch.piece] = names[-1]
                given = names[-1]
            elif branch.node is not None:
                given = arg
            else:
                raise unsupported(
                    f"fork branch {branch.name!r} without a piece or a node", node.span
                )
            if branch.node is not None:
                init.append(f"self.{name} = {self.ctor(branch.node, scope)}")
                call = self._call(branch.node, name, given)
                calls.append(Step(f"{names[-1]} = {call}", self._shape(branch.node)))
        read = [p for p in pieces if p is not None]
        if len(read) < len(pieces):
            raise unsupported("a fork with a piece no branch reads", node.span)
        sizes_text = scope.forward(ex.Tuple(items=exprs), as_list=True)
        shapes = tuple(
            Shape((n, *head.out_shape[1:]), code(e), node.in_shape) for e, n in zip(exprs, split)
        )
        targets = ", ".join(read) + ("," if len(read) == 1 else "")
        steps.append(Step(f"{targets} = torch.split({fused}, {sizes_text}, 1)", shapes))
        steps.extend(calls)
        steps.append(Step(f"{var} = torch.cat([{', '.join(names)}], 1)", self._shape(node)))

    def _locals(self) -> Namespace:
        """Names for forward's locals: none may hide what forward reads."""
        return Namespace({"self", "x", *self.plan.taken})

    def _attr(self, node: ir.Node) -> str:
        assert node.name is not None, f"an unnamed {node.kind} as an attribute"
        return check_identifier(node.name, span_of(node.span), "layer")

    def _shape(self, node: ir.Node) -> Shape | None:
        if isinstance(node, ir.Layer) and node.op.keeps_shape and node.in_shape == node.out_shape:
            return None
        return Shape(node.out_shape, code(node.channels), node.in_shape)

    def _guard(self, guard: ex.Expr, scope: Scope) -> str:
        return scope.forward(guard)  # the layer's span is the scope's already

    # -- block classes: one per distinct rendering, leaves first

    def block_class(self, node: ir.Block) -> ClassPlan:
        decl = self.net.blocks.get(node.block)
        if decl is None:
            raise unsupported(
                f"block {node.block!r}, which the network does not declare", node.span
            )
        params = [check_identifier(p.name, span_of(decl.span), "parameter") for p in decl.params]
        attrs = Namespace({*MODULE_ATTRIBUTES, *named_children(node.body)})
        scope = Scope(["in_channels", *params], attrs, node.span)
        local = self._locals()
        init: list[str] = []
        steps: list[Step] = []
        self.body(node.body, scope, init, steps, local)
        signature = parameter_list(decl.params)
        takes_in_channels = "in_channels" in scope.used
        if takes_in_channels:
            signature.insert(0, "in_channels: int")
        draft = Draft(
            params=signature,
            init=init,
            hyper=[f"self.{attr} = {name}" for name, attr in scope.hyper.items()],
            forward=steps,
            tail=[],
            in_shape=node.in_shape,
            takes_in_channels=takes_in_channels,
        )
        key = (node.block, draft.key)
        cls = self.plan.by_key.get(key)
        if cls is None:
            first = next((c for c in self.plan.classes if c.block == node.block), None)
            name = node.block if first is None else self.plan.module_name(node.block)
            doc = decl.doc or f"The {node.block} block."
            if first is not None:
                doc += (
                    f"\n\nA second class for {node.block}: these instances need different code "
                    f"from {first.name}'s (a size that depends on the input, or a layer "
                    f"its arguments switch off)."
                )
            cls = ClassPlan(name, node.block, doc + f"\n\nFrom {decl.span.file}:{decl.span.line}.")
            self.plan.by_key[key] = cls
            self.plan.classes.append(cls)
        cls.drafts.append(draft)
        return cls

    # -- the network class

    def network(self) -> Draft:
        net = self.net
        check_identifier(net.name, span_of(net.span), "network")
        child_names = named_children(net.body) | {h.name for h in self.heads}
        attrs = Namespace({*MODULE_ATTRIBUTES, *NETWORK_ATTRIBUTES, *child_names})
        params = [check_identifier(p.name, span_of(net.span), "parameter") for p in net.params]
        scope = Scope(params, attrs, net.span)
        self.plan.outputs = self.plan.module_name(f"{net.name}Outputs") if self.heads else None
        local = self._locals()
        init: list[str] = []
        steps: list[Step] = []
        taps: dict[str, list[ir.Aux]] = {}
        for head in self.heads:
            taps.setdefault(head.tap, []).append(head)
        if self.deploy and net.memory_format == "channels_last":
            steps.append(Step("x = x.contiguous(memory_format=torch.channels_last)", None))
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
        self.plan.params_used = [p.name for p in used]
        return Draft(
            params=parameter_list(used, keyword_only=True),
            init=init,
            hyper=[f"self.{attr} = {name}" for name, attr in scope.hyper.items()],
            forward=steps,
            tail=self._aux_return(),
            in_shape=net.input_shape,
        )

    def _aux_step(self, head: ir.Aux, scope: Scope, steps: list[Step], local: Namespace) -> None:
        name = check_identifier(head.name, span_of(head.span), "layer")
        var = self.aux_locals[name] = local.create(name)
        steps.append(Step(f"{var}: torch.Tensor | None = None", None))
        condition = (
            "self.training" if head.guard is None else f"self.{name} is not None and self.training"
        )
        steps.append(Step(f"if {condition}:", None))
        steps.append(Step(f"    {var} = self.{name}(x)", self._shape(head.head)))

    def _aux_init(self, scope: Scope) -> list[str]:
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
            f"    return {self.plan.outputs}(x, {', '.join(names)})",
            "return x",
        ]

    def _init_weights(self, params: list[str]) -> list[str]:
        if not self.net.init:
            return []
        var = Namespace({"self", *params, *self.plan.taken}).create("m")
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


def _group_name(group: ir.Group) -> str:
    """A local for a group's output: what its layers' names share (``branch7x7`` for
    ``branch7x7_1``, ``branch7x7_2``, ...), its one layer's name, else "out"."""
    names = sorted(named_children(group.items))
    common = os.path.commonprefix(names).rstrip("_")
    if len(names) == 1:
        return names[0]
    return common if len(names) > 1 and common.isidentifier() else "out"


def named_children(nodes: tuple[ir.Node, ...]) -> set[str]:
    names: set[str | None] = set()
    for node in nodes:
        if isinstance(node, ir.Concat):
            names |= named_children(node.branches)
        elif isinstance(node, ir.Group):
            names |= named_children(node.items)
        elif isinstance(node, ir.Fork):
            names |= {node.head.name, *(b.name for b in node.branches if b.node is not None)}
        else:
            names.add(node.name)
    return {name for name in names if name is not None}


def parameter_list(
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
