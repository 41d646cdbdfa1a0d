"""Random valid specs, for fuzzing and property tests.

``random_spec(rng)`` returns ``(text, sets, input_shape)``: the text of a spec
that netc must accept, the ``--set NAME=VALUE`` overrides to pass with it, and
the ``--input`` shape to pass (or None: the spec's own input statement). The
generator keeps track of the tensor's shape with PyTorch's size arithmetic
(``compiler.shapes``), so every layer it writes fits its input; the spec then
also carries the expected output shape and parameter count
(``random_case(rng)`` returns them, for comparing with inference and torch).

Everything is drawn from the ``random.Random`` passed in: a seed gives the
same spec on every machine. Tensors stay tiny (at most 8 channels out of each
layer, inputs up to 24x24) so that a sample can be built and run in torch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from compiler.shapes import conv_out, pool_out


@dataclass
class Case:
    text: str
    sets: tuple[str, ...]
    input_shape: tuple[int, int, int] | None
    out_shape: tuple[int, ...]
    params: int


@dataclass
class _Block:
    """A generated block: keeps height x width; its output channels are a
    function of its arguments (``channels(args, in_channels)``)."""

    name: str
    params: list[tuple[str, str]]  # (name, type)
    text: str
    out: object  # callable(args: dict, in_channels: int) -> (channels, params)


@dataclass
class _Gen:
    rng: random.Random
    blocks: list[_Block] = field(default_factory=list)
    names: int = 0

    def name(self, prefix: str) -> str:
        self.names += 1
        return f"{prefix}{self.names}"

    # -- blocks: bodies that keep the spatial size, so they fit any input --------------------

    def block(self) -> _Block:
        rng = self.rng
        name = f"B{len(self.blocks)}"
        nparams = rng.randint(1, 3)
        params = [(f"c{i}", "int") for i in range(nparams)]
        if rng.random() < 0.3:
            params.append(("flag", "bool"))
        pnames = [p for p, t in params if t == "int"]
        steps: list[tuple[str, object]] = []  # (text, fn(env, c) -> (c, params))
        for _ in range(rng.randint(1, 3)):
            steps.append(self._block_step(pnames))
        lines = [text for text, _ in steps]
        signature = ", ".join(
            f"{p}: {t}" + (" = 4" if t == "int" and i and rng.random() < 0.3 else "")
            for i, (p, t) in enumerate(params)
        )
        text = f"block {name}({signature}) {{\n" + "".join(f"    {line}\n" for line in lines) + "}\n"

        def out(args: dict, c: int) -> tuple[int, int]:
            total = 0
            for _, fn in steps:
                c, p = fn(args, c)
                total += p
            return c, total

        block = _Block(name, params, text, out)
        self.blocks.append(block)
        return block

    def _channels_expr(self, pnames: list[str]) -> tuple[str, object]:
        rng = self.rng
        p = rng.choice(pnames)
        form = rng.random()
        if form < 0.5:
            return p, lambda args: args[p]
        if form < 0.75:
            k = rng.randint(1, 3)
            return f"{p} + {k}", lambda args: args[p] + k
        return f"{p} * 2 // 2", lambda args: args[p]

    def _block_step(self, pnames: list[str]) -> tuple[str, object]:
        rng = self.rng
        kind = rng.random()
        layer = self.name("l")
        if kind < 0.45:
            expr, fn = self._channels_expr(pnames)
            k = rng.choice([1, 3, 5])
            d = rng.choice([1, 1, 2]) if k > 1 else 1
            pad = d * (k - 1) // 2
            bias = rng.random() < 0.8
            extra = "" if bias else ", bias=false"
            dil = f", dilation={d}" if d > 1 else ""
            text = f"{layer} = conv({expr}, {k}, padding={pad}{dil}{extra})"

            def step(args, c, fn=fn, k=k, bias=bias):
                o = fn(args)
                return o, o * c * k * k + (o if bias else 0)

            return text, step
        if kind < 0.55 and self.blocks:  # nesting: a block calling an earlier one
            inner = rng.choice(self.blocks)
            texts, fns = [], []
            for p, t in inner.params:
                if t == "int":
                    expr, fn = self._channels_expr(pnames)
                    texts.append(f"{p}={expr}")
                    fns.append((p, fn))
                else:
                    texts.append(f"{p}=true")

            def call(args, c, inner=inner, fns=fns):
                return inner.out({p: fn(args) for p, fn in fns}, c)

            return f"{layer} = {inner.name}({', '.join(texts)})", call
        if kind < 0.6:
            return f"{layer} = batchnorm()", lambda args, c: (c, 2 * c)
        if kind < 0.75:
            return "relu", lambda args, c: (c, 0)
        if kind < 0.85:
            return "maxpool(3, stride=1, padding=1)", lambda args, c: (c, 0)
        # a concat of two or three branches, each a 1x1 conv or a pool -> conv
        branches = []
        fns = []
        for _ in range(rng.randint(2, 3)):
            expr, fn = self._channels_expr(pnames)
            bname = self.name("b")
            if rng.random() < 0.5:
                branches.append(f"{bname} = conv({expr}, 1)")
            else:
                branches.append(f"{bname} = maxpool(3, stride=1, padding=1) -> conv({expr}, 1)")
            fns.append(fn)
        text = "concat {\n" + "".join(f"        {b}\n" for b in branches) + "    }"

        def cat(args, c, fns=fns):
            outs = [fn(args) for fn in fns]
            return sum(outs), sum(o * c + o for o in outs)

        return text, cat

    def _pair(self, v: tuple[int, int]) -> str:
        return str(v[0]) if v[0] == v[1] and self.rng.random() < 0.5 else f"({v[0]}, {v[1]})"

    # -- the network: layers that change the spatial size too --------------------------------

    def network_layer(self, shape: tuple[int, int, int], env: dict) -> tuple[str, tuple, int] | None:
        """One statement fitting ``shape``: (text, new shape, parameters), or None."""
        rng = self.rng
        c, h, w = shape
        kind = rng.random()
        name = self.name("n")
        if kind < 0.3:
            o = rng.randint(1, 8)
            k = (rng.randint(1, 4), rng.randint(1, 4)) if rng.random() < 0.3 else (rng.randint(1, 5),) * 2
            s = (rng.randint(1, 3), rng.randint(1, 3))
            p = (rng.randint(0, 3), rng.randint(0, 3))
            d = (rng.randint(1, 2), rng.randint(1, 2))
            oh, ow = (conv_out(x, *a) for x, a in zip((h, w), zip(k, s, p, d)))
            if oh < 1 or ow < 1:
                return None
            text = f"{name} = conv({o}, {self._pair(k)}, stride={self._pair(s)}, padding={self._pair(p)}, dilation={self._pair(d)})"
            return text, (o, oh, ow), o * c * k[0] * k[1] + o
        if kind < 0.5:
            op = rng.choice(["maxpool", "avgpool"])
            k = (rng.randint(1, 4), rng.randint(1, 4))
            s = (rng.randint(1, 3), rng.randint(1, 3))
            p = (rng.randint(0, k[0] // 2), rng.randint(0, k[1] // 2))
            d = (rng.randint(1, 2), rng.randint(1, 2)) if op == "maxpool" else (1, 1)
            ceil = rng.random() < 0.5
            oh, ow = (pool_out(x, *a, ceil) for x, a in zip((h, w), zip(k, s, p, d)))
            if oh < 1 or ow < 1:
                return None
            dil = f", dilation={self._pair(d)}" if op == "maxpool" else ""
            text = (
                f"{op}({self._pair(k)}, stride={self._pair(s)}, padding={self._pair(p)}{dil}, "
                f"ceil_mode={str(ceil).lower()})"
            )
            return text, (c, oh, ow), 0
        if kind < 0.6:
            choice = rng.randint(0, 2)
            text = ["relu", f"{name} = batchnorm()", "dropout2d(0.1)"][choice]
            return text, shape, 2 * c if choice == 1 else 0
        if kind < 0.85:
            block = self.rng.choice(self.blocks) if self.blocks and rng.random() < 0.8 else self.block()
            args = {}
            texts = []
            keyword = False
            for p, t in block.params:
                if t == "int":
                    value = env[p] if p in env and rng.random() < 0.3 else rng.randint(1, 6)
                    args[p] = value
                    written = p if p in env and value == env[p] else str(value)
                else:
                    written = rng.choice(["true", "false"])
                keyword = keyword or rng.random() < 0.5
                texts.append(f"{p}={written}" if keyword else written)
            oc, params = block.out(args, c)
            return f"{name} = {block.name}({', '.join(texts)})", (oc, h, w), params
        o = rng.randint(1, 8)
        return f"{name} = batchnorm() -> conv({o}, 1) -> relu", (o, h, w), 2 * c + o * c + o




def random_case(rng: random.Random) -> Case:
    """A valid spec with its overrides and the output shape and parameter count it must give."""
    gen = _Gen(rng)
    for _ in range(rng.randint(0, 2)):
        gen.block()
    shape = (rng.randint(1, 4), rng.randint(1, 24), rng.randint(1, 24))
    written = shape
    input_shape = None
    if rng.random() < 0.3:  # the shape comes from --input; the spec says something else
        input_shape = shape
        written = (rng.randint(1, 4), rng.randint(1, 24), rng.randint(1, 24))
    width_default = rng.randint(1, 8)
    width = width_default
    sets: list[str] = []
    if rng.random() < 0.4:
        width = rng.randint(1, 8)
        sets.append(f"c0={width}")
    drop = round(rng.random(), 3)
    if rng.random() < 0.3:
        sets.append(f"p={drop}")
    env = {"c0": width}
    lines = []
    params = 0
    for _ in range(rng.randint(1, 8)):
        for _attempt in range(4):
            made = gen.network_layer(shape, env)
            if made is not None:
                break
        else:
            continue
        text, shape, p = made
        lines.append(text)
        params += p
    if rng.random() < 0.7:
        size = rng.randint(1, 3)
        lines.append(f"pool = adaptive_avgpool({size})")
        shape = (shape[0], size, size)
        lines.append("flatten")
        lines.append("dropout(p)")
        features = shape[0] * shape[1] * shape[2]
        lines.append("head = linear(c0)")
        params += features * width + width
        shape = (width,)
        if rng.random() < 0.3:
            lines.append("softmax(dim=1)")
    body = [f"input {written[0]}x{written[1]}x{written[2]}", *lines]
    text = "".join(b.text + "\n" for b in gen.blocks)
    text += f"network Net{rng.randint(0, 99)}(c0: int = {width_default}, p: float = {drop}) {{\n"
    text += "".join(f"    {line}\n" for line in body) + "}\n"
    return Case(text, tuple(sets), input_shape, tuple(shape), params)


def random_spec(rng: random.Random) -> tuple[str, tuple[str, ...], tuple[int, int, int] | None]:
    """``(text, sets, input_shape)`` of a random valid spec (see ``random_case``)."""
    case = random_case(rng)
    return case.text, case.sets, case.input_shape


def input_arg(shape: tuple[int, int, int] | None) -> list[str]:
    """The command-line arguments for ``--input``, if any."""
    return [] if shape is None else ["--input", "x".join(map(str, shape))]
