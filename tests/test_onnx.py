"""ONNX export: the optimised deploy graph in eval mode, a dynamic batch axis, checked, and
equal to PyTorch (the plain deploy module, from the same training checkpoint).

Every shipped spec is exported at a small input with perturbed weights (see
test_source.py: the specs' own inits can make the logits input-independent),
checked with onnx.checker (full_check), and run with onnxruntime at batch 1
and batch 3, which the graph only accepts if its batch axis is dynamic. The
exports run in a background process while the rest of the suite runs
(onnx_exports.py, conftest.py), and this file runs last.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import compiler
from compiler import cli, ir, passes
from compiler.backends import onnx_export
from compiler.backends.runtime import build_module

try:
    import onnx_exports
    from test_source import SPECS, assert_depends_on_input
except ImportError:  # tests/ collected as a package
    from tests import onnx_exports
    from tests.test_source import SPECS, assert_depends_on_input

ROOT = Path(__file__).resolve().parent.parent


def convolutions(model: onnx.ModelProto | ir.Network) -> int:
    """Conv nodes of an ONNX graph, or convolution layers of a network."""
    if isinstance(model, ir.Network):
        return sum(layer.op.op in ("conv", "fused_conv") for _, layer in ir.layers(model.body))
    return sum(node.op_type == "Conv" for node in model.graph.node)


def ort_session(path: Path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # as torch in the tests (conftest.py): no spinning threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _background_export(config: pytest.Config, stem: str) -> onnx_export.Exported | None:
    """The export conftest.py started in the background for ``stem``, once written;
    None when there is none (not started, or it failed: exporting again here shows why)."""
    started = getattr(config, "_netc_onnx_exports", None)
    if started is None:
        return None
    process, folder = started
    while (info := onnx_exports.exported(stem, folder)) is None and process.poll() is None:
        time.sleep(0.05)
    return info or onnx_exports.exported(stem, folder)


@pytest.fixture(scope="module", params=sorted(SPECS))
def exported(request, tmp_path_factory):
    """Per spec, once: the plain deploy module (perturbed), the export of the optimised
    deploy graph with its weights, and the written file loaded back, as a model and as an
    onnxruntime session."""
    stem = request.param
    info = _background_export(request.config, stem)
    if info is None:
        info = onnx_exports.export(stem, tmp_path_factory.mktemp("onnx"))
    net, module = onnx_exports.plain_deploy_module(stem)
    return stem, net, module, info.path, info, onnx.load(info.path), ort_session(info.path)


def test_the_model_passes_the_full_checker(exported):
    _, net, _, path, info, model, _ = exported
    assert info.path == path and info.opset == onnx_export.OPSET == 18
    assert info.bytes == path.stat().st_size
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain: o.version for o in model.opset_import}[""] == 18
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta == {"netc.network": net.name, "netc.spec": net.source}
    # The graph optimised for the ONNX target: a convolution per deploy convolution, no
    # sibling fusion (compiler.passes.TARGETS), so nothing split. (The exporter folds
    # batch norm by itself: no evidence there.)
    onnx_build = passes.optimise(net, target="onnx")
    assert "fuse_siblings" not in onnx_build.passes
    assert convolutions(model) == convolutions(onnx_build) == convolutions(net)
    assert "Split" not in {node.op_type for node in model.graph.node}


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
