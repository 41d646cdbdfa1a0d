"""Docstrings and comments of the generated file, escaped and wrapped."""

from __future__ import annotations

import re
import textwrap

from compiler import ir
from compiler.backends.source.loader import aux_names, fused_convs
from compiler.expr import literal


def show_shape(shape: ir.Shape) -> str:
    return " x ".join(["N", *map(str, shape)])


def escape_doc(text: str) -> str:
    """Text made safe inside a triple-quoted docstring, and nothing else changed."""
    text = text.replace("\\", "\\\\")
    text = re.sub(r'"(?=")|"$', '\\\\"', text)
    return "".join(
        c if c == "\n" or c.isprintable() else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def escape_comment(text: str) -> str:
    """Text made safe on one comment line."""
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


def network_doc(net: ir.Network, deploy: bool, params_used: list[str]) -> str:
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
            ("Deploy build: no aux heads. " if aux_names(net) else "Deploy build. ")
            + (f"Optimised by netc's deploy passes {', '.join(passes)}. " if passes else "")
            + f"{net.name}.from_training_checkpoint(state_dict) loads a checkpoint of the "
            "training build: it drops the aux heads' keys, returns their names, "
            + (
                "builds the fused convolutions' weights from the training ones "
                "(batch norms folded, siblings stacked), "
                if fused_convs(net)
                else ""
            )
            + "and loads the rest with strict=True."
        )
    return "\n\n".join([lines[0], *(wrap(line) for line in lines[1:])])


def wrap(paragraph: str) -> str:
    return textwrap.fill(paragraph, width=88, break_long_words=False, break_on_hyphens=False)
