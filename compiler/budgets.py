"""Resource budgets: what a spec may ask for, checked before any tensor exists.

Elaboration counts as it goes (``Meter``) and stops at the first layer that
takes a total past its budget, with an error at that layer's call and the flag
that lifts the budget. The defaults leave a wide margin over every shipped spec
(GoogLeNet: 13.4 M parameters, 1.6 G MACs, about 230 layers, blocks nested 3
deep, a largest activation of 0.8 M values per image, so 205 M at batch 256)
and refuse what would need tens of gigabytes, in milliseconds.

The budgets of the front end (file size, import depth, integer digits and
expression depth) live in ``dsl`` and are passed through from here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when needed: importing compiler imports no front end
    from dsl.errors import Span, SpecError


@dataclass(frozen=True)
class Budget:
    """Upper bounds for one spec; ``None`` or 0 for a field lifts it."""

    max_params: int = 2_000_000_000  # parameters, aux heads included (8 GB of float32)
    max_macs: int = 10_000_000_000_000  # multiply-accumulates per image
    max_activation: int = 1_000_000_000  # values in any one layer's output, per image
    max_layers: int = 250_000  # layers after expanding every block call
    max_depth: int = 64  # blocks inside blocks
    max_file_size: int = 16 * 1024 * 1024  # bytes of one spec file
    max_name: int = 100  # characters of a name

    def replace(self, **changes: int | None) -> Budget:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update({k: v for k, v in changes.items() if v is not None})
        return Budget(**values)


DEFAULT = Budget()

# What each budget counts, for its error message, and its flag.
WORDS = {
    "max_params": "parameters",
    "max_macs": "multiply-accumulates per image",
    "max_activation": "values in one activation",
    "max_layers": "layers",
    "max_depth": "levels of nested blocks",
    "max_file_size": "bytes",
    "max_name": "characters",
}


def flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def over(field: str, amount: int, limit: int, span: Span | None, what: str) -> SpecError:
    from dsl.errors import SpecError

    return SpecError(
        f"{what}: {amount:,} {WORDS[field]}, more than the budget of {limit:,}",
        span,
        hint=f"raise it with {flag(field)} (or {field}= in the Python API) if this is meant",
    )


class Meter:
    """Running totals of one elaboration, each checked against its budget."""

    def __init__(self, budget: Budget | None):
        self.budget = budget or DEFAULT
        self.params = 0
        self.macs = 0
        self.layers = 0

    def _limit(self, field: str) -> int | None:
        return getattr(self.budget, field) or None

    def layer(self, params: int, macs: int, out_shape: tuple[int, ...], span: Span | None) -> None:
        """Count one layer; raise at its span when a total goes past its budget."""
        self.params += params
        self.macs += macs
        self.layers += 1
        limit = self._limit("max_activation")
        size = 1
        for d in out_shape:
            size *= d
        if limit and size > limit:
            raise over("max_activation", size, limit, span, "this layer's output is too large")
        for field, total in (
            ("max_params", self.params),
            ("max_macs", self.macs),
            ("max_layers", self.layers),
        ):
            limit = self._limit(field)
            if limit and total > limit:
                raise over(field, total, limit, span, "the network is too large at this layer")

    def expansion(self, count: int, span: Span | None, name: str) -> None:
        """Before expanding a block call: refuse one that alone would pass the layer budget."""
        limit = self._limit("max_layers")
        if limit and self.layers + count > limit:
            raise over("max_layers", self.layers + count, limit, span, f"{name} expands too far")

    def depth(self, depth: int, span: Span | None, chain: list[str]) -> None:
        limit = self._limit("max_depth")
        if limit and depth > limit:
            shown = (
                " -> ".join(chain[:3] + ["..."] + chain[-2:])
                if len(chain) > 6
                else " -> ".join(chain)
            )
            raise over("max_depth", depth, limit, span, f"blocks nested too deeply ({shown})")

    def name(self, name: str, span: Span | None) -> None:
        limit = self._limit("max_name")
        if limit and len(name) > limit:
            raise over("max_name", len(name), limit, span, f"name '{name[:20]}...' is too long")
