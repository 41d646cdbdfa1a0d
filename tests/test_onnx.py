"""ONNX export: the optimised deploy graph in eval mode, written from the IR, a dynamic
batch axis, checked, and equal to PyTorch (the plain deploy module, from the same
training checkpoint).

Every shipped spec is exported at a small input with perturbed weights (see
test_source.py: the specs' own inits can make the logits input-independent),
checked with onnx.checker (full_check), and run with onnxruntime at batch 1
and batch 3, which the graph only accepts if its batch axis is dynamic. Each
op kind's lowering runs its example (``compiler.ops``) against the runtime's
module and call; pools, convolutions, joins, LRN and forks are checked in the
cases where ONNX and PyTorch differ in what they mean.

Exporting is no longer the slow part (a second or two per spec, most of it
folding and copying weights), so it runs in-process, as it goes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import compiler
from compiler import cli, ir, ops, passes, shapes
from compiler.backends import onnx_export
from compiler.backends.runtime import build_module

try:
    from test_source import SPECS, assert_depends_on_input, perturb
except ImportError:  # tests/ collected as a package
    from tests.test_source import SPECS, assert_depends_on_input, perturb

ROOT = Path(__file__).resolve().parent.parent
SEED = 11


def convolutions(model: onnx.ModelProto | ir.Network) -> int:
    """Conv nodes of an ONNX graph, or convolution layers of a network."""
    if isinstance(model, ir.Network):
        return sum(layer.op.op in ("conv", "fused_conv") for _, layer in ir.layers(model.body))
    return sum(node.op_type == "Conv" for node in model.graph.node)


def op_types(model: onnx.ModelProto) -> list[str]:
    return [node.op_type for node in model.graph.node]


def ort_session(path: Path | bytes) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # as torch in the tests (conftest.py): no spinning threads
    options.inter_op_num_threads = 1
    model = str(path) if isinstance(path, Path) else path
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def plain_deploy_module(stem: str) -> tuple[ir.Network, torch.nn.Module]:
    """The spec at its small test input, and its plain deploy module with perturbed weights."""
    net = compiler.load(ROOT / "specs" / f"{stem}.net", SPECS[stem])
    module = build_module(net, deploy=True).eval()
    perturb(module, SEED)
    return net, module


@pytest.fixture(scope="module", params=sorted(SPECS))
def exported(request, tmp_path_factory):
    """Per spec, once: the plain deploy module (perturbed), the export of the optimised
    deploy graph from its weights, and the written file loaded back, as a model and as an
    onnxruntime session."""
    stem = request.param
    net, module = plain_deploy_module(stem)
    path = tmp_path_factory.mktemp("onnx") / f"{stem}.onnx"
    info = onnx_export.export(net, path, state_dict=module.state_dict())
    return stem, net, module, path, info, onnx.load(path), ort_session(path)


def test_the_model_passes_the_full_checker(exported):
    _, net, _, path, info, model, _ = exported
    assert info.path == path and info.opset == onnx_export.OPSET == 18
    assert info.bytes == path.stat().st_size
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain: o.version for o in model.opset_import}[""] == 18
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta == {"netc.network": net.name, "netc.spec": net.source}
    # The graph optimised for the ONNX target: a convolution per deploy convolution, no
    # sibling fusion (compiler.passes.TARGETS), so nothing split; batch norm folded.
    onnx_build = passes.optimise(net, target="onnx")
    assert "fuse_siblings" not in onnx_build.passes
    assert convolutions(model) == convolutions(onnx_build) == convolutions(net)
    kinds = set(op_types(model))
    assert not kinds & {"Split", "Transpose", "Reshape", "Identity", "BatchNormalization"}
    # Initializers are the deploy module's state_dict (its keys), and nothing else but
    # constants of Mul/Add (scale_shift, scaled adds); node names are unique.
    with torch.device("meta"):
        state = build_module(onnx_build, deploy=True).state_dict()
    keys = {key for key in state if not key.endswith("num_batches_tracked")}
    names = {t.name for t in model.graph.initializer}
    assert keys <= names and all(".scale" in n or ".shift" in n for n in names - keys)
    assert len({n.name for n in model.graph.node}) == len(model.graph.node)


def test_batch_is_the_one_dynamic_axis(exported):
    _, net, _, _, _, model, _ = exported
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("input", "output")
    in_dims = inp.type.tensor_type.shape.dim
    out_dims = out.type.tensor_type.shape.dim
    assert in_dims[0].dim_param and in_dims[0].dim_param == out_dims[0].dim_param
    assert [d.dim_value for d in in_dims[1:]] == list(net.input_shape)
    assert [d.dim_value for d in out_dims[1:]] == list(net.out_shape)


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_pytorch(exported, batch):
    stem, _, module, _, _, _, session = exported
    x = torch.randn(batch, *SPECS[stem], generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        expected = module(x).numpy()
    (got,) = session.run(None, {"input": x.numpy()})
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    if batch > 1:
        assert_depends_on_input(torch.from_numpy(got))


# The API and CLI details below hold for any network: a small one exports in a second.
TINY = """\
network Tiny(num_classes: int = 5) {
    input 3x12x12
    concat {
        a = conv(8, 1) -> batchnorm -> relu
        b = conv(4, 1) -> batchnorm -> relu -> conv(6, 3, padding=1) -> relu
        c = maxpool(3, stride=1, padding=1)
    }
    global_avgpool
    flatten
    dropout(0.5)
    fc = linear(num_classes)
}
"""


@pytest.fixture
def tiny(tmp_path) -> Path:
    spec = tmp_path / "tiny.net"
    spec.write_text(TINY, encoding="utf-8")
    return spec


def test_without_a_state_dict_the_weights_come_from_the_seeded_init(tiny):
    net = compiler.load(tiny)
    info = onnx_export.export(net, tiny.parent / "tiny.onnx", seed=3)
    torch.manual_seed(3)
    module = build_module(net, deploy=True).eval()
    session = ort_session(info.path)
    x = torch.randn(2, *net.input_shape)
    with torch.no_grad():
        expected = module(x).numpy()
    got = session.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert_depends_on_input(torch.from_numpy(got))


def test_a_plain_deploy_build_exports_too(tiny):
    """optimise(net, every pass off): three convolutions, no split."""
    net = compiler.load(tiny)
    plain = passes.optimise(net, disable=passes.PASSES)
    info = onnx_export.export(net, tiny.parent / "plain.onnx", seed=3, deploy=plain)
    model = onnx.load(info.path)
    assert convolutions(model) == 3 and "Split" not in {n.op_type for n in model.graph.node}
    torch.manual_seed(3)
    module = build_module(net, deploy=True).eval()
    x = torch.randn(3, *net.input_shape)
    with torch.no_grad():
        expected = module(x).numpy()
    np.testing.assert_allclose(
        ort_session(info.path).run(None, {"input": x.numpy()})[0], expected, rtol=0, atol=1e-5
    )


def test_cli_emit_onnx(tiny, capsys):
    target = tiny.parent / "model.onnx"
    code = cli.main(
        ["compile", str(tiny), "--emit", "onnx", "--set", "num_classes=3", "-o", str(target)]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    # The ONNX target's passes (compiler.passes.TARGETS): no sibling fusion, no channels_last.
    assert out.startswith(
        f"wrote {target} (Tiny, deploy graph optimised by fold_bn+fuse_relu, "
        "opset 18, dynamic batch, "
    )
    assert err == ""
    model = onnx.load(target)
    onnx.checker.check_model(model, full_check=True)
    ops = [node.op_type for node in model.graph.node]
    assert convolutions(model) == 3 and "Split" not in ops and "Transpose" not in ops
    assert model.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 3
    assert sorted(p.name for p in tiny.parent.iterdir()) == ["model.onnx", "tiny.net"]  # no temp
    # The same graph as onnx_export.export's default (both seed 0, same checkpoint).
    net = compiler.load(tiny, num_classes=3)
    default = onnx.load(onnx_export.export(net, tiny.parent / "default.onnx").path)
    assert model.graph.SerializeToString() == default.graph.SerializeToString()
    # --no-<pass> switches reach the export.
    command = ["compile", str(tiny), "--emit", "onnx", "--no-fold-bn", "-o", str(target)]
    assert cli.main(command) == 0
    assert "deploy graph optimised by fuse_relu, " in capsys.readouterr().out


def test_the_same_network_and_weights_give_the_same_bytes(tiny):
    net = compiler.load(tiny)
    state = build_module(net).state_dict()
    first = onnx_export.export(net, tiny.parent / "a.onnx", state_dict=state).path.read_bytes()
    second = onnx_export.export(net, tiny.parent / "b.onnx", state_dict=state).path.read_bytes()
    assert first == second
    seeded = [onnx_export.export(net, tiny.parent / f"{n}.onnx", seed=5).path for n in "cd"]
    assert seeded[0].read_bytes() == seeded[1].read_bytes() != first


def test_the_graph_reads_as_the_spec(tiny):
    """Node names are module paths; initializers the deploy state_dict's keys."""
    net = compiler.load(tiny)
    model = onnx.load(onnx_export.export(net, tiny.parent / "t.onnx").path)
    nodes = [(n.op_type, n.name) for n in model.graph.node]
    assert nodes == [
        ("Conv", "a.0"), ("Relu", "a.0.relu"),
        ("Conv", "b.0"), ("Relu", "b.0.relu"), ("Conv", "b.3"), ("Relu", "b.3.relu"),
        ("MaxPool", "c"),
        ("Concat", "cat"), ("GlobalAveragePool", "adaptive_avgpool"), ("Flatten", "flatten"),
        ("Gemm", "fc"),
    ]  # fmt: skip
    assert [t.name for t in model.graph.initializer] == [
        "a.0.weight", "a.0.bias", "b.0.weight", "b.0.bias", "b.3.weight", "b.3.bias",
        "fc.weight", "fc.bias",
    ]  # fmt: skip
    assert model.graph.node[-1].output[:] == ["output"] and model.graph.node[0].input[0] == "input"
    assert model.doc_string == f"Tiny from {net.source}, deploy build (eval mode), exported by netc"


# -- each lowering against PyTorch ------------------------------------------------------------


def one_layer(op: ops.OpModel, shape: ir.Shape, name: str | None = "x") -> ir.Network:
    """A network of one layer, ``op`` on an input of ``shape``."""
    out, params, macs = shapes.infer(op, shape)
    span = ir.SourceSpan(file="x.net", line=1, column=1, end_line=1, end_column=2)
    layer = ir.Layer(
        name=name, op=op, params=params, macs=macs, in_shape=shape, out_shape=out, span=span
    )
    return ir.Network(
        name="One", source="x.net", params=(), values={}, input_shape=shape,
        body=(layer,), out_shape=out, span=span,
    )  # fmt: skip


def assert_runs_as_torch(net: ir.Network, atol: float = 1e-5) -> onnx.ModelProto:
    """``net``'s deploy module (perturbed weights) and its ONNX graph, written from the
    module's state_dict, give the same output at batch 3; the model."""
    torch.manual_seed(0)
    module = build_module(net, deploy=True).eval()
    perturb(module, 0)
    model = onnx_export.build_model(net, module.state_dict())
    onnx.checker.check_model(model, full_check=True)
    x = torch.randn(3, *net.input_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = module(x.clone()).numpy()  # a copy: some examples run in place
    (got,) = ort_session(model.SerializeToString()).run(None, {"input": x.numpy()})
    assert got.shape == expected.shape == (3, *net.out_shape)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=atol)
    return model


EXAMPLES = [
    (tag, named)
    for tag, cls in ops.OPS.items()
    for named in (True, False)
    if named or not cls.stateful
]


@pytest.mark.parametrize(("tag", "named"), EXAMPLES)
def test_each_op_s_example_runs_in_onnxruntime_as_in_torch(tag, named):
    fields, shape = ops.OPS[tag].example
    net = one_layer(ops.OPS[tag](**fields), shape, "x" if named else None)
    model = assert_runs_as_torch(net)
    if tag in ("identity", "dropout", "dropout2d"):  # eval: the input itself
        assert op_types(model) == ["Identity"]


@pytest.mark.parametrize(
    ("op", "size"),
    [
        # ceil_mode where PyTorch drops a last window starting in the right padding
        (ops.MaxPool(kernel_size=(2, 2), stride=(2, 2), padding=(1, 1), ceil_mode=True), 5),
        (ops.MaxPool(kernel_size=(3, 2), stride=(3, 2), padding=(1, 1), ceil_mode=True), 8),
        (ops.AvgPool(kernel_size=(2, 2), stride=(2, 2), padding=(1, 1), ceil_mode=True), 5),
        (
            ops.AvgPool(
                kernel_size=(2, 2),
                stride=(2, 2),
                padding=(1, 1),
                ceil_mode=True,
                count_include_pad=False,
            ),
            9,
        ),
        # ceil_mode where an average pool's last window runs past the right padding:
        # PyTorch divides by the part inside the padded input (onnxruntime < 1.29 did not)
        (ops.AvgPool(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True), 8),
        (
            ops.AvgPool(
                kernel_size=(3, 3),
                stride=(2, 2),
                padding=(1, 1),
                ceil_mode=True,
                count_include_pad=False,
            ),
            8,
        ),
        (ops.AvgPool(kernel_size=(3, 2), stride=(2, 2), padding=(1, 0), ceil_mode=True), 8),
        (ops.AvgPool(kernel_size=(3, 3), stride=(2, 2), ceil_mode=True), 6),
        (ops.MaxPool(kernel_size=(3, 3), stride=(2, 2), ceil_mode=True), 112),  # GoogLeNet's
        (ops.MaxPool(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(2, 1)), 7),
        (ops.MaxPool(kernel_size=(2, 3), stride=(2, 1), dilation=(2, 2), ceil_mode=True), 9),
        (
            ops.AvgPool(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), count_include_pad=False),
            6,
        ),
        (
            ops.Conv(
                in_channels=4,
                out_channels=6,
                kernel_size=(3, 3),
                stride=(2, 1),
                padding=(2, 1),
                dilation=(2, 3),
                groups=2,
            ),
            9,
        ),
        (
            ops.Conv(
                in_channels=4,
                out_channels=4,
                kernel_size=(4, 3),
                padding="same",
                dilation=(1, 2),
                groups=4,
                bias=False,
            ),
            7,
        ),
    ],
    ids=lambda v: v.describe() if isinstance(v, ops.OpModel) else str(v),
)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_pools_and_convolutions_as_pytorch_computes_them(op, size):
    channels = getattr(op, "in_channels", 3)
    net = one_layer(op, (channels, size, size))
    model = assert_runs_as_torch(net)
    if isinstance(op, ops.MaxPool | ops.AvgPool):
        span = [size + 2 * p - d * (k - 1) - 1 for k, p, d in zip(
            op.kernel_size, op.padding, getattr(op, "dilation", (1, 1)))]  # fmt: skip
        onnx_sizes = [
            -(-n // s) + 1 if op.ceil_mode else n // s + 1 for n, s in zip(span, op.stride)
        ]
        cut = list(net.out_shape[1:]) != onnx_sizes
        last_ends = [(o - 1) * s - p + k for o, s, p, k in zip(
            net.out_shape[1:], op.stride, op.padding, op.kernel_size)]  # fmt: skip
        if isinstance(op, ops.AvgPool) and any(e > size + p for e, p in zip(last_ends, op.padding)):
            assert op.ceil_mode and op_types(model) == ["Pad", "AveragePool", "Mul"]
        else:
            pool = type(op).__name__.replace("Avg", "Average")
            assert op_types(model) == [pool] + ["Slice"] * cut


@pytest.mark.parametrize(
    ("size", "output", "lowered"),
    [
        ((7, 9), (2, 3), {"Slice", "ReduceMean", "Concat"}),  # 7 -> 2 overlaps; 9 -> 3 even
        ((5, 10), (3, 4), {"Slice", "ReduceMean", "Concat"}),
        ((3, 3), (5, 2), {"Slice", "ReduceMean", "Concat"}),  # upsampling windows
        ((8, 6), (4, 3), {"AveragePool"}),
        ((7, 5), (1, 1), {"GlobalAveragePool"}),
    ],
)
def test_adaptive_avgpool_follows_pytorch_s_windows(size, output, lowered):
    net = one_layer(ops.AdaptiveAvgPool(output_size=output), (2, *size))
    assert set(op_types(assert_runs_as_torch(net))) == lowered
    assert onnx_export.adaptive_windows(7, 2) == [(0, 4), (3, 7)]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6])
def test_lrn_as_local_response_norm(size):
    """Even sizes: PyTorch's window is not ONNX's, and onnxruntime has no kernel for them."""
    op = ops.LRN(size=size, alpha=0.5, beta=0.75, k=1.5)  # large alpha: the window shows
    model = assert_runs_as_torch(one_layer(op, (7, 3, 2)))
    assert (op_types(model) == ["LRN"]) == bool(size % 2)


JOINS = """network Joins() {
    input 8x6x6
    add {
        identity
        0.5 * {
            a = conv(8, 3, padding=1) -> relu
        }
        b = conv(8, 1)
        2.5 * {
            c = conv(8, 1) -> sigmoid
        }
    }
    mul {
        identity
        se = global_avgpool -> conv(8, 1) -> relu -> conv(8, 1) -> sigmoid
    }
    act = relu6
    concat {
        p = maxpool(3, stride=1, padding=1)
        q = avgpool(3, stride=1, padding=1, count_include_pad=false)
        {
            gelu
            s = silu
        }
    }
    flatten
    fc = linear(5)
}
"""


def test_joins_with_scales_groups_and_activations(tmp_path):
    spec = tmp_path / "joins.net"
    spec.write_text(JOINS, encoding="utf-8")
    net = compiler.load(spec)
    model = assert_runs_as_torch(passes.optimise(net, target="onnx"), atol=1e-4)
    kinds = op_types(model)
    assert kinds.count("Add") >= 3 and "Mul" in kinds and "Clip" in kinds and "Erf" in kinds
    scales = {
        t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer if "scale" in t.name
    }
    assert sorted(float(v) for v in scales.values()) == [0.5, 2.5]  # 1 is no Mul


def test_a_fused_sibling_build_is_split(tiny, tmp_path):
    """Every pass on (a user's choice for export): the fork's head is one convolution
    whose output a Split hands to the branches, and the numbers are the same."""
    net = compiler.load(tiny)
    fused = passes.optimise(net)
    assert "fuse_siblings" in fused.passes and "channels_last" in fused.passes
    torch.manual_seed(2)
    state = build_module(net).state_dict()
    perturbed = build_module(net)
    perturbed.load_state_dict(state)
    perturb(perturbed, 3)
    state = perturbed.state_dict()
    info = onnx_export.export(net, tmp_path / "fused.onnx", state_dict=state, deploy=fused)
    model = onnx.load(info.path)
    assert op_types(model).count("Split") == 1 and convolutions(model) == 2
    module = build_module(net, deploy=True).eval()
    module.load_training_checkpoint(state)
    x = torch.randn(3, *net.input_shape)
    with torch.no_grad():
        expected = module(x).numpy()
    got = ort_session(info.path).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert_depends_on_input(torch.from_numpy(got))


# -- size: linear in the network -----------------------------------------------------------


def _write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / f"{name}.net"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_concat_of_10000_branches(tmp_path):
    branches = [f"        b{i} = conv(1, 1) -> relu" for i in range(10_000)]
    lines = ["network Wide() {", "    input 1x2x2", "    concat {", *branches, "    }", "}"]
    spec = _write(tmp_path, "wide", lines)
    code = cli.main(["compile", str(spec), "--emit", "onnx", "-o", str(tmp_path / "wide.onnx")])
    assert code == 0
    model = onnx.load(tmp_path / "wide.onnx")
    kinds = op_types(model)
    assert (kinds.count("Conv"), kinds.count("Relu"), kinds[-1]) == (10_000, 10_000, "Concat")
    assert len(model.graph.node[-1].input) == 10_000 and len(model.graph.initializer) == 20_000


def test_a_chain_of_10000_layers(tmp_path):
    layers = [f"    r{i} = relu" if i % 2 else f"    c{i} = conv(2, 1)" for i in range(10_000)]
    spec = _write(tmp_path, "chain", ["network Chain() {", "    input 2x2x2", *layers, "}"])
    net = compiler.load(spec)
    model = onnx.load(onnx_export.export(net, tmp_path / "chain.onnx").path)
    assert op_types(model) == ["Conv", "Relu"] * 5_000
    assert [n.name for n in model.graph.node[-2:]] == ["c9998", "c9998.relu"]


def test_a_checkpoint_that_does_not_fit_fails_as_the_runtime_s_load(tiny):
    """The exporter checks a checkpoint without the module's (quadratic) strict load,
    but raises what that load, and the runtime's conversion, raise."""
    from compiler.backends.runtime import CheckpointError

    net = compiler.load(tiny)
    state = build_module(net).state_dict()
    target = tiny.parent / "bad.onnx"
    with pytest.raises(RuntimeError, match=r"size mismatch for fc\.weight: copying a param"):
        onnx_export.export(net, target, state_dict={**state, "fc.weight": torch.ones(5, 3)})
    lacking = {k: v for k, v in state.items() if k != "a.1.running_mean"}  # a folded one
    with pytest.raises(CheckpointError, match="missing keys: a.1.running_mean"):
        onnx_export.export(net, target, state_dict=lacking)
    plain = passes.optimise(net, disable=passes.PASSES)  # batch norms kept: their keys loaded
    without = {k: v for k, v in state.items() if k != "a.1.running_var"}
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "a.1.running_var"'):
        onnx_export.export(net, target, state_dict=without, deploy=plain)
    assert not target.exists()
