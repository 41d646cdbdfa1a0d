"""The language beyond concat: element-wise joins (add, scaled add, mul), identity, the
activations, groups of statements as branches, pair parameters, repeats and conditional
layers with weights, each through every backend.

Every case is a tiny spec: the runtime module, the generated module (same state_dict,
identical outputs) and the deploy build (within 1e-5) are compared on a 2 x C x 6 x 6
input; the ONNX export of these constructs is covered by the shipped specs
(tests/test_onnx.py).
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import compiler
from compiler import expr as ex
from compiler import ir, passes
from compiler.backends import graph, source, summary
from compiler.backends.runtime import build_module
from dsl import SpecError
from dsl.fmt import format_text
from dsl.parser import _parser

RESIDUAL = """
block Residual(width: int, kernel: pair = 3, padding: pair = 1, scale: float = 1.0) {
    add {
        identity
        scale * {
            concat {
                branch0 = conv(width, 1) -> batchnorm -> relu
                {
                    branch1_0 = conv(width, 1)
                    concat {
                        branch1_1a = conv(width, kernel, padding=padding)
                        branch1_1b = conv(width, (3, 1), padding=(1, 0))
                    }
                }
                avgpool(3, stride=1, padding=1, count_include_pad=false)
            }
            conv2d = conv(in_channels, 1)
        }
    }
    act = relu
}

network Net(use_bn: bool = true, n: int = 2) {
    input 4x6x6
    stem = conv(8, 3, padding=1)
    bn = batchnorm if use_bn
    relu(inplace=true)
    repeat = [Residual(2, (1, 3), (0, 1), 0.17)] * n
    mul {
        identity
        se = global_avgpool -> conv(8, 1) -> hardswish -> conv(8, 1) -> sigmoid
    }
    acts = relu6 -> leaky_relu(0.2) -> tanh -> gelu -> silu
    global_avgpool
    flatten
    fc = linear(3)
}
"""


def write(tmp_path: Path, text: str, name: str = "net.net") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def perturbed(module: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * 0.5)
    return module


def generated_class(net: ir.Network, tmp_path: Path, deploy: bool = False) -> type:
    path = tmp_path / f"gen_{net.name}_{len(list(tmp_path.iterdir()))}.py"
    path.write_text(source.emit(net, deploy=deploy), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, net.name)


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("language"), RESIDUAL)


# -- the grammar ------------------------------------------------------------------------------


def test_grammar_builds_strict_with_the_new_constructs():
    tree = _parser(strict=True).parse(RESIDUAL)
    kinds = {t.data for t in tree.iter_subtrees()}
    assert {"join_stmt", "group", "repeat", "branch"} <= kinds


def test_keys_follow_the_spec_names(spec):
    with torch.device("meta"):
        module = compiler.build(spec)
    keys = set(module.state_dict())
    # a group's layers are attributes of the enclosing block, not of a Sequential
    assert {"repeat.0.branch1_0.weight", "repeat.1.branch1_1b.weight"} <= keys
    assert "repeat.1.branch0.1.running_var" in keys and "repeat.1.conv2d.bias" in keys
    assert "bn.weight" in keys and "se.1.weight" in keys and "se.3.bias" in keys
    assert not any(".0.0." in k for k in keys)  # the repeat numbers like nn.Sequential
    off = compiler.load(spec, use_bn=False)
    with torch.device("meta"):
        keys_off = set(build_module(off).state_dict())
    assert keys - keys_off == {
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
    }


def test_exact_counts_and_shapes(spec):
    net = compiler.load(spec)
    # branch0 conv + bn, branch1_0, branch1_1a and 1b (1x3, 3x1), conv2d from 2 + 4 + 8 channels
    block = (8 * 2 + 2 + 4) + (8 * 2 + 2) + 2 * (2 * 2 * 3 + 2) + (14 * 8 + 8)
    assert block == 188
    stem = 4 * 8 * 9 + 8
    se = 2 * (8 * 8 + 8)
    assert ir.total_params(net.body) == stem + 16 + 2 * block + se + 8 * 3 + 3
    off = compiler.load(spec, use_bn=False, n=3)
    assert ir.total_params(off.body) == stem + 3 * block + se + 8 * 3 + 3
    with torch.device("meta"):
        assert sum(p.numel() for p in compiler.build(off).parameters()) == ir.total_params(off.body)
    repeat = next(n for n in net.body if n.name == "repeat")
    assert [item.name for item in repeat.items] == ["0", "1"]
    assert repeat.items[0].out_shape == (8, 6, 6)
    join = repeat.items[0].body[0]
    assert join.join == "add" and join.scales == (1.0, 0.17) and join.scale_exprs == (None, ex.ref("scale"))


def test_runtime_generated_and_deploy_agree(spec, tmp_path):
    for use_bn in (True, False):
        net = compiler.load(spec, use_bn=use_bn)
        ours = perturbed(build_module(net))
        theirs = generated_class(net, tmp_path)(use_bn=use_bn)
        theirs.load_state_dict(ours.state_dict(), strict=True)
        x = torch.randn(2, 4, 6, 6)
        for mode in (False, True):
            ours.train(mode), theirs.train(mode)
            with torch.no_grad():
                a, b = ours(x), theirs(x)
            assert torch.equal(a, b)
            assert not torch.equal(a[0], a[1])
        opt = passes.optimise(net)
        passes.verify(opt)
        deploy = build_module(opt, deploy=True).eval()
        deploy.load_training_checkpoint(ours.state_dict())
        generated, dropped = generated_class(opt, tmp_path, deploy=True).from_training_checkpoint(
            ours.state_dict()
        )
        assert dropped == []
        generated.eval()
        ours.eval()
        with torch.no_grad():
            expected = ours(x)
            torch.testing.assert_close(deploy(x), expected, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(generated(x), expected, rtol=1e-5, atol=1e-5)
        folded = [layer for _, layer in ir.layers(opt.body) if layer.op.op == "fused_conv"]
        assert any(s.bn == "bn" for layer in folded for s in layer.op.sources) == use_bn


def test_scaled_residual_is_x_plus_scale_times_branch(spec):
    net = compiler.load(spec, n=1)
    module = perturbed(build_module(net)).eval()
    block = module.repeat[0]
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        branch = block.conv2d(
            torch.cat(
                [
                    block.branch0(x),
                    torch.cat(
                        [
                            block.branch1_1a(block.branch1_0(x)),
                            block.branch1_1b(block.branch1_0(x)),
                        ],
                        1,
                    ),
                    nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
                ],
                1,
            )
        )
        assert torch.equal(block(x), torch.relu(x + branch * 0.17))


def test_generated_code_reads_like_the_spec(spec):
    text = source.emit(compiler.load(spec))
    assert "x = x + self.scale * out" in text
    assert "branch1 = torch.cat([branch1_1a, branch1_1b], 1)" in text
    assert text.count("Residual(8, 2, kernel=(1, 3), padding=(0, 1), scale=0.17)") == 2
    assert "self.bn = nn.BatchNorm2d(8) if use_bn else None" in text
    assert "x = F.relu(x, inplace=True)" in text
    assert "return x * se" in text or "x = x * se" in text
    assert "kernel: int | tuple[int, int] = (3, 3)" in text
    for activation in (
        "nn.ReLU6()",
        "nn.LeakyReLU(negative_slope=0.2)",
        "nn.Tanh()",
        "nn.GELU()",
        "nn.SiLU()",
        "nn.Hardswish()",
        "nn.Sigmoid()",
    ):
        assert activation in text


def test_summary_and_graph_show_the_joins(spec):
    net = compiler.load(spec)
    rows = summary.rows(net.body)
    assert [r.kind for r in rows if r.name.endswith("<add>")] == ["add x0.17", "add x0.17"]
    assert [r.kind for r in rows if r.name.endswith("<mul>")] == ["mul"]
    dot = graph.to_dot(net, max_depth=3)
    assert dot.count('headlabel="x0.17"') == 2
    assert "mul [label=mul shape=invtrapezium]" in dot
    assert '"repeat.0/add" [label=add shape=invtrapezium]' in dot


# -- errors, positioned ----------------------------------------------------------------------

ERRORS = [
    (
        "add { a = conv(4, 1)\n b = conv(8, 1) }",
        "add inputs disagree: 4x6x6 ('a') vs 8x6x6 ('b')",
        (4, 6),
    ),
    (
        "mul { identity\n g = global_avgpool -> flatten }",
        "mul inputs disagree: 4x6x6 ('identity') vs 4 ('g')",
        (4, 6),
    ),
    (
        "concat { identity\n 0.5 * a = conv(4, 1) }",
        "only the branches of an add can be scaled, not those of a concat",
        (4, 6),
    ),
    (
        "add { relu(inplace=true)\n identity }",
        "in-place relu would overwrite the input of every add branch",
        (3, 11),
    ),
    ("r = [conv(4, 1)] * 0", "a repeat count must be at least 1, got 0", (3, 24)),
    ('g = gelu(approximate="tanh")', "'gelu' has no argument 'approximate'", (3, 14)),
    ("add { a = conv(4, 1) if true\n identity }", "an add branch cannot be conditional", (3, 29)),
]


@pytest.mark.parametrize("body,message,where", ERRORS, ids=[m for _, m, _ in ERRORS])
def test_errors_point_at_the_spec(tmp_path, body, message, where):
    lines = "".join(f"    {line}\n" for line in body.split("\n"))
    path = write(tmp_path, "network N() {\n    input 4x6x6\n" + lines + "}\n")
    with pytest.raises(SpecError) as info:
        compiler.load(path)
    assert info.value.message == message
    assert (info.value.span.line, info.value.span.column) == where


def test_fmt_lays_out_the_new_constructs():
    messy = (
        "network N(s: float = 0.5) {\n  input 4x6x6\n"
        "  add {identity\n 0.5*{ a = conv(4,1)\n} s * b = conv(4, 1) }\n"
        "  r = [conv(4,1)->relu]*2\n  mul { identity\n g = global_avgpool -> sigmoid }\n}\n"
    )
    formatted = format_text(messy)
    assert formatted == (
        "network N(s: float = 0.5) {\n"
        "    input 4x6x6\n"
        "    add {\n"
        "        identity\n"
        "        0.5 * {\n"
        "            a = conv(4, 1)\n"
        "        }\n"
        "        s * b = conv(4, 1)\n"
        "    }\n"
        "    r = [conv(4, 1) -> relu] * 2\n"
        "    mul {\n"
        "        identity\n"
        "        g = global_avgpool -> sigmoid\n"
        "    }\n"
        "}\n"
    )
    assert format_text(formatted) == formatted
    assert format_text(RESIDUAL) == format_text(format_text(RESIDUAL))
