"""What changed between two networks, layer by layer: ``netc diff A.net B.net``.

Rows are the summary's (``compiler.display.rows``: every named layer, chain
and block, each aux head's apart), matched by module path in order
(difflib over the two lists of paths). Each row is ``same``, ``changed``
(kind, output shape, parameters or MACs differ), ``added`` (only in B) or
``removed`` (only in A); the totals compare the networks as a whole.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from compiler import ir
from compiler.display import Row, rows, show_shape, use_colour


@dataclass(frozen=True)
class Change:
    name: str
    change: str  # "same", "changed", "added", "removed"
    a: Row | None
    b: Row | None

    @property
    def depth(self) -> int:
        row = self.b if self.b is not None else self.a
        assert row is not None
        return row.depth

    @property
    def params_delta(self) -> int:
        return (self.b.params if self.b else 0) - (self.a.params if self.a else 0)

    @property
    def macs_delta(self) -> int:
        return (self.b.macs if self.b else 0) - (self.a.macs if self.a else 0)


def _all_rows(net: ir.Network, max_depth: int | None) -> list[Row]:
    found = rows(net.body, enabled=net.enabled)
    for head in net.active_aux():
        found += rows((head.head,))
    return [r for r in found if max_depth is None or r.depth <= max_depth]


def changes(a: ir.Network, b: ir.Network, max_depth: int | None = None) -> list[Change]:
    """Every row of either network, in order, with what became of it."""
    old, new = _all_rows(a, max_depth), _all_rows(b, max_depth)
    matcher = difflib.SequenceMatcher(None, [r.name for r in old], [r.name for r in new], False)
    result: list[Change] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for x, y in zip(old[i1:i2], new[j1:j2]):
                same = (x.kind, x.shape, x.params, x.macs) == (y.kind, y.shape, y.params, y.macs)
                result.append(Change(x.name, "same" if same else "changed", x, y))
            continue
        result += [Change(x.name, "removed", x, None) for x in old[i1:i2]]
        result += [Change(y.name, "added", None, y) for y in new[j1:j2]]
    return result


def _totals(net: ir.Network) -> tuple[int, int, int, int]:
    heads = tuple(h.head for h in net.active_aux())
    params, macs = ir.total_params(net.body), ir.total_macs(net.body)
    return params, macs, params + ir.total_params(heads), macs + ir.total_macs(heads)


def _side(net: ir.Network) -> dict:
    return {
        "network": net.name,
        "source": net.source,
        "input": list(net.input_shape),
        "output": list(net.out_shape),
    }


def _row(r: Row | None) -> dict | None:
    if r is None:
        return None
    return {"kind": r.kind, "output": list(r.shape), "params": r.params, "macs": r.macs}


def _compare(x: int, y: int) -> dict:
    return {"a": x, "b": y, "delta": y - x}


def to_json(a: ir.Network, b: ir.Network, max_depth: int | None = None) -> dict:
    """The diff as JSON-ready data, every row (``same`` ones too), keys in a fixed order."""
    ta, tb = _totals(a), _totals(b)
    return {
        "a": _side(a),
        "b": _side(b),
        "rows": [
            {
                "name": c.name,
                "change": c.change,
                "a": _row(c.a),
                "b": _row(c.b),
                "params_delta": c.params_delta,
                "macs_delta": c.macs_delta,
            }
            for c in changes(a, b, max_depth)
        ],
        "totals": {
            "params": _compare(ta[0], tb[0]),
            "macs": _compare(ta[1], tb[1]),
            "params_with_aux": _compare(ta[2], tb[2]),
            "macs_with_aux": _compare(ta[3], tb[3]),
        },
    }


def _signed(n: int) -> str:
    return f"{n:+,}" if n else "0"


def _either(a: Row | None, b: Row | None, show: Callable[[Row], str]) -> str:
    """One side's value, or both as ``A -> B`` where they differ."""
    x, y = (show(r) if r is not None else None for r in (a, b))
    if x is None or y is None:
        return x or y or ""
    return x if x == y else f"{x} -> {y}"


def render(
    a: ir.Network,
    b: ir.Network,
    max_depth: int | None = None,
    everything: bool = False,
    console=None,
) -> None:
    """Print the rows that differ (``everything``: all rows), then the totals."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"A: {a.name} ({a.source})\nB: {b.name} ({b.source})",
        title_justify="left",
        caption="MACs: multiply-accumulates per image",
    )
    for column in ("name", "change", "kind", "output"):
        table.add_column(column, no_wrap=True)
    for column in ("params A", "params B", "params +/-", "MACs A", "MACs B", "MACs +/-"):
        table.add_column(column, justify="right", no_wrap=True)

    def number(r: Row | None, field: str) -> str:
        return "" if r is None else f"{getattr(r, field):,}"

    shown = [c for c in changes(a, b, max_depth) if everything or c.change != "same"]
    for c in shown:
        table.add_row(
            "  " * c.depth + c.name,
            c.change,
            _either(c.a, c.b, lambda r: r.kind),
            _either(c.a, c.b, lambda r: show_shape(r.shape)),
            number(c.a, "params"),
            number(c.b, "params"),
            _signed(c.params_delta),
            number(c.a, "macs"),
            number(c.b, "macs"),
            _signed(c.macs_delta),
        )
    if not shown:
        table.add_row("(no layer differs)", style="italic")
    table.add_section()
    ta, tb = _totals(a), _totals(b)
    x, y = show_shape(a.out_shape), show_shape(b.out_shape)
    out = x if x == y else f"{x} -> {y}"
    for label, (pa, pb, ma, mb) in (
        ("total", (ta[0], tb[0], ta[1], tb[1])),
        ("total with aux heads (train)", (ta[2], tb[2], ta[3], tb[3])),
    ):
        if label != "total" and ta[:2] == ta[2:] and tb[:2] == tb[2:]:
            continue  # no aux heads on either side
        row = (f"{pa:,}", f"{pb:,}", _signed(pb - pa), f"{ma:,}", f"{mb:,}", _signed(mb - ma))
        table.add_row(label, "", "", out if label == "total" else "", *row, style="bold")
    if console is None:
        import shutil

        from rich.measure import Measurement

        console = Console(
            width=shutil.get_terminal_size().columns,
            color_system="auto" if use_colour() else None,
        )
        needed = Measurement.get(console, console.options.update_width(100_000), table).maximum
        console.width = max(console.width, needed)
    console.print(table)
