"""The optimised deploy build as standalone source (``netc compile --deploy``).

For every shipped network spec, at a small input: the generated deploy module,
optimised by every pass of ``compiler.passes`` and built with
``from_training_checkpoint`` from the state_dict of the generated *training*
module, gives that module's eval output within 1e-4 (fp32), under perturbed
weights and batch-norm statistics that make the output depend on the input
(asserted). Its weights are exactly those the runtime's optimised deploy
module makes from the same checkpoint, under the same state_dict keys.

Also: the loader drops exactly the aux heads' keys and refuses any other
missing or unexpected key; each ``--no-<pass>`` switch changes the emitted
source as its pass says, and with all of them off the deploy source is the
plain one; the emitted files parse, pass ruff and import only torch and the
standard library; TorchScript and torch.export take an optimised module.
"""

from __future__ import annotations

import ast
import functools
import subprocess
from pathlib import Path

import pytest
import torch

import compiler
from compiler import passes
from compiler.backends import source
from compiler.backends.runtime import build_module
from compiler.cli import main

try:
    from test_source import (
        LIGHT,
        SPECS,
        _build_dir,
        assert_depends_on_input,
        generated,
        load_file,
        perturb,
    )
except ImportError:  # tests/ collected as a package
    from tests.test_source import (
        LIGHT,
        SPECS,
        _build_dir,
        assert_depends_on_input,
        generated,
        load_file,
        perturb,
    )

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = {"rtol": 1e-4, "atol": 1e-4}
PASS_FLAGS = [f"--no-{name.replace('_', '-')}" for name in passes.PASSES]


@functools.cache
def optimised(stem: str, disable: frozenset[str] = frozenset()):
    """(the optimised net, the imported generated deploy module) at the spec's small input."""
    net = compiler.load(ROOT / "specs" / f"{stem}.net", SPECS[stem])
    opt = passes.optimise(net, disable)
    text = source.emit(opt, deploy=True)
    suffix = "".join(f"_no_{name}" for name in sorted(disable))
    path = _build_dir() / f"{stem}_optimised{suffix}.py"
    path.write_text(text, encoding="utf-8")
    return opt, load_file(path, f"netc_generated_{path.stem}")


class Trained:
    """The generated training module of a spec, perturbed: its checkpoint, an input
    and its eval output."""

    def __init__(self, stem: str):
        self.net, module = generated(stem)
        model = getattr(module, self.net.name)()
        perturb(model, 21)
        self.state_dict = model.eval().state_dict()
        self.x = torch.randn(2, *SPECS[stem], generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            self.expected = model(self.x)
        self.aux_keys = [
            k for k in self.state_dict if k.split(".")[0] in {h.name for h in self.net.aux}
        ]


@functools.cache
def trained(stem: str) -> Trained:
    return Trained(stem)


@functools.cache
def deployed(stem: str):
    """The generated deploy module built from ``stem``'s training checkpoint, in eval:
    built once, so tests must leave it as they found it."""
    opt, module = optimised(stem)
    model, dropped = getattr(module, opt.name).from_training_checkpoint(trained(stem).state_dict)
    return opt, module, model.eval(), dropped


# -- outputs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stem", LIGHT)
def test_optimised_deploy_matches_the_training_module(stem):
    t = trained(stem)
    opt, module, model, dropped = deployed(stem)
    assert opt.passes == tuple(passes.PASSES)
    with torch.no_grad():
        got = model(t.x)
    assert got.shape == t.expected.shape
    assert_depends_on_input(t.expected)
    torch.testing.assert_close(got, t.expected, **TOLERANCE)
    assert dropped == t.aux_keys and bool(dropped) == bool(t.net.aux)
    assert module.AUX_HEADS == tuple(h.name for h in t.net.aux)
    # Optimised: no batch norm left, no aux heads, and the weights in channels_last.
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert not any(k.split(".")[0] in module.AUX_HEADS for k in model.state_dict())
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    with torch.no_grad():  # no aux outputs, even in training
        assert isinstance(model.train()(t.x), torch.Tensor)
    model.eval()


@pytest.mark.parametrize("stem", LIGHT)
def test_same_weights_and_outputs_as_the_runtime_deploy_module(stem):
    """The generated loader folds and stacks exactly as the runtime's does, and the
    generated forward computes exactly what the runtime's does."""
    t = trained(stem)
    opt, _, model, _ = deployed(stem)
    runtime = build_module(opt, deploy=True)
    runtime.load_training_checkpoint(t.state_dict)
    ours, theirs = model.state_dict(), runtime.state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours), stem
    # The same weights through the same PyTorch calls: the same bits out.
    with torch.inference_mode():
        assert torch.equal(model(t.x), runtime.eval()(t.x)), stem


def test_the_tables_say_what_was_fused():
    _, module = optimised("googlenet_torchvision")
    source_cls = module.ConvSource
    assert source_cls._field_defaults == {"bn": None, "bias": False, "eps": 0.001}
    assert module.FUSED_CONVS["inception3a.branch1_branch2_branch3"] == tuple(
        source_cls(f"inception3a.{b}.conv", f"inception3a.{b}.bn")
        for b in ("branch1", "branch2.0", "branch3.0")
    )
    assert source_cls("conv1.conv", "conv1.bn") in module.FOLDED_BN
    assert len(module.FOLDED_BN) == 3 + 9 * 3 and len(module.FUSED_CONVS) == 9
    _, v1 = optimised("googlenet_v1")  # no batch norm: stacking only
    assert not hasattr(v1, "FOLDED_BN") and len(v1.FUSED_CONVS) == 9
    assert v1.ConvSource._field_defaults == {"bn": None, "bias": True, "eps": 1e-5}


# -- the loader's contract -------------------------------------------------------------------


def test_missing_or_unexpected_keys_are_errors():
    t = trained("googlenet_torchvision")
    opt, module = optimised("googlenet_torchvision")
    load = getattr(module, opt.name).from_training_checkpoint
    checkpoint = t.state_dict
    for key in ("inception3a.branch2.0.bn.running_var", "conv1.conv.weight", "fc.bias"):
        with pytest.raises(RuntimeError, match=rf'Missing key\(s\) in state_dict: "{key}"'):
            load({k: v for k, v in checkpoint.items() if k != key})
    # conv1.conv has no bias in training: a stray one is no bias to fold, but an error.
    for extra in ("inception3a.branch5.weight", "conv1.conv.bias", "aux3.fc.weight", "aux1x"):
        with pytest.raises(RuntimeError, match=rf'Unexpected key\(s\) in state_dict: "{extra}"'):
            load({**checkpoint, extra: torch.zeros(1)})
    with pytest.raises(RuntimeError, match="size mismatch for fc.weight"):
        load({**checkpoint, "fc.weight": torch.zeros(3, 3)})
    # Folding needs no num_batches_tracked: older checkpoints lack it.
    _, dropped = load({k: v for k, v in checkpoint.items() if "num_batches" not in k})
    assert dropped == [k for k in t.aux_keys if "num_batches" not in k]
    with pytest.raises(TypeError):
        load(checkpoint, aux=True)  # a deploy build has no aux parameter


def test_folding_keeps_the_checkpoint_dtype():
    t = trained("googlenet_cifar")
    opt, module = optimised("googlenet_cifar")
    double = {k: v.double() if v.is_floating_point() else v for k, v in t.state_dict.items()}
    model, _ = getattr(module, opt.name).from_training_checkpoint(double)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # loaded into fp32 params
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(t.x), t.expected, **TOLERANCE)


# -- the CLI switches ----------------------------------------------------------------------------


def compiled(tmp_path: Path, capsys, *flags: str, spec: str = "googlenet_torchvision") -> str:
    out = tmp_path / f"{spec}{''.join(flags)}.py"
    assert main(["compile", str(ROOT / "specs" / f"{spec}.net"), "-o", str(out), *flags]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out} (")
    return out.read_text(encoding="utf-8")


# What the emitted source holds only with the pass off, and only with it on.
SWITCHES = {
    "drop_unused": (["self.dropout = nn.Dropout(dropout)", "dropout: float = 0.2"], []),
    "fold_bn": (
        ["nn.BatchNorm2d(out_channels, eps=0.001)"],
        ["FOLDED_BN", 'ConvSource("conv1.conv", "conv1.bn")'],
    ),
    "fuse_relu": (["return F.relu(x)"], ["return F.relu(self.conv(x), inplace=True)"]),
    "fuse_siblings": (
        ["self.branch1 = BasicConv2d(in_channels, ch1x1, 1)"],
        ["self.branch1_branch2_branch3 = nn.Conv2d(", "torch.split(", "FUSED_CONVS"],
    ),
    "channels_last": (
        [],
        [
            "x = x.contiguous(memory_format=torch.channels_last)",
            "self.to(memory_format=torch.channels_last)",
        ],
    ),
}


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """``netc compile --deploy`` of googlenet_torchvision: every pass on."""
    out = tmp_path_factory.mktemp("full") / "full.py"
    assert main(["compile", str(ROOT / "specs" / "googlenet_torchvision.net"), "-o", str(out),
                 "--deploy"]) == 0  # fmt: skip
    return out.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", list(passes.PASSES))
def test_each_switch_changes_the_source(tmp_path, capsys, full, name):
    flag = "--no-" + name.replace("_", "-")
    text = compiled(tmp_path, capsys, "--deploy", flag)
    only_off, only_on = SWITCHES[name]
    for piece in only_off:
        assert piece in text and piece not in full, piece
    for piece in only_on:
        assert piece in full and piece not in text, piece
    assert text != full


def test_cli_deploy_is_the_optimised_build(tmp_path, capsys, full):
    net = compiler.load(ROOT / "specs" / "googlenet_torchvision.net")
    assert full == source.emit(passes.optimise(net), deploy=True)
    text = compiled(tmp_path, capsys, "--deploy", "--no-fold-bn", spec="googlenet_v1")
    v1 = compiler.load(ROOT / "specs" / "googlenet_v1.net")
    assert text == source.emit(passes.optimise(v1, {"fold_bn"}), deploy=True)


def test_with_every_fusion_off_the_deploy_source_is_the_plain_one(tmp_path, capsys):
    net = compiler.load(ROOT / "specs" / "googlenet_v1.net")
    plain = source.emit(net, deploy=True)
    fusions = [f for f in PASS_FLAGS if f != "--no-drop-unused"]
    text = compiled(tmp_path, capsys, "--deploy", *fusions, spec="googlenet_v1")
    # Only drop_unused ran: the dropout layer (and its parameter) is gone, nothing is fused.
    assert text == source.emit(passes.optimise(net, set(passes.PASSES) - {"drop_unused"}), True)
    for fused in ("ConvSource", "FUSED_CONVS", "inplace=True", "torch.split", "channels_last"):
        assert fused not in text, fused
    removed = set(plain.splitlines()) - set(text.splitlines())
    assert removed == {
        "Built with num_classes=1000, dropout=0.4; each is a keyword argument of the class.",
        "    def __init__(self, *, num_classes: int = 1000, dropout: float = 0.4) -> None:",
        "        self.dropout = nn.Dropout(dropout)",
        "        x = self.dropout(x)",
    }
    # With drop_unused off too, it is the plain deploy source, byte for byte.
    assert compiled(tmp_path, capsys, "--deploy", *PASS_FLAGS, spec="googlenet_v1") == plain


def test_switches_without_deploy_are_an_error(tmp_path, capsys):
    spec = str(ROOT / "specs" / "googlenet_v1.net")
    assert main(["compile", spec, "-o", str(tmp_path), "--no-fuse-relu"]) == 2
    assert "--no-fuse-relu switches off a deploy pass: it needs --deploy" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# -- the text ----------------------------------------------------------------------------------


def _deploy_files() -> list[Path]:
    return sorted((ROOT / "generated").glob("*_deploy.py"))


def test_every_spec_has_an_optimised_deploy_file():
    assert sorted(p.name for p in _deploy_files()) == sorted(f"{s}_deploy.py" for s in SPECS)
    standalone = {
        "from collections import OrderedDict",
        "from typing import NamedTuple",
        "import torch",
        "import torch.nn.functional as F",
        "from torch import nn",
    }
    for path in _deploy_files():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        imports = {
            ast.unparse(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
        }
        assert imports <= standalone, path.name
        assert (
            "Optimised by netc's deploy passes fold_bn, fuse_relu, fuse_siblings, channels_last."
            in " ".join(text.split())
        )
        assert "self.to(memory_format=torch.channels_last)" in text
        assert "def from_training_checkpoint(" in text and "def _fuse(" in text


def test_the_inception_block_reads_like_hand_written_code():
    text = (ROOT / "generated" / "googlenet_v1_deploy.py").read_text(encoding="utf-8")
    assert (
        "        self.branch1_branch2_branch3 = nn.Conv2d(in_channels, ch1x1 + ch3x3red + ch5x5red, 1)\n"
        in text
    )
    assert (
        "        branch1_branch2_branch3 = F.relu(self.branch1_branch2_branch3(x), inplace=True)\n"
        in text
    )
    assert (
        "        # N x ch1x1 x H x W, N x ch3x3red x H x W, N x ch5x5red x H x W\n"
        "        branch1, branch2, branch3 = torch.split(\n"
        "            branch1_branch2_branch3, [self.ch1x1, self.ch3x3red, self.ch5x5red], 1\n"
        "        )\n"
        "        branch2 = self.branch2(branch2)  # N x ch3x3 x H x W\n"
    ) in text
    # The chain keeps its item names (state_dict keys): item 0 went into the fused conv.
    assert (
        '        self.branch2 = nn.Sequential(OrderedDict([("1", ConvBlock(ch3x3red, ch3x3, 3, padding=1))]))\n'
        in text
    )
    assert (
        "        return F.relu(self.conv(x), inplace=True)  # N x out_channels x H' x W'\n" in text
    )
    classes = [n.name for n in ast.parse(text).body if isinstance(n, ast.ClassDef)]
    assert classes == ["ConvBlock", "Inception", "GoogLeNet", "ConvSource"]


def test_switched_sources_pass_ruff_and_parse(tmp_path, capsys):
    folder = tmp_path / "variants"
    folder.mkdir()
    for flag in ["", *PASS_FLAGS]:
        for spec in ("googlenet_torchvision", "googlenet_cifar"):
            text = compiled(folder, capsys, "--deploy", *([flag] if flag else []), spec=spec)
            ast.parse(text)
    ruff = source._ruff()
    for args in (
        ["format", "--check", "--isolated", "--line-length", "100"],
        ["check", "--isolated"],
    ):
        done = subprocess.run(
            [ruff, *args, str(folder)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


# -- what else runs it ----------------------------------------------------------------------------


def test_torch_jit_script_and_export():
    """On googlenet_torchvision: folded batch norms, forks, channels_last, all in one."""
    t = trained("googlenet_torchvision")
    _, _, model, _ = deployed("googlenet_torchvision")
    with torch.no_grad():
        eager = model(t.x)
        scripted = torch.jit.script(model)
        torch.testing.assert_close(scripted(t.x), eager, rtol=0, atol=1e-5)
        program = torch.export.export(model, (t.x,))
        torch.testing.assert_close(program.module()(t.x), eager, rtol=0, atol=1e-5)
    torch.testing.assert_close(eager, t.expected, **TOLERANCE)


# -- forks and chains the shipped specs do not have --------------------------------------------


def test_a_fork_in_the_network_body_with_mixed_siblings(tmp_path):
    """A fork at the top level, siblings with and without batch norm and bias, a branch
    that is one layer, and a chain whose ReLU stays a module after its convolution."""
    spec = tmp_path / "mixed.net"
    spec.write_text(
        "block Pair(n: int) {\n"
        "    concat {\n"
        "        a = conv(n, 1, bias=false) -> batchnorm(eps=0.01) -> relu\n"
        "        b = conv(n + 1, 1) -> relu -> conv(3, 3, padding=1) -> relu\n"
        "        c = avgpool(3, stride=1, padding=1)\n"
        "    }\n"
        "}\n"
        "network Mixed(width: int = 4) {\n"
        "    input 3x12x12\n"
        "    concat {\n"
        "        p = conv(width, 1) -> relu\n"
        "        q = conv(5, 1) -> batchnorm -> relu -> maxpool(2, stride=1, padding=1)\n"
        "          -> conv(6, 2) -> relu\n"
        "        r = conv(2, 3, padding=1)\n"
        "    }\n"
        "    unit = Pair(width)\n"
        "    global_avgpool\n"
        "    flatten\n"
        "    fc = linear(10)\n"
        "}\n"
    )
    net = compiler.load(spec)
    opt = passes.optimise(net)
    text = source.emit(opt, deploy=True)
    for line in (
        "        self.p_q = nn.Conv2d(3, width + 5, 1)\n",
        "        p_q = F.relu(self.p_q(x), inplace=True)  # N x 9 (width + 5) x 12 x 12\n",
        "        p, q = torch.split(p_q, [self.width, 5], 1)  # N x 4 (width) x 12 x 12, N x 5 x 12 x 12\n",
        "        r = self.r(x)  # N x 2 x 12 x 12\n",
        "        self.a_b = nn.Conv2d(in_channels, n + n + 1, 1)\n",
        "        a, b = torch.split(a_b, [self.n, self.n + 1], 1)  # N x n x 12 x 12, N x (n + 1) x 12 x 12\n",
        (
            '                    ("3", nn.MaxPool2d(2, stride=1, padding=1)),\n'
            '                    ("4", nn.Conv2d(5, 6, 2)),\n'
            '                    ("5", nn.ReLU(inplace=True)),\n'
        ),
    ):
        assert line in text, line
    path = tmp_path / "mixed_deploy.py"
    path.write_text(text, encoding="utf-8")
    module = load_file(path, "netc_mixed_deploy")
    runtime = build_module(net)
    perturb(runtime, 8)
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        expected = runtime.eval()(x)
        model, dropped = module.Mixed.from_training_checkpoint(runtime.state_dict())
        got = model.eval()(x)
    assert dropped == []
    assert_depends_on_input(expected)
    torch.testing.assert_close(got, expected, **TOLERANCE)
    deploy = build_module(opt, deploy=True)
    deploy.load_training_checkpoint(runtime.state_dict())
    assert list(model.state_dict()) == list(deploy.state_dict())
    conv_source = module.ConvSource
    assert module.FUSED_CONVS == {
        "p_q": (conv_source("p.0"), conv_source("q.0", "q.1")),
        "unit.a_b": (
            conv_source("unit.a.0", "unit.a.1", bias=False, eps=0.01),
            conv_source("unit.b.0", bias=True),
        ),
    }
    torch.jit.script(model)
