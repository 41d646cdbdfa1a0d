"""Spec text can never inject code into the generated module.

A small spec has a slot for every kind of name a spec introduces; each
hostile name goes into each slot. Every case either fails with one
file:line:col error (the message is asserted) or compiles to a module that
parses, holds no identifier and no string beyond those of the same spec with
benign names plus the hostile name itself (and names netc derives from it),
imports exactly what the benign module imports, and computes what the runtime
module computes. Doc comments, string values and the spec's path are tried
too: they may only ever land inside a docstring, a string literal or a
comment.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import pydantic
import pytest
import torch

import compiler
from compiler import expr as ex
from compiler import ir, passes
from compiler.backends.runtime import build_module
from compiler.backends.source import emit
from dsl.errors import SpecError

TEMPLATE = """\
block {B}({P}: int) {{
    {L} = conv({P}, 1)
    concat {{
        {R} = conv(4, 1)
        other = conv(4, 1)
    }}
}}

network {N}({Q}: int = 8, on: bool = true) {{
    input 3x8x8
    body = {B}({Q})
    aux {A} = conv(2, 1) -> flatten -> linear(3) at body weight 0.5 if on
    head = flatten -> linear({Q})
    init conv = kaiming_normal(mode="fan_out", nonlinearity="relu")
}}
"""
BENIGN = {"N": "Net", "B": "Unit", "P": "ch", "Q": "width", "L": "conv1", "R": "left", "A": "side"}
ROLES = {"N": "network", "B": "block", "P": "parameter", "Q": "parameter"} | dict.fromkeys(
    "LRA", "layer"
)

# Names the lexer refuses, with the offset of the refused character in the name.
LEXER = {
    'a"b': ("unexpected character '\"'", 1),
    "a'b": ('unexpected character "\'"', 1),
    "a\\b": ("unexpected character '\\'", 1),
    "a;b": ("unexpected character ';'", 1),
    "a.b": ("unexpected character '.'", 1),
    "n\u0430me": ("unexpected character '\u0430'", 1),  # Cyrillic a
    "\u0455elf": ("unexpected character '\u0455'", 0),  # Cyrillic dze, looks like s
    "\uff58": ("unexpected character '\uff58'", 0),  # fullwidth x
    "caf\u00e9": ("unexpected character '\u00e9'", 3),
    "\ufb01le": ("unexpected character '\ufb01'", 0),  # the fi ligature (NFKC would make it 'file')
}

# Names that lex but are refused as identifiers, in every role.
IDENTIFIER = {
    "__import__": "must start with a letter and use only ASCII letters, digits and '_'",
    "__init__": "must start with a letter and use only ASCII letters, digits and '_'",
    "__class__": "must start with a letter and use only ASCII letters, digits and '_'",
    "_private": "must start with a letter and use only ASCII letters, digits and '_'",
    "class": "is a Python keyword",
    "lambda": "is a Python keyword",
    "None": "is a Python keyword",
    "match": "is a Python keyword",
    "print": "would shadow a Python builtin",
    "eval": "would shadow a Python builtin",
    "exec": "would shadow a Python builtin",
    "open": "would shadow a Python builtin",
    "super": "would shadow a Python builtin",
    "self": "is reserved by netc's generated code",
    "x": "is reserved by netc's generated code",
    "torch": "is reserved by netc's generated code",
    "nn": "is reserved by netc's generated code",
    "F": "is reserved by netc's generated code",
    "in_channels": "is reserved by netc's generated code",
    "outputs": "is reserved by netc's generated code",
    "target": "is reserved by netc's generated code",
}

# Refused in some roles only.
ROLE_ONLY = {
    ("layer", "forward"): "would shadow an nn.Module attribute",
    ("layer", "training"): "would shadow an nn.Module attribute",
    ("layer", "state_dict"): "would shadow an nn.Module attribute",
    ("layer", "loss"): "would shadow an attribute of the network module",
    ("layer", "from_training_checkpoint"): "would shadow an attribute of the network module",
    ("layer", "aux_weights"): "would shadow an attribute of the network module",
    ("block", "loss"): "is reserved by netc's generated code",
    ("network", "loss"): "is reserved by netc's generated code",
    ("block", "NamedTuple"): "is reserved by netc's generated code",
    ("network", "NamedTuple"): "is reserved by netc's generated code",
    ("block", "AUX_HEADS"): "is reserved by netc's generated code",
    ("network", "AUX_LOSS_WEIGHTS"): "is reserved by netc's generated code",
}

# Names that are fine as Python identifiers but collide with something in this spec.
CLASHES = {
    ("N", "Unit"): ("9:9", "network 'Unit' has the name of block defined at {f}:1:7"),
    ("P", "Unit"): ("1:12", "parameter 'Unit' has the name of block defined at {f}:1:7"),
    ("Q", "Unit"): ("9:13", "parameter 'Unit' has the name of block defined at {f}:1:7"),
    ("Q", "on"): ("9:26", "parameter 'on' is declared twice"),
    ("B", "on"): ("9:29", "parameter 'on' has the name of block defined at {f}:1:7"),
    ("L", "other"): ("5:9", "duplicate name 'other' (first used at {f}:2:5)"),
    ("R", "other"): ("5:9", "duplicate name 'other' (first used at {f}:4:9)"),
    ("A", "body"): ("12:9", "duplicate name 'body' (first used at {f}:11:5)"),
    ("A", "main"): ("12:9", "aux head name 'main' is taken by the network's main output"),
}

# Names that split the statement: parse errors, each where the parser first stumbles.
SYNTAX = {
    "a\nb": {
        "N": "10:1: unexpected name 'b', expected '('",
        "B": "2:1: unexpected name 'b', expected '('",
        "P": "2:1: unexpected name 'b', expected ':'",
        "Q": "10:1: unexpected name 'b', expected ':'",
        "L": "2:5: unknown layer or block 'a'",
        "R": "4:9: unknown layer or block 'a'",  # an unnamed branch, then 'b = ...'?
        "A": "13:1: unexpected name 'b', expected '='",
    },
    "a b": {
        "N": "9:11: unexpected name 'b', expected '('",
        "B": "1:9: unexpected name 'b', expected '('",
        "P": "1:14: unexpected name 'b', expected ':'",
        "Q": "9:15: unexpected name 'b', expected ':'",
        "L": "2:5: unknown layer or block 'a'",
        "R": "4:9: unknown layer or block 'a'",
        "A": "12:11: unexpected name 'b', expected '='",
    },
    "aux": {"L": "2:9: unexpected '=', expected a name"},  # a statement keyword of the language
    "1abc": {
        "N": "9:9: unexpected number 1, expected a name",
        "B": "1:7: unexpected number 1, expected a name",
        "P": "1:12: unexpected number 1, expected one of ')', a name",
        "Q": "9:13: unexpected number 1, expected one of ')', a name",
        "L": "2:5: unexpected number 1, expected one of '[', 'add', 'aux', 'concat', 'init', 'input', 'mul', '}', a name",
        "R": "4:10: unexpected name 'abc', expected an operator",  # 1 * (a scale)?
        "A": "12:9: unexpected number 1, expected a name",
    },
}

# Names Python accepts and this spec does not otherwise use: they must compile.
ACCEPTED = [
    "main", "Optional", "typing", "kwargs", "cls", "m", "NetOutputs", "ScaleShift", "Net_1",
    "Unit_1", "dropped", "kept", "key", "value", "model", "total", "on", "Print", "CLASS",
    "forward", "training", "state_dict", "loss", "NamedTuple", "from_training_checkpoint",
]  # fmt: skip

CASES = [(slot, name) for slot in BENIGN for name in [*LEXER, *IDENTIFIER, *SYNTAX, *ACCEPTED]]
CASES += [key for key in CLASHES if key not in CASES]


def _position(slot: str) -> tuple[int, int]:
    """Line and column of the slot's first use in the template (the declaration)."""
    before = TEMPLATE[: TEMPLATE.index("{" + slot + "}")].replace("{{", "{").replace("}}", "}")
    for other, value in BENIGN.items():
        before = before.replace("{" + other + "}", value)
    return before.count("\n") + 1, len(before) - before.rfind("\n")


def expected_error(slot: str, name: str, file: str) -> str | None:
    """The first line of the error the case must give, or None if it must compile."""
    line, column = _position(slot)
    role = ROLES[slot]
    if (slot, name) in CLASHES:
        where, message = CLASHES[slot, name]
        return f"{file}:{where}: error: {message.format(f=file)}"
    if name in LEXER:
        message, offset = LEXER[name]
        return f"{file}:{line}:{column + offset}: error: {message}"
    if slot in SYNTAX.get(name, {}):
        where, message = SYNTAX[name][slot].split(": ", 1)
        return f"{file}:{where}: error: {message}"
    problem = IDENTIFIER.get(name) or ROLE_ONLY.get((role, name))
    if problem:
        return f"{file}:{line}:{column}: error: {role} name '{name}' {problem}"
    return None


def _spec(tmp_path: Path, slot: str, name: str) -> Path:
    path = tmp_path / "hostile.net"
    path.write_text(TEMPLATE.format(**{**BENIGN, slot: name}), encoding="utf-8")
    return path


def _identifiers(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        for attr in ("id", "attr", "name", "arg", "module"):
            value = getattr(node, attr, None)
            if isinstance(value, str):
                names.add(value)
        if isinstance(node, ast.alias):
            names.add(node.name)
            names.add(node.asname or node.name)
    return names


def _strings(tree: ast.AST) -> set[str]:
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))
        and ast.get_docstring(n) is not None
    }
    return {
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    }


def _imports(tree: ast.Module) -> list[str]:
    return [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


@pytest.fixture(scope="module")
def benign(tmp_path_factory):
    path = _spec(tmp_path_factory.mktemp("benign"), "N", "Net")
    net = compiler.load(path)
    trees = {deploy: ast.parse(emit(net, deploy=deploy)) for deploy in (False, True)}
    trees["optimised"] = ast.parse(emit(passes.optimise(net), deploy=True))
    return trees


def _derived(name: str) -> set[str]:
    """Names netc may make from a spec name: a renamed duplicate, the outputs class."""
    return {name, f"{name}Outputs", *(f"{name}_{i}" for i in range(1, 4))}


@pytest.mark.parametrize("slot,name", CASES, ids=[f"{s}-{n!r}" for s, n in CASES])
def test_hostile_name(tmp_path, benign, slot, name):
    path = _spec(tmp_path, slot, name)
    expected = expected_error(slot, name, str(path))
    if expected is not None:
        with pytest.raises(SpecError) as info:
            emit(compiler.load(path))
        rendered = info.value.render()
        assert rendered.splitlines()[0] == expected
        assert re.search(r"^ +\| +\^+$", rendered, re.MULTILINE), rendered  # the caret line
        return
    net = compiler.load(path)
    for deploy in (False, True):
        text = emit(net, deploy=deploy)
        tree = ast.parse(text)
        base = benign[deploy]
        extra = _identifiers(tree) - _identifiers(base)
        assert extra <= _derived(name), extra
        assert _strings(tree) - _strings(base) <= {name}
        assert _imports(tree) == _imports(base)
        assert not any(
            isinstance(n, (ast.Global, ast.Nonlocal, ast.Lambda)) for n in ast.walk(tree)
        )
    # The optimised deploy build also names the fused convolution after its branches
    # (left_other), and holds module paths as strings in its loader's tables.
    tree = ast.parse(emit(passes.optimise(net), deploy=True))
    base = benign["optimised"]
    fused = {f"{name}_other", f"{name}_other_1"}
    assert _identifiers(tree) - _identifiers(base) <= _derived(name) | fused
    parts = {p for s in _strings(base) for p in s.split(".")} | {name} | fused
    assert all(set(s.split(".")) <= parts for s in _strings(tree) - _strings(base))
    assert _imports(tree) == _imports(base)
    _runs_like_the_runtime(tmp_path, net, emit(net), slot, name)


def _runs_like_the_runtime(tmp_path: Path, net, text: str, slot: str, name: str) -> None:
    path = tmp_path / "hostile_generated.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"hostile_{slot}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    runtime = build_module(net)
    model = getattr(module, net.name)()
    model.load_state_dict(runtime.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    torch.manual_seed(0)
    expected = runtime.train()(x)
    torch.manual_seed(0)
    got = model.train()(x)
    assert type(got)._fields == type(expected)._fields
    for a, b in zip(got, expected):
        assert torch.equal(a, b)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), runtime.eval()(x))


# -- text that is not a name --------------------------------------------------------------------

HOSTILE_DOC = (
    '"""; import os; os.system("echo pwned"); """',
    'ends with a quote"',
    "a backslash \\ and \\n and \\x00",
    "{{ jinja }} {% if true %}x{% endif %} {# c #}",
    "form feed \x0c vertical tab \x0b next line \x85 line separator \u2028 here",
    "''' triple single quotes '''",
    "a NUL \x00 and a bell \x07",
)


def test_doc_comments_land_in_docstrings_only(tmp_path):
    lines = "".join(f"# {text}\n" for text in HOSTILE_DOC)
    path = tmp_path / "docs.net"
    path.write_text(
        lines + "\n" + lines + "block Unit() {\n    c = conv(4, 1)\n}\n\n"
        "network Net() {\n    input 3x8x8\n    u = Unit()\n}\n",
        encoding="utf-8",
    )
    net = compiler.load(path)
    text = emit(net)
    tree = ast.parse(text)
    module_doc = ast.get_docstring(tree, clean=False)
    unit = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Unit")
    # What the spec wrote, character for character (the lexer strips each comment line).
    written = "\n".join(t.strip() for t in HOSTILE_DOC)
    assert module_doc.startswith(written + "\n\n")
    assert ast.get_docstring(unit).startswith(written)  # ruff indents the lines: clean=True
    assert _imports(tree) == ["import torch", "from torch import nn"]
    assert not [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == "os.system"
    ]
    assert "\x0c" not in text and "\x85" not in text and "\u2028" not in text  # escaped


def test_string_values_stay_string_literals(tmp_path):
    value = "x'); import os; os.system('echo pwned'); ('"
    path = tmp_path / "strings.net"
    path.write_text(
        f'network Net(tag: str = "{value}", other: str = "\u0430\u2028") {{\n'
        "    input 3x8x8\n    c = conv(4, 1)\n}\n",
        encoding="utf-8",
    )
    text = emit(compiler.load(path))
    tree = ast.parse(text)
    init = next(
        f for n in tree.body if isinstance(n, ast.ClassDef)
        for f in n.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"
    )  # fmt: skip
    defaults = [ast.literal_eval(d) for d in init.args.kw_defaults]
    assert defaults == [value, "\u0430\u2028"]
    assert _imports(tree) == ["import torch", "from torch import nn"]


@pytest.mark.parametrize(
    "file_name", ['evil"\nimport os\n.net', "back\\slash.net", "t\u2028ab\r.net"]
)
def test_the_spec_path_lands_in_a_comment_only(tmp_path, file_name):
    path = tmp_path / file_name
    path.write_text("network Net() {\n    input 3x8x8\n    c = conv(4, 1)\n}\n", encoding="utf-8")
    text = emit(compiler.load(path))
    tree = ast.parse(text)
    shown = "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode() for c in str(path)
    )
    assert text.split("\n", 1)[0] == f"# @generated by netc from {shown} — do not edit"
    assert _imports(tree) == ["import torch", "from torch import nn"]
    assert text.count("\n") == len(text.splitlines())  # no stray line breaks anywhere


def test_numbers_that_python_cannot_write_are_refused(tmp_path):
    path = tmp_path / "big.net"
    path.write_text(
        "network Net() {\n    input 3x8x8\n    c = conv(4, 1) -> batchnorm(eps=1e999)\n}\n"
    )
    with pytest.raises(SpecError) as info:
        compiler.load(path)
    assert info.value.render().splitlines()[0] == (
        f"{path}:3:37: error: number out of range: it overflows a 64-bit float"
    )


def test_the_backend_refuses_expressions_that_are_not_plain_arithmetic():
    """The IR can be built by hand (or from JSON): expressions are typed trees, which
    validation enforces, and the backend checks every name one reads before writing it."""
    net = compiler.load(Path(__file__).resolve().parent.parent / "specs" / "googlenet_d2l.net")
    fc = net.body[-1]

    def with_out_features(value) -> ir.Network:
        hacked = fc.model_copy(update={"exprs": {**fc.exprs, "out_features": value}})
        return net.model_copy(update={"body": (*net.body[:-1], hacked)})

    # Source text is no expression: JSON with one is refused at validation.
    data = json.loads(net.model_dump_json())
    data["body"][-1]["exprs"]["out_features"] = "__import__('os')"
    with pytest.raises(pydantic.ValidationError, match="out_features"):
        ir.Network.model_validate(data)
    with pytest.raises(pydantic.ValidationError, match="should match pattern"):
        ir.Network.model_validate_json(
            with_out_features(
                ex.Ref.model_construct(name="num_classes.__class__")
            ).model_dump_json()
        )
    # Built by hand, past validation: the backend refuses it.
    hostile = [
        "__import__('os')",  # text
        ex.Ref.model_construct(name="num_classes.__class__"),  # not a name in scope
        ex.ref("unknown_name"),
        ex.Binary(op="+", left=ex.ref("num_classes"), right=ex.ref("os")),
    ]
    for bad in hostile:
        with pytest.raises(SpecError, match="the source backend"):
            emit(with_out_features(bad))
    renamed = net.model_copy(
        update={"body": (*net.body[:-1], fc.model_copy(update={"name": "fc; import os"}))}
    )
    with pytest.raises(SpecError, match="layer name 'fc; import os' must start with a letter"):
        emit(renamed)
