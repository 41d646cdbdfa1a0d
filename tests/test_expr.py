"""Expressions in the IR (``compiler.expr``): typed trees, kept as written,
printed with the fewest parentheses that keep their structure, evaluated like
Python, validated, and checked against the values they stand for."""

from __future__ import annotations

import ast
import json

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import compiler
from compiler import expr as ex
from compiler import ir, passes
from compiler.backends.source import emit
from compiler.passes.rewrite import verify_exprs

SETTINGS = settings(deadline=None, max_examples=300, derandomize=True)


def from_python(text: str) -> ex.Expr:
    """Python source back to a tree (the test's own reader, to prove printing keeps structure)."""

    def read(node: ast.expr) -> ex.Expr:
        if isinstance(node, ast.Constant):
            return ex.Const(value=node.value)
        if isinstance(node, ast.Name):
            return ex.Ref(name=node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            if isinstance(node.operand, ast.Constant) and not isinstance(node.operand.value, bool):
                return ex.Const(value=-node.operand.value)  # Python reads -1 as -(1)
            return ex.Unary(op="-", operand=read(node.operand))
        if isinstance(node, ast.BinOp):
            ops = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//"}
            return ex.Binary(op=ops[type(node.op)], left=read(node.left), right=read(node.right))
        if isinstance(node, (ast.Tuple, ast.List)):
            return ex.Tuple(items=tuple(read(item) for item in node.elts))
        raise AssertionError(f"unexpected {ast.dump(node)}")

    return read(ast.parse(text, mode="eval").body)


ENV = {"a": 3, "b": -2, "c": 7}
leaves = st.one_of(
    st.integers(-5, 9).map(lambda v: ex.Const(value=v)),
    st.sampled_from([0.5, 0.25, 1.5]).map(lambda v: ex.Const(value=v)),
    st.sampled_from(sorted(ENV)).map(ex.ref),
)
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(lambda o: ex.Unary(op="-", operand=o), inner),
        st.builds(
            lambda op, left, right: ex.Binary(op=op, left=left, right=right),
            st.sampled_from(["+", "-", "*"]),
            inner,
            inner,
        ),
    ),
    max_leaves=8,
)


def normal(tree: ex.Expr) -> ex.Expr:
    """``-1`` written as the unary minus of 1 reads back as the constant -1: the same number."""
    if isinstance(tree, ex.Unary):
        operand = normal(tree.operand)
        if isinstance(operand, ex.Const) and operand.value >= 0:
            return ex.Const(value=-operand.value)
        return ex.Unary(op="-", operand=operand)
    if isinstance(tree, ex.Binary):
        return ex.Binary(op=tree.op, left=normal(tree.left), right=normal(tree.right))
    return tree


@SETTINGS
@given(trees)
def test_printing_keeps_structure_and_value(tree):
    text = ex.to_python(tree)
    assert normal(from_python(text)) == normal(tree), text
    assert eval(text, {}, dict(ENV)) == ex.evaluate(tree, ENV)


@pytest.mark.parametrize(
    "text",
    [
        "(0.485 - 0.5) / 0.5",
        "a - (b - c)",
        "a - b - c",
        "(a + b) * c",
        "a * (b // c)",
        "a // b * c",
        "-(a + 1)",
        "a * -1",
        "-a * b",
    ],
)
def test_a_spec_expression_is_printed_as_written(tmp_path, text):
    """Through the DSL, elaboration and the printer: the same text comes back."""
    spec = tmp_path / "e.net"
    spec.write_text(
        "network E(a: int = 3, b: int = 5, c: int = 2) {\n"
        "    input 1x4x4\n"
        f"    s = scale_shift(scale=(1.0,), shift=({text},))\n"
        "}\n"
    )
    net = compiler.load(spec)
    (item,) = net.body[0].exprs["shift"].items
    assert ex.to_python(item) == text
    assert net.body[0].op.shift == (float(ex.evaluate(item, net.values)),)


def test_the_generated_code_keeps_the_spec_s_arithmetic(tmp_path):
    spec = tmp_path / "n.net"
    spec.write_text(
        "network N(m: float = 0.5) {\n"
        "    input 2x4x4\n"
        "    scale_shift(scale=(0.229 / m, 1), shift=((0.485 - m) / m, -(0.25)))\n"
        "}\n"
    )
    text = emit(compiler.load(spec))
    assert "return scale_shift(x, [0.229 / self.m, 1], [(0.485 - self.m) / self.m, -0.25])" in text


def test_tuples_print_as_tuples_or_lists():
    pair = ex.Tuple(items=(ex.ref("a"), ex.Binary(op="+", left=ex.ref("b"), right=ex.const(1))))
    assert ex.to_python(pair) == "(a, b + 1)"
    assert ex.to_python(ex.Tuple(items=(ex.ref("a"),))) == "(a,)"
    assert ex.to_python(pair, lambda n: f"self.{n}", as_list=True) == "[self.a, self.b + 1]"
    assert ex.evaluate(pair, {"a": 1, "b": 2}) == (1, 3)


def test_derived_sizes_fold_written_ones_do_not(tmp_path):
    spec = tmp_path / "d.net"
    spec.write_text(
        "block B(n: int) {\n"
        "    concat {\n"
        "        p = conv(n * 2, 1)\n"
        "        q = conv(n + 1, 1)\n"
        "    }\n"
        "}\n"
        "network D() {\n"
        "    input 3x4x4\n"
        "    c = conv(4 * 2, 1)\n"
        "    b = B(2 + 1)\n"
        "}\n"
    )
    net = compiler.load(spec)
    conv, block = net.body
    assert ex.to_python(conv.exprs["out_channels"]) == "4 * 2"  # as written
    assert conv.channels_expr == ex.const(8)  # derived: folded
    assert ex.to_python(block.arg_exprs["n"]) == "2 + 1"
    assert block.in_channels_expr == ex.const(8)
    assert ex.to_python(block.body[0].channels_expr) == "n * 2 + n + 1"  # a sum, spliced
    assert block.channels_expr == ex.const(10)  # in the network's scope: a number


# -- the IR's expressions are validated and checked ----------------------------------------


def test_expressions_are_validated():
    with pytest.raises(pydantic.ValidationError, match="should match pattern"):
        ex.Ref(name="os.system")
    with pytest.raises(pydantic.ValidationError, match="Input should be '\\+', '-', '\\*'"):
        ex.Binary(op="**", left=ex.const(2), right=ex.const(3))
    with pytest.raises(pydantic.ValidationError, match="does not match any of the expected tags"):
        pydantic.TypeAdapter(ex.Expr).validate_python({"kind": "call", "name": "eval"})
    with pytest.raises(pydantic.ValidationError):
        ex.Const(value=[1, 2])
    tree = pydantic.TypeAdapter(ex.Expr).validate_json(
        '{"kind": "binary", "op": "+", "left": {"kind": "ref", "name": "a"},'
        ' "right": {"kind": "const", "value": 1}}'
    )
    assert ex.to_python(tree) == "a + 1"
    assert ex.Const.model_validate_json('{"value": true}').value is True  # not 1
    assert type(ex.Const.model_validate_json('{"value": 1.0}').value) is float


def test_guards_are_expressions_evaluated_against_the_values():
    root = compiler.load("specs/googlenet_torchvision.net")
    net = compiler.load("specs/googlenet_torchvision.net", transform_input=True)
    guard = net.body[0].guard
    assert guard == ex.ref("transform_input")
    assert (net.enabled(guard), root.enabled(guard)) == (True, False)
    again = ir.Network.model_validate_json(net.model_dump_json())
    assert again.body[0].guard == guard and again.enabled(again.body[0].guard)
    assert "guards" not in json.loads(net.model_dump_json())  # no table keyed by text


def test_verify_catches_an_expression_that_does_not_match_its_value():
    net = compiler.load("specs/googlenet_d2l.net")
    verify_exprs(net)
    verify_exprs(passes.optimise(net))
    fc = net.body[-1]
    wrong = fc.model_copy(
        update={
            "exprs": {
                **fc.exprs,
                "out_features": ex.Binary(op="+", left=ex.ref("num_classes"), right=ex.const(1)),
            }
        }
    )
    hacked = net.model_copy(update={"body": (*net.body[:-1], wrong)})
    with pytest.raises(ValueError, match=r"fc.out_features: num_classes \+ 1 is 11, not 10"):
        verify_exprs(hacked)
