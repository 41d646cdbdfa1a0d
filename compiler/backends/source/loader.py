"""The tables a deploy module's loader builds its fused weights from."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from compiler import ir
from compiler.expr import literal


def aux_names(net: ir.Network) -> tuple[str, ...]:
    """The training build's aux heads: those a deploy pass dropped, and those left."""
    return (*net.dropped_aux, *(h.name for h in net.aux))


def fused_convs(net: ir.Network) -> list[tuple[str, tuple[ir.ConvSource, ...]]]:
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
class Loader:
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
    def build(cls, net: ir.Network, module_name: Callable[[str], str]) -> Loader | None:
        fused = fused_convs(net)
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

    @property
    def made_of(self) -> str:
        """Each fused convolution's sources by module path (``_fuse``'s argument), as an
        expression of the tables."""
        folded = "{s.conv: (s,) for s in " + self.names["FOLDED_BN"] + "}"
        if self.folded and self.stacked:
            return "{**" + folded + ", **" + self.names["FUSED_CONVS"] + "}"
        return folded if self.folded else self.names["FUSED_CONVS"]
