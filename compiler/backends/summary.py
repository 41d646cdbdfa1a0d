"""The per-layer table: dotted name, kind, output shape, parameters, MACs.

``rows`` is plain data (used by tests and other tools); ``render`` draws it
with rich; ``to_json`` is the same table for programs (``netc summary --json``). MACs are multiply-accumulates per image: a convolution's weight
elements times its output height and width, a linear layer's in x out.
"""

from __future__ import annotations

from compiler import ir
from compiler.display import Row, rows, show_shape, use_colour

__all__ = ["Row", "deploy_notes", "render", "rows", "to_json"]


def deploy_notes(net: ir.Network, original: ir.Network | None = None) -> list[str]:
    """What the deploy passes did, one line each: the passes run, what they
    removed (``original``: the network before them), and each horizontal
    fusion with the training modules it stacks (the table's kind column shows
    each layer's folded batch norm and fused ReLU)."""
    off = [] if original is None else [p for p in _all_passes() if p not in net.passes]
    lines = [f"deploy passes: {', '.join(net.passes) or 'none'}"]
    if off:
        lines[0] += f" (off: {', '.join(off)})"
    if original is not None:
        siblings = [op for _, op in _fused(net) if len(op.sources) > 1]

        def gone(*kinds: str) -> int:
            return _count(original, kinds) - _count(net, kinds)

        done = [
            ("dropped", gone(*UNUSED), "dropout layer"),
            ("folded", gone("batchnorm"), "batch norm"),
            ("fused", gone("relu"), "ReLU"),
            ("fused", sum(len(op.sources) for op in siblings), "sibling 1x1 convolution"),
        ]
        line = "; ".join(f"{verb} {n} {what}{'s' * (n != 1)}" for verb, n, what in done if n)
        if siblings:
            line += f" into {len(siblings)}"
        lines.append(line or "nothing to fuse or drop")
    if net.dropped_aux:
        lines.append(f"aux heads dropped: {', '.join(net.dropped_aux)}")
    for path, op in _fused(net):
        if len(op.sources) > 1:
            parent = path.rpartition(".")[0]
            names = [s.conv.removeprefix(parent + ".") if parent else s.conv for s in op.sources]
            folded = " (batch norms folded)" if all(s.bn for s in op.sources) else ""
            lines.append(
                f"{path} <- {', '.join(names)}{folded}, split {'/'.join(map(str, op.split))}"
            )
    return lines


UNUSED = ("dropout", "dropout2d")
PLAIN_ROWS = 2000  # longer tables are printed as plain text
_HEADERS = ("name", "kind", "output", "params", "MACs")
_CAPTION = "MACs: multiply-accumulates per image"


def _rich(title: str, table: list):
    from rich.table import Table
    from rich.text import Text

    result = Table(title=Text(title), title_justify="left", caption=_CAPTION)
    for header in _HEADERS:
        result.add_column(
            header, no_wrap=True, justify="right" if header in ("params", "MACs") else "left"
        )
    for entry in table:
        if entry is None:
            result.add_section()
        else:
            cells, style = entry
            result.add_row(*(Text(c) for c in cells), style=style)
    return result


def _plain(title: str, table: list) -> None:
    import sys

    entries = [e[0] for e in table if e is not None]
    widths = [max(len(h), *(len(c[i]) for c in entries)) for i, h in enumerate(_HEADERS)]

    def line(cells) -> str:
        return "  ".join(
            c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [title, line(_HEADERS), rule]
    out.extend(rule if e is None else line(e[0]) for e in table)
    out.append(_CAPTION)
    sys.stdout.write("\n".join(out) + "\n")


def _fused(net: ir.Network) -> list[tuple[str, ir.FusedConv]]:
    layers = ir.layers(net.body)
    return [(path, layer.op) for path, layer in layers if isinstance(layer.op, ir.FusedConv)]


def _all_passes() -> tuple[str, ...]:
    from compiler.passes import PASSES

    return tuple(PASSES)


def _count(net: ir.Network, kinds: tuple[str, ...]) -> int:
    return sum(
        1 for _, layer in ir.layers(net.body) if layer.op.op in kinds and net.enabled(layer.guard)
    )


def render(
    net: ir.Network, max_depth: int | None = None, console=None, original: ir.Network | None = None
) -> None:
    """Print the table; for a deploy build (``net.passes``), then what was fused
    (``original``: the network before the passes, for the counts)."""
    from rich.console import Console

    title = f"{net.name} ({net.source}), input {show_shape(net.input_shape)}"
    if net.passes:
        title += ", deploy build"
    table: list[tuple[tuple[str, ...], str | None] | None] = []  # None: a section break

    def add(rs: list[Row]) -> None:
        for r in rs:
            if max_depth is not None and r.depth > max_depth:
                continue
            cells = (
                "  " * r.depth + r.name,
                r.kind,
                show_shape(r.shape),
                f"{r.params:,}",
                f"{r.macs:,}",
            )
            table.append((cells, None if r.leaf else "bold"))

    body_params, body_macs = ir.total_params(net.body), ir.total_macs(net.body)
    add(rows(net.body, enabled=net.enabled))
    table.append(None)
    table.append(
        (("total", "", show_shape(net.out_shape), f"{body_params:,}", f"{body_macs:,}"), "bold")
    )
    heads = net.active_aux()
    if heads:
        table.append(None)
        table.append((("aux heads (train only)", "", "", "", ""), "italic"))
        for head in heads:
            head_rows = rows((head.head,))
            top = head_rows[0]
            head_rows[0] = Row(
                top.name,
                f"{top.kind} @ {head.tap} x{head.weight:g}",
                top.shape,
                top.params,
                top.macs,
                top.depth,
                top.leaf,
            )
            add(head_rows)
        aux_params = sum(ir.total_params((h.head,)) for h in heads)
        aux_macs = sum(ir.total_macs((h.head,)) for h in heads)
        table.append(None)
        table.append(
            (
                (
                    "total with aux heads (train)",
                    "",
                    "",
                    f"{body_params + aux_params:,}",
                    f"{body_macs + aux_macs:,}",
                ),
                "bold",
            )
        )
    if console is None and len(table) > PLAIN_ROWS:
        # rich spends about a millisecond a row measuring and rendering: a
        # 100,000-layer network gets the same columns as plain text, in linear time.
        _plain(title, table)
        console = Console(highlight=False, color_system="auto" if use_colour() else None)
    else:
        if console is None:
            # Never squeeze the table: rich would cut names, shapes and numbers short
            # with an ellipsis (and a pipe gets 80 columns). Wider than the terminal
            # is the lesser evil.
            import shutil

            from rich.measure import Measurement

            console = Console(
                width=shutil.get_terminal_size().columns,
                color_system="auto" if use_colour() else None,
            )
            needed = Measurement.get(
                console, console.options.update_width(100_000), _rich(title, table)
            ).maximum
            console.width = max(console.width, needed)
        console.print(_rich(title, table))
    if net.passes:
        for line in deploy_notes(net, original):
            console.print(line, highlight=False, markup=False, soft_wrap=True)


def to_json(
    net: ir.Network, max_depth: int | None = None, original: ir.Network | None = None
) -> dict:
    """The table as JSON-ready data, keys in a fixed order: the network, its rows
    (``layers``; each aux head's apart), the totals, and for a deploy build what
    its passes did. Shapes are per image (no batch dimension); ``depth`` is the
    nesting depth, ``leaf`` false for a block or chain (its totals)."""

    def keep(found: list[Row]) -> list[dict]:
        return [
            {
                "name": r.name,
                "kind": r.kind,
                "output": list(r.shape),
                "params": r.params,
                "macs": r.macs,
                "depth": r.depth,
                "leaf": r.leaf,
            }
            for r in found
            if max_depth is None or r.depth <= max_depth
        ]

    heads = net.active_aux()
    aux = [
        {
            "name": head.name,
            "tap": head.tap,
            "weight": head.weight,
            "params": ir.total_params((head.head,)),
            "macs": ir.total_macs((head.head,)),
            "layers": keep(rows((head.head,))),
        }
        for head in heads
    ]
    params, macs = ir.total_params(net.body), ir.total_macs(net.body)
    aux_params = sum(ir.total_params((head.head,)) for head in heads)
    aux_macs = sum(ir.total_macs((head.head,)) for head in heads)
    return {
        "network": net.name,
        "source": net.source,
        "input": list(net.input_shape),
        "output": list(net.out_shape),
        "passes": list(net.passes),
        "layers": keep(rows(net.body, enabled=net.enabled)),
        "aux": aux,
        "totals": {
            "params": params,
            "macs": macs,
            "params_with_aux": params + aux_params,
            "macs_with_aux": macs + aux_macs,
        },
        "deploy_notes": deploy_notes(net, original) if net.passes else [],
    }
