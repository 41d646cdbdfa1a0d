"""netc's static helper code (compiler/templates/helpers.py): a real module,
tested here, whose sections generated files hold verbatim (renamed where a
spec's name took a helper's)."""

from __future__ import annotations

import importlib.util
import io
import re
import tokenize
from pathlib import Path

import pytest
import torch
from torch import nn

import compiler
from compiler.backends.source import emit
from compiler.backends.source.render import TEMPLATES, helper_sections, renamed

spec = importlib.util.spec_from_file_location("netc_helpers", TEMPLATES / "helpers.py")
assert spec is not None and spec.loader is not None
helpers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(helpers)


def test_the_sections():
    sections = helper_sections()
    assert set(sections) == {"ScaleShift", "scale_shift", "checkpoint"}
    for code in sections.values():
        compile(code, "<section>", "exec")
        # a renamable name appears only as an identifier, so renaming leaves no stale mention
        names = [t.string for t in tokenize.generate_tokens(io.StringIO(code).readline)]
        for name in helpers.RENAMABLE:
            assert len(re.findall(rf"\b{name}\b", code)) == names.count(name), name


def test_renamed_touches_identifiers_only():
    code = 'def f(a: A) -> A:\n    """A docstring about A."""\n    return A(a, "A")  # A\n'
    assert renamed(code, {"A": "A_1"}) == (
        'def f(a: A_1) -> A_1:\n    """A docstring about A."""\n    return A_1(a, "A")  # A\n'
    )
    assert renamed(code, {"A": "A"}) == code


def test_scale_shift_helpers():
    x = torch.randn(2, 3, 4, 4)
    scale, shift = [0.5, 1.0, 2.0], [0.1, -0.2, 0.3]
    expected = x * torch.tensor(scale).view(1, 3, 1, 1) + torch.tensor(shift).view(1, 3, 1, 1)
    torch.testing.assert_close(helpers.ScaleShift(scale, shift)(x), expected)
    torch.testing.assert_close(helpers.scale_shift(x, scale, shift), expected)
    assert helpers.ScaleShift(scale, shift).state_dict() == {}  # no checkpoint entries


def test_fuse_folds_batch_norm_and_stacks_siblings():
    torch.manual_seed(0)
    a, b = nn.Conv2d(3, 4, 1, bias=False), nn.Conv2d(3, 2, 1)
    bn = nn.BatchNorm2d(4, eps=1e-3).eval()
    bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_()
    state = {
        **{f"a.{k}": v for k, v in a.state_dict().items()},
        **{f"bn.{k}": v for k, v in bn.state_dict().items()},
        **{f"b.{k}": v for k, v in b.state_dict().items()},
        "other.weight": torch.ones(1),
    }
    sources = (helpers.ConvSource("a", "bn", bias=False, eps=1e-3), helpers.ConvSource("b"))
    model = nn.ModuleDict({"ab": nn.Conv2d(3, 6, 1)})
    fused = helpers._fuse(state, {"ab": sources}, model)
    assert sorted(fused) == ["ab.bias", "ab.weight", "other.weight"]
    conv = nn.Conv2d(3, 6, 1)
    conv.load_state_dict({"weight": fused["ab.weight"], "bias": fused["ab.bias"]})
    x = torch.randn(2, 3, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), torch.cat([bn(a(x)), b(x)], 1))
    missing = {k: v for k, v in state.items() if k != "bn.running_var"}
    try:
        helpers._fuse(missing, {"ab": sources}, model)
    except RuntimeError as err:
        assert str(err) == 'Missing key(s) in state_dict: "bn.running_var"'
    else:
        raise AssertionError("a missing key must raise")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"bn.running_var": torch.ones(5)}, 'size mismatch for "bn.running_var": expected shape (4,), got (5,)'),
        ({"bn.weight": 1.0}, '"bn.weight" is a float, not a tensor'),
        ({"a.weight": torch.ones(4, 2, 1, 1)},
         'size mismatch for "a.weight": expected shape (4, 3, 1, 1), got (4, 2, 1, 1)'),
        ({"b.bias": torch.ones(3)}, 'size mismatch for "b.bias": expected shape (2,), got (3,)'),
        ({"b.weight": torch.ones(3, 3, 1, 1), "b.bias": torch.ones(3)},
         'size mismatch for "ab.weight": expected shape (6, 3, 1, 1) from "a.weight" (4, 3, 1, 1), "b.weight" (3, 3, 1, 1)'),
    ],
)  # fmt: skip
def test_fuse_names_the_key_and_both_shapes(changes, message):
    """A folded or stacked source's tensor of the wrong shape, or no tensor at all."""
    state = {
        "a.weight": torch.ones(4, 3, 1, 1),
        **{f"bn.{k}": torch.ones(4) for k in ("weight", "bias", "running_mean", "running_var")},
        "b.weight": torch.ones(2, 3, 1, 1),
        "b.bias": torch.ones(2),
        **changes,
    }
    sources = (helpers.ConvSource("a", "bn", bias=False), helpers.ConvSource("b"))
    model = nn.ModuleDict({"ab": nn.Conv2d(3, 6, 1)})
    with pytest.raises(RuntimeError) as err:
        helpers._fuse(state, {"ab": sources}, model)
    assert str(err.value) == message


def test_a_block_named_like_a_helper_renames_the_copy(tmp_path: Path):
    path = tmp_path / "clash.net"
    path.write_text(
        "block ScaleShift(n: int) {\n    c = conv(n, 1)\n}\n"
        "network Net() {\n"
        "    input 2x4x4\n"
        "    norm = scale_shift(scale=(1.0, 2.0), shift=(0.0, 1.0))\n"
        "    unit = ScaleShift(3)\n"
        "}\n"
    )
    text = emit(compiler.load(path))
    assert "class ScaleShift(nn.Module):" in text  # the block's class
    assert "class ScaleShift_1(nn.Module):" in text  # the helper's copy, renamed
    assert "self.norm = ScaleShift_1([1.0, 2.0], [0.0, 1.0])" in text
    module_path = tmp_path / "clash.py"
    module_path.write_text(text, encoding="utf-8")
    found = importlib.util.spec_from_file_location("netc_clash", module_path)
    assert found is not None and found.loader is not None
    generated = importlib.util.module_from_spec(found)
    found.loader.exec_module(generated)
    model = generated.Net()
    assert tuple(model(torch.zeros(1, 2, 4, 4)).shape) == (1, 3, 4, 4)
