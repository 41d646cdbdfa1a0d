"""The IR's contract: frozen, JSON round-trips, a pinned JSON Schema, one
table entry per op kind in every stage, and the layering DESIGN.md asks for.

The schema snapshot lives in ``tests/snapshots/ir_schema.json``; after a
deliberate change to the IR, refresh it with

    NETC_UPDATE_SNAPSHOTS=1 python3 -m pytest tests/test_ir.py
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest
from torch import nn

import compiler
from compiler import ir
from compiler.names import MODULE_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.net"))
SNAPSHOT = Path(__file__).parent / "snapshots" / "ir_schema.json"
OP_MODULES = [
    "ops/__init__",
    "ops/base",
    "ops/conv",
    "ops/elementwise",
    "ops/linear",
    "ops/norm",
    "ops/pool",
]


@pytest.fixture(scope="module")
def networks() -> list[ir.Network]:
    nets = [compiler.load(path) for path in SPECS]
    nets.append(compiler.load(ROOT / "specs/googlenet_torchvision.net", transform_input=True))
    return nets


# -- frozen, JSON --------------------------------------------------------------------


def test_ir_is_frozen(networks):
    net = networks[0]
    with pytest.raises(pydantic.ValidationError):
        net.name = "Other"
    node = net.body[0]
    with pytest.raises(pydantic.ValidationError):
        node.out_shape = (1, 1, 1)
    layer = next(layer for _, layer in ir.layers(net.body))
    with pytest.raises(pydantic.ValidationError):
        layer.op.out_channels = 1
    assert isinstance(net.body, tuple) and isinstance(net.input_shape, tuple)
    renamed = net.model_copy(update={"name": "Other"})
    assert (renamed.name, net.name) == ("Other", networks[0].name)


def test_ir_rejects_unknown_fields_and_ops():
    conv = {"op": "conv", "in_channels": 3, "out_channels": 8, "kernel_size": (3, 3)}
    assert ir.Conv.model_validate(conv).stride == (1, 1)
    with pytest.raises(pydantic.ValidationError):
        ir.Conv.model_validate({**conv, "kernel": 3})
    with pytest.raises(pydantic.ValidationError, match="does not match any of the expected tags"):
        pydantic.TypeAdapter(ir.Op).validate_python({"op": "conv3d"})


def test_json_round_trip(networks):
    for net in networks:
        text = net.model_dump_json()
        again = ir.Network.model_validate_json(text)
        assert again == net
        assert again.model_dump_json() == text
        json.loads(text)  # plain JSON


def test_schema_snapshot():
    schema = json.dumps(ir.Network.model_json_schema(), indent=2, sort_keys=True) + "\n"
    if os.environ.get("NETC_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(schema, encoding="utf-8")
    assert SNAPSHOT.exists(), "no snapshot yet: run with NETC_UPDATE_SNAPSHOTS=1"
    assert schema == SNAPSHOT.read_text(encoding="utf-8"), (
        "the IR's JSON Schema changed: if that is deliberate, "
        "refresh tests/snapshots/ir_schema.json with NETC_UPDATE_SNAPSHOTS=1"
    )


# -- one entry per op kind, everywhere: tests/test_ops.py ----------------------------------


# -- names ---------------------------------------------------------------------------------


def test_module_attributes_follow_torch():
    """Every public attribute of the installed torch's nn.Module is reserved. The list
    also keeps names an older torch lacks (2.4 has no set_submodule): generated code
    may run under a newer torch than the one that compiled it."""
    public = {name for name in dir(nn.Module) if not name.startswith("_")}
    assert public | {"training"} <= MODULE_ATTRIBUTES


# -- the grammar -------------------------------------------------------------------------------


def test_grammar_is_conflict_free():
    """strict=True: a shift/reduce conflict or colliding terminals raise here."""
    from dsl.parser import _parser

    parser = _parser(strict=True)
    assert parser.options.parser == "lalr"
    tree = parser.parse((ROOT / "specs/googlenet_v1.net").read_text(encoding="utf-8"))
    assert tree.data == "start"


# -- layering ------------------------------------------------------------------------------------


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_dsl_never_imports_compiler():
    for path in (ROOT / "dsl").glob("*.py"):
        assert "compiler" not in imported_modules(path), path.name


@pytest.mark.parametrize(
    "name",
    ["ir", "expr", "shapes", "builtins", "symbolic", "elaborate", "names", *OP_MODULES],
)
def test_middle_end_imports_no_torch_lark_or_jinja(name):
    assert not {"torch", "lark", "jinja2"} & imported_modules(ROOT / "compiler" / f"{name}.py")


def test_every_op_module_is_checked_above():
    assert {p.stem for p in (ROOT / "compiler" / "ops").glob("*.py")} == {
        m.split("/")[1] for m in OP_MODULES
    }


def test_ir_module_alone_pulls_in_nothing_heavy():
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('netc_ir', 'compiler/ir.py')\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['netc_ir'] = module\n"
        "spec.loader.exec_module(module)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "             {'torch', 'lark', 'jinja2', 'dsl', 'compiler'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, check=False, text=True
    )
    assert result.returncode == 0, result.stderr
    # the package (which imports the IR), the IR's expressions and ops, nothing else
    loaded = result.stdout.strip().strip("[]").replace("'", "").split(", ")
    assert {m for m in loaded if not m.startswith("compiler.ops")} == {
        "compiler",
        "compiler.expr",
        "compiler.ir",
    }
