"""ONNX export: the deploy graph in eval mode, a dynamic batch axis, checked, and equal to PyTorch.

Every shipped spec is exported at a small input with perturbed weights (see
test_source.py: the specs' own inits can make the logits input-independent),
checked with onnx.checker (full_check), and run with onnxruntime at batch 1
and batch 3, which the graph only accepts if its batch axis is dynamic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import compiler
from compiler import cli
from compiler.backends import onnx_export
from compiler.backends.runtime import build_module

try:
    from test_source import SPECS, assert_depends_on_input, perturb
except ImportError:  # tests/ collected as a package
    from tests.test_source import SPECS, assert_depends_on_input, perturb

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", params=sorted(SPECS))
def exported(request, tmp_path_factory):
    stem = request.param
    net = compiler.load(ROOT / "specs" / f"{stem}.net", SPECS[stem])
    module = build_module(net, deploy=True).eval()
    perturb(module, 11)
    path = tmp_path_factory.mktemp("onnx") / f"{stem}.onnx"
    info = onnx_export.export(net, path, state_dict=module.state_dict())
    return stem, net, module, path, info


def test_the_model_passes_the_full_checker(exported):
    _, net, _, path, info = exported
    assert info.path == path and info.opset == onnx_export.OPSET == 18
    assert info.bytes == path.stat().st_size
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain: o.version for o in model.opset_import}[""] == 18
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta == {"netc.network": net.name, "netc.spec": net.source}


def test_batch_is_the_one_dynamic_axis(exported):
    _, net, _, path, _ = exported
    model = onnx.load(path)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("input", "output")
    in_dims = inp.type.tensor_type.shape.dim
    out_dims = out.type.tensor_type.shape.dim
    assert in_dims[0].dim_param and in_dims[0].dim_param == out_dims[0].dim_param
    assert [d.dim_value for d in in_dims[1:]] == list(net.input_shape)
    assert [d.dim_value for d in out_dims[1:]] == list(net.out_shape)


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_pytorch(exported, batch):
    stem, _, module, path, _ = exported
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(batch, *SPECS[stem], generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        expected = module(x).numpy()
    (got,) = session.run(None, {"input": x.numpy()})
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    if batch > 1:
        assert_depends_on_input(torch.from_numpy(got))


def test_without_a_state_dict_the_weights_come_from_the_seeded_init(tmp_path):
    net = compiler.load(ROOT / "specs" / "googlenet_d2l.net", SPECS["googlenet_d2l"])
    info = onnx_export.export(net, tmp_path / "d2l.onnx", seed=3)
    torch.manual_seed(3)
    module = build_module(net, deploy=True).eval()
    session = onnxruntime.InferenceSession(str(info.path), providers=["CPUExecutionProvider"])
    x = torch.randn(2, *SPECS["googlenet_d2l"])
    with torch.no_grad():
        expected = module(x).numpy()
    np.testing.assert_allclose(
        session.run(None, {"input": x.numpy()})[0], expected, rtol=0, atol=1e-5
    )


def test_cli_emit_onnx(tmp_path, capsys):
    spec = ROOT / "specs" / "googlenet_d2l.net"
    target = tmp_path / "model.onnx"
    code = cli.main(
        ["compile", str(spec), "--emit", "onnx", "--input", "1x32x32", "-o", str(target)]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith(f"wrote {target} (GoogLeNetD2L, deploy graph, opset 18, dynamic batch, ")
    assert err == ""
    onnx.checker.check_model(onnx.load(target), full_check=True)
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary left
