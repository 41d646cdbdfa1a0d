"""The op registry (``compiler.ops``): every op is complete, and everything that
describes an op (the language's built-ins, the IR's validation, shape rules,
descriptions, the runtime's modules and calls, the source backend's text, the
ONNX lowering) comes from its one definition. Each op's ``example`` runs through all of them."""

from __future__ import annotations

import json
import typing

import pydantic
import pytest
import torch
from torch import nn

import compiler
from compiler import builtins, ir, ops, shapes
from compiler.backends import onnx_export, runtime
from compiler.backends.source import _args
from compiler.expr import literal

TAGS = list(ops.OPS)


def example(tag: str) -> tuple[ops.OpModel, ir.Shape]:
    fields, shape = ops.OPS[tag].example
    return ops.OPS[tag](**fields), shape


def layer(op: ops.OpModel, shape: ir.Shape) -> ir.Layer:
    out, params, macs = shapes.infer(op, shape)
    span = ir.SourceSpan(file="x.net", line=1, column=1, end_line=1, end_column=2)
    return ir.Layer(
        name="x", op=op, params=params, macs=macs, in_shape=shape, out_shape=out, span=span
    )


# -- every op has every part ----------------------------------------------------------------


@pytest.mark.parametrize("tag", TAGS)
def test_every_op_is_complete(tag):
    cls = ops.OPS[tag]
    assert cls.tag() == tag and cls.__doc__
    args = cls.args()  # raises unless every field has one Arg
    assert list(args) == [f for f in cls.model_fields if f != "op"]
    if cls.written:
        assert {a.kind for a in args.values()} <= set(ops.KINDS)
    # its shape rule is its own, not the base's, unless the op keeps the shape
    assert cls.keeps_shape or cls.infer is not ops.OpModel.infer
    if cls.stateful:
        for method in ("params", "macs"):
            assert getattr(cls, method) is not getattr(ops.OpModel, method), method
    op, shape = example(tag)
    out, params, _ = shapes.infer(op, shape)
    assert isinstance(op.describe(), str) and op.describe().split()[0] in (tag, "conv")
    assert (params > 0) == cls.stateful
    assert cls.keeps_shape <= (out == shape)
    # the backends know it: a torch.nn module and, if weightless, a call
    spec = cls.torch
    assert spec.helper or isinstance(getattr(nn, spec.module), type)
    assert tag in runtime.MODULES
    assert tag in onnx_export.LOWERINGS  # its example runs in onnxruntime: tests/test_onnx.py
    assert (spec.function is not None) == (tag in runtime.FUNCTIONS)
    if not cls.stateful and tag != "identity":  # unnamed, identity is its input: no call
        assert spec.function is not None, "a weightless op can run unnamed"
    names = spec.fields if spec.fields is not None else tuple(args)
    assert set(names) <= set(args) and set(spec.always) | set(spec.kernel_default) <= set(names)


def test_the_registry_is_the_ir_s_op_union():
    union = typing.get_args(typing.get_args(ir.Op)[0])
    assert list(union) == list(ops.OPS.values())
    assert ir.OP_KINDS == tuple(ops.OPS)
    assert ir.STATEFUL_OPS == {"conv", "batchnorm", "linear", "fused_conv"}
    assert ir.Conv is ops.Conv and ir.FusedConv is ops.FusedConv


# -- the backends build each op as its definition says -------------------------------------------


@pytest.mark.parametrize("tag", TAGS)
def test_each_example_runs_in_the_runtime_as_inferred(tag):
    op, shape = example(tag)
    out, params, _ = shapes.infer(op, shape)
    torch.manual_seed(0)
    x = torch.randn(2, *shape)
    module = runtime.MODULES[tag](op).eval()
    with torch.no_grad():
        y = module(x)
    assert tuple(y.shape[1:]) == out
    assert runtime.count_parameters(module) == params
    if tag in runtime.FUNCTIONS:
        call = runtime.FUNCTIONS[tag](op)
        torch.testing.assert_close(call(x, False), y, rtol=0, atol=0)


@pytest.mark.parametrize("tag", [t for t in TAGS if not ops.OPS[t].torch.helper])
def test_each_example_s_source_text_builds_the_same_module(tag):
    """What the source backend writes for a named layer, evaluated, is the runtime's module."""
    op, shape = example(tag)
    text = f"nn.{op.torch.module}({', '.join(_args(layer(op, shape), str))})"
    written = eval(text, {"nn": nn})
    built = runtime.MODULES[tag](op)
    assert isinstance(built, type(written)), text
    written.load_state_dict(built.state_dict(), strict=True)  # the same parameters
    x = torch.randn(2, *shape)
    # a fused convolution's ReLU is applied by the generated call, around the module
    after = torch.relu if getattr(op, "relu", False) else (lambda y: y)
    with torch.no_grad():
        torch.testing.assert_close(after(written.eval()(x)), built.eval()(x), rtol=0, atol=0)


def test_source_leaves_out_pytorch_s_defaults():
    conv = ops.Conv(in_channels=3, out_channels=8, kernel_size=(3, 3), padding=(1, 1))
    assert _args(layer(conv, (3, 8, 8)), str) == ["3", "8", "3", "padding=1"]
    pool = ops.MaxPool(kernel_size=(3, 3), stride=(3, 3))  # PyTorch's stride: the kernel
    assert _args(layer(pool, (3, 9, 9)), str) == ["3"]
    soft = ops.Softmax()
    assert _args(layer(soft, (10,)), str) == ["dim=1"]  # always written
    drop = ops.Dropout()
    assert _args(layer(drop, (10,)), str) == ["0.5"]


# -- the language's built-ins come from the registry ----------------------------------------------


def test_builtins_are_the_written_ops_and_their_aliases():
    written = [t for t, cls in ops.OPS.items() if cls.written]
    assert set(builtins.BUILTINS) == {*written, *ops.ALIASES}
    for name, spec in builtins.BUILTINS.items():
        fields = set(spec.op.model_fields) - {"op"}
        declared = {a.name for a in spec.args} | set(spec.inferred) | set(spec.fixed)
        assert declared == fields, name
    conv = builtins.BUILTINS["conv"]
    assert [(a.name, a.kind, a.default) for a in conv.args] == [
        ("out_channels", "int", builtins.REQUIRED),
        ("kernel_size", "pair", builtins.REQUIRED),
        ("stride", "pair", 1),
        ("padding", "padding", 0),
        ("dilation", "pair", 1),
        ("groups", "int", 1),
        ("bias", "bool", True),
    ]
    assert (conv.inferred, conv.produces) == (("in_channels",), "out_channels")
    assert builtins.BUILTINS["maxpool"].args[1].default is builtins.SAME_AS_KERNEL
    assert builtins.BUILTINS["global_avgpool"].fixed == {"output_size": (1, 1)}


# -- the IR validates what the definitions say ----------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: ir.Conv(in_channels=3, out_channels=8, kernel_size=(3, 3), stride=(0, 0)),
            "stride must be at least 1, got (0,0)",
        ),
        (
            lambda: ir.Conv(in_channels=3, out_channels=0, kernel_size=(3, 3)),
            "out_channels must be at least 1, got 0",
        ),
        (
            lambda: ir.Conv(in_channels=3, out_channels=8, kernel_size=(3, 3), padding=(-1, 0)),
            "padding must not be negative, got (-1,0)",
        ),
        (lambda: ir.Dropout(p=1.5), "dropout probability must be between 0 and 1, got 1.5"),
        (lambda: ir.BatchNorm(num_features=4, eps=-1.0), "eps must not be negative, got -1.0"),
        (lambda: ir.MaxPool(kernel_size=(0, 2), stride=(1, 1)), "kernel_size must be at least 1"),
        (lambda: ir.AdaptiveAvgPool(output_size=(0, 1)), "output_size must be at least 1"),
        (lambda: ir.Linear(in_features=0, out_features=2), "in_features must be at least 1"),
    ],
)
def test_the_ir_refuses_out_of_range_fields(make, message):
    with pytest.raises(
        pydantic.ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        make()


def test_a_network_from_json_is_validated_too():
    net = compiler.load("specs/googlenet_d2l.net")
    data = json.loads(net.model_dump_json())
    first = data["body"][0]
    layer_data = first if first["kind"] == "layer" else first["items"][0]
    layer_data["op"]["stride"] = [0, 1]
    with pytest.raises(pydantic.ValidationError, match=r"stride must be at least 1, got \(0,1\)"):
        ir.Network.model_validate(data)


def test_literal_defaults_print_as_python():
    assert [literal(v) for v in (True, 1e-05, (1, 1), "same")] == [
        "True",
        "1e-05",
        "(1, 1)",
        "'same'",
    ]
