"""The plan laid out by the Jinja2 template, and formatted by ruff."""

from __future__ import annotations

import functools
import io
import re
import subprocess
import tokenize
from pathlib import Path

from compiler.backends.source.layout import LINE_LENGTH, forward_lines
from compiler.backends.source.loader import aux_names
from compiler.backends.source.plan import Plan
from compiler.backends.source.text import escape_comment, escape_doc, network_doc, show_shape, wrap
from compiler.expr import literal
from dsl.errors import SpecError

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@functools.cache
def helper_sections() -> dict[str, str]:
    """netc's static helper code, by section (``compiler/templates/helpers.py``)."""
    text = (TEMPLATES / "helpers.py").read_text(encoding="utf-8")
    found = re.finditer(r"^# netc: begin (\w+)\n(.*?)^# netc: end$", text, re.DOTALL | re.MULTILINE)
    return {match[1]: match[2].strip("\n") for match in found}


def renamed(code: str, names: dict[str, str]) -> str:
    """``code`` with the identifiers in ``names`` renamed; strings and comments stay."""
    changes = {old: new for old, new in names.items() if old != new}
    if not changes:
        return code
    lines = code.splitlines(keepends=True)
    tokens = tokenize.generate_tokens(io.StringIO(code).readline)
    edits = [t for t in tokens if t.type == tokenize.NAME and t.string in changes]
    for token in reversed(edits):  # right to left: earlier columns stay valid
        (row, start), (_, end) = token.start, token.end
        line = lines[row - 1]
        lines[row - 1] = line[:start] + changes[token.string] + line[end:]
    return "".join(lines)


def _helpers(plan: Plan) -> dict[str, str]:
    """The helper sections this file holds, under the names the plan gave them."""
    names = {name: plan.helpers.get(name, name) for name in ("ScaleShift", "scale_shift")}
    if plan.loader is not None:
        names["ConvSource"] = plan.loader.names["ConvSource"]
    return {key: renamed(code, names) for key, code in helper_sections().items()}


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
    env.filters["doc"] = escape_doc
    env.filters["literal"] = literal
    return env.get_template("module.py.jinja")


def render(plan: Plan, source: str | None = None) -> str:
    """The plan laid out by the template (not yet formatted); ``source`` names the spec."""
    net, deploy, heads = plan.net, plan.deploy, plan.heads
    network = plan.network
    assert network is not None, "the plan has no network class yet"
    summary = f"Input {show_shape(net.input_shape)}, output {show_shape(net.out_shape)}."
    if heads:
        summary += (
            f" In training mode forward returns {plan.outputs}(main, "
            f"{', '.join(h.name for h in heads)}); in eval mode, the main output alone."
        )
    classes = [
        {
            "name": cls.name,
            "doc": cls.doc,
            "params": cls.drafts[0].params,
            "init": cls.drafts[0].hyper + cls.drafts[0].init,
            "forward": forward_lines(cls.drafts, symbolic=True),
        }
        for cls in plan.classes
    ]
    loader = plan.loader
    text = _template().render(
        source=escape_comment(source or net.source),
        docstring=network_doc(net, deploy, plan.params_used),
        typing=["NamedTuple"] if heads or loader else [],
        ordered_dict=plan.ordered_dict,
        functional=plan.functional or bool(heads),
        classes=classes,
        scale_shift=plan.helpers.get("ScaleShift"),
        scale_shift_function=plan.helpers.get("scale_shift"),
        network={
            "name": net.name,
            "doc": f"{net.name}, from {net.span.file}:{net.span.line}.\n\n{wrap(summary)}",
            "params": network.params,
            "init": network.hyper + network.init,
            "forward": forward_lines([network], symbolic=False),
            "returns": f"torch.Tensor | {plan.outputs}" if heads else "torch.Tensor",
        },
        outputs=plan.outputs,
        heads=[{"name": h.name, "weight": h.weight} for h in heads],
        optional_fields=len({h.guard for h in heads}) > 1,  # some heads may be off
        deploy=deploy,
        aux_names=aux_names(net) if deploy else (),
        loader=loader,
        helpers=_helpers(plan),
    )
    return text


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
