"""The Inception family's specs (v3 from torchvision, v4 and Inception-ResNet-v2 from timm)
through the backends, once each: they are large (24M-56M parameters), so where the other
specs run through every equivalence test of test_source.py, test_source_deploy.py and
test_passes.py, each of these is built once here, at 75 x 75 (the smallest input they
take; v3 without its aux head, which needs 299), and checked in one pass:

- the generated training module loads the runtime module's state_dict (strict) and gives
  identical outputs in eval;
- the runtime deploy build (every pass) and the generated deploy module, both loaded from
  that training checkpoint, match it within 1e-4.

Against the libraries' structure (tests/reference_inception.py): tests/test_specs.py.
ONNX export: tests/test_onnx.py, as every shipped spec.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import compiler
from compiler import ir, passes
from compiler.backends import source
from compiler.backends.runtime import build_module

try:
    from test_source import _build_dir, load_file, perturb
except ImportError:  # tests/ collected as a package
    from tests.test_source import _build_dir, load_file, perturb

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = {"rtol": 1e-4, "atol": 1e-4}

FAMILY = [
    ("inception_v3_torchvision", {"aux": False}),
    ("inception_v4", {}),
    ("inception_resnet_v2", {}),
]


def generated_class(net: ir.Network, deploy: bool) -> type:
    stem = Path(net.source).stem
    path = _build_dir() / f"family_{stem}{'_deploy' if deploy else ''}.py"
    path.write_text(source.emit(net, deploy=deploy), encoding="utf-8")
    return getattr(load_file(path, f"netc_family_{path.stem}"), net.name)


@pytest.mark.parametrize("stem,params", FAMILY, ids=[s for s, _ in FAMILY])
def test_runtime_generated_and_deploy_builds_agree(stem, params):
    net = compiler.load(ROOT / "specs" / f"{stem}.net", (3, 75, 75), **params)
    torch.manual_seed(0)
    runtime = build_module(net).eval()
    perturb(runtime, 31)
    checkpoint = runtime.state_dict()
    x = torch.randn(2, 3, 75, 75, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = runtime(x)
    assert (expected[0] - expected[1]).abs().max() > 0.05  # the output depends on the input

    with torch.device("meta"):
        model = generated_class(net, deploy=False)()  # the bound values are its defaults
    model.load_state_dict(checkpoint, strict=True, assign=True)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), expected)
    del model

    opt = passes.optimise(net)
    passes.verify(opt)
    assert opt.passes == tuple(passes.PASSES)
    deploy = build_module(opt, deploy=True).eval()
    assert deploy.load_training_checkpoint(checkpoint) == []
    with torch.no_grad():
        torch.testing.assert_close(deploy(x), expected, **TOLERANCE)
    del deploy

    generated, dropped = generated_class(opt, deploy=True).from_training_checkpoint(checkpoint)
    assert dropped == []
    with torch.no_grad():
        torch.testing.assert_close(generated.eval()(x), expected, **TOLERANCE)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in generated.modules())
