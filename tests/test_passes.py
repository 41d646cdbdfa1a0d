"""Deploy passes (compiler.passes): each alone and all together keep the outputs
of the unoptimised model, whose ordinary training checkpoint the optimised
runtime module loads; shapes, parameter counts and MACs stay consistent; the
summary says what was fused; each CLI switch turns its pass off.

Weights and batch-norm statistics are perturbed (kaiming-scaled weights, random
running statistics) so that outputs are O(1) and depend on the input; inputs
are small (64x64 or 96x96 where the aux heads need it) to keep the file fast.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import compiler
from compiler import ir, passes
from compiler.backends import runtime
from compiler.backends.runtime import CheckpointError, build_module, count_parameters
from compiler.cli import main
from compiler.expr import ref, to_python

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p.stem for p in (ROOT / "specs").glob("*.net"))
# The Inception family (24M-56M parameters) is checked once each in tests/test_family.py.
LIGHT = [s for s in SPECS if not s.startswith("inception_")]
# The aux heads of the canonical spec need 96x96 (a 5x5 pool at 1/16 of the input).
INPUTS = {
    "googlenet_v1": (3, 96, 96),
    "googlenet_lrn": (3, 96, 96),
    "googlenet_torchvision": (3, 64, 64),
}
TOLERANCE = {"rtol": 1e-4, "atol": 1e-4}


def load(spec: str, **params) -> ir.Network:
    return compiler.load(ROOT / "specs" / f"{spec}.net", INPUTS.get(spec), **params)


def perturb(module: torch.nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = m.weight[0].numel()
                gain = 2.0 if isinstance(m, torch.nn.Conv2d) else 1.0
                m.weight.normal_(0, math.sqrt(gain / fan_in), generator=g)
                if m.bias is not None:
                    m.bias.uniform_(-0.1, 0.1, generator=g)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.2, 0.2, generator=g)


class Trained:
    """The unoptimised model of a spec, perturbed: its checkpoint, an input, its eval output."""

    def __init__(self, spec: str):
        self.net = load(spec)
        module = build_module(self.net)
        perturb(module)
        module.eval()
        self.state_dict = module.state_dict()
        self.x = torch.randn(2, *self.net.input_shape, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            self.expected = module(self.x)

    def deploy(self, net: ir.Network) -> tuple[torch.Tensor, list[str], torch.nn.Module]:
        module = build_module(net, deploy=True).eval()
        dropped = module.load_training_checkpoint(self.state_dict)
        with torch.inference_mode():
            return module(self.x), dropped, module


_trained: dict[str, Trained] = {}


def trained(spec: str) -> Trained:
    if spec not in _trained:
        _trained[spec] = Trained(spec)
    return _trained[spec]


def aux_keys(t: Trained) -> list[str]:
    heads = {a.name for a in t.net.active_aux()}
    return [k for k in t.state_dict if k.split(".")[0] in heads]


# -- outputs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", LIGHT)
def test_optimised_deploy_matches_the_training_build(spec):
    t = trained(spec)
    # The outputs depend on the input, far beyond the tolerance.
    assert (t.expected[0] - t.expected[1]).abs().max() > 0.05
    out, dropped, module = t.deploy(passes.optimise(t.net))
    torch.testing.assert_close(out, t.expected, **TOLERANCE)
    assert dropped == aux_keys(t)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules())
    assert any(isinstance(m, runtime.FusedConv2d) for m in module.modules())


ALONE = ["googlenet_torchvision", "googlenet_v1", "googlenet_cifar"]


@pytest.mark.parametrize("name", list(passes.PASSES))
@pytest.mark.parametrize("spec", ALONE)
def test_each_pass_alone_keeps_the_outputs(spec, name):
    t = trained(spec)
    net = passes.optimise(t.net, disable=set(passes.PASSES) - {name})
    assert net.passes == (name,)
    out, _, module = t.deploy(net)
    torch.testing.assert_close(out, t.expected, **TOLERANCE)
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    if name == "channels_last":
        assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


def test_one_deploy_module_runs_in_several_threads_at_once():
    import threading

    t = trained("googlenet_torchvision")
    _, _, module = t.deploy(passes.optimise(t.net))
    inputs = [torch.randn(2, *t.net.input_shape) for _ in range(4)]
    with torch.inference_mode():
        expected = [module(x) for x in inputs]
    results: dict[int, list[torch.Tensor]] = {}

    def run(i: int) -> None:
        with torch.inference_mode():
            results[i] = [module(inputs[i]) for _ in range(3)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, outs in results.items():
        for out in outs:
            torch.testing.assert_close(out, expected[i], rtol=0, atol=0)


def test_other_batch_sizes():
    t = trained("googlenet_torchvision")
    _, _, module = t.deploy(passes.optimise(t.net))
    x = torch.randn(5, *t.net.input_shape)
    with torch.inference_mode():
        whole = module(x)
        torch.testing.assert_close(module(x[:1]), whole[:1], **TOLERANCE)


# -- the IR after the passes ------------------------------------------------------------------

# Parameters of the deploy build: each folded batch norm's 2 x C go, a bias-less
# conv gains C for its bias.
DEPLOY_PARAMS = {
    "googlenet_torchvision": (6_624_904, 6_617_624),
    "googlenet_v1": (6_998_552, 6_998_552),
    "googlenet_cifar": (6_258_500, 6_242_692),
}


@pytest.mark.parametrize("spec", SPECS)
def test_shapes_params_and_macs_stay_consistent(spec):
    net = load(spec)
    opt = passes.optimise(net)
    passes.verify(opt)  # every node re-inferred
    assert opt.out_shape == net.out_shape
    assert ir.total_macs(opt.body) == ir.total_macs(net.body)
    assert ir.Network.model_validate_json(opt.model_dump_json()) == opt
    folded = sum(
        s.out_channels * (2 if s.bias else 1)
        for _, layer in ir.layers(opt.body)
        if layer.op.op == "fused_conv"
        for s in layer.op.sources
        if s.bn
    )
    assert ir.total_params(opt.body) == ir.total_params(net.body) - folded
    if spec in DEPLOY_PARAMS:
        assert (ir.total_params(net.body), ir.total_params(opt.body)) == DEPLOY_PARAMS[spec]
    with torch.device("meta"):
        assert count_parameters(build_module(opt, deploy=True)) == ir.total_params(opt.body)


def test_inception_becomes_a_fork():
    net = passes.optimise(compiler.load(ROOT / "specs" / "googlenet_torchvision.net"))
    block = next(n for n in net.body if n.name == "inception3a")
    (fork,) = block.body
    assert isinstance(fork, ir.Fork)
    head = fork.head
    assert (head.name, head.op.relu, head.op.split) == (
        "branch1_branch2_branch3",
        True,
        (64, 96, 16),
    )
    assert [(s.conv, s.bn, s.eps, s.bias) for s in head.op.sources] == [
        (f"inception3a.{b}.conv", f"inception3a.{b}.bn", 1e-3, False)
        for b in ("branch1", "branch2.0", "branch3.0")
    ]
    assert {k: to_python(v) for k, v in head.exprs.items()} == {
        "in_channels": "in_channels",
        "out_channels": "ch1x1 + ch3x3red + ch5x5red",
    }
    assert [(b.name, b.piece) for b in fork.branches] == [
        ("branch1", 0),
        ("branch2", 1),
        ("branch3", 2),
        ("branch4", None),
    ]
    assert fork.branches[0].node is None
    branch2 = fork.branches[1].node
    assert [item.name for item in branch2.items] == ["1"]  # names kept: state_dict keys kept
    assert branch2.in_shape == (96, 28, 28) and branch2.items[0].in_channels_expr == ref("ch3x3red")


def test_passes_leave_their_input_alone_and_run_once():
    net = load("googlenet_torchvision")
    before = net.model_dump_json()
    once = passes.optimise(net)
    assert net.model_dump_json() == before
    for name, run in passes.PASSES.items():
        if name != "drop_unused":  # that one records what it dropped
            again = run(once)
            assert again.body == once.body, name


def test_aux_taps_are_not_fused_away():
    """Without drop_unused, the aux heads stay: their taps keep their names and outputs."""
    net = passes.optimise(load("googlenet_v1"), disable={"drop_unused"})
    assert [a.tap for a in net.aux] == ["inception4a", "inception4d"]
    assert {"inception4a", "inception4d"} <= {n.name for n in net.body}


def test_onnx_target_leaves_out_what_does_not_pay_there():
    net = load("googlenet_torchvision")
    assert passes.optimise(net, target="onnx").passes == ("drop_unused", "fold_bn", "fuse_relu")
    with pytest.raises(ValueError, match="unknown target tflite; targets: runtime, onnx"):
        passes.optimise(net, target="tflite")


def test_unknown_pass():
    with pytest.raises(ValueError, match="unknown pass fold_nb"):
        passes.optimise(load("googlenet_v1"), disable={"fold_nb"})


# -- checkpoints ---------------------------------------------------------------------------------


def test_checkpoint_keys_missing_or_left_over_are_errors():
    t = trained("googlenet_torchvision")
    module = build_module(passes.optimise(t.net), deploy=True)
    missing = {k: v for k, v in t.state_dict.items() if k != "inception3a.branch2.0.bn.running_var"}
    with pytest.raises(
        CheckpointError, match=r"missing keys: inception3a\.branch2\.0\.bn\.running_var$"
    ):
        module.load_training_checkpoint(missing)
    extra = {**t.state_dict, "inception3a.branch5.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"unexpected keys: inception3a\.branch5\.weight$"):
        module.load_training_checkpoint(extra)
    # A deploy state_dict is no training checkpoint: eight keys of each kind are named.
    with pytest.raises(
        CheckpointError,
        match=r"missing keys: conv1\.bn\.weight, (\S+, ){6}\S+ and 247 more; "
        r"unexpected keys: conv1\.conv\.bias, (\S+, ){6}\S+ and 40 more$",
    ):
        module.load_training_checkpoint(module.state_dict())
    # Folding does not need num_batches_tracked: older checkpoints lack it.
    old = {k: v for k, v in t.state_dict.items() if not k.endswith("num_batches_tracked")}
    module.load_training_checkpoint(old)


def test_unoptimised_module_loads_with_aux_heads():
    t = trained("googlenet_v1")
    module = build_module(t.net)
    assert module.load_training_checkpoint(t.state_dict) == []
    deploy = build_module(t.net, deploy=True)
    assert deploy.load_training_checkpoint(t.state_dict) == aux_keys(t)


# -- summary and CLI -------------------------------------------------------------------------------


def summary(capsys, *args: str) -> str:
    spec = str(ROOT / "specs" / "googlenet_torchvision.net")
    assert main(["summary", spec, "--input", "3x64x64", *args]) == 0
    return capsys.readouterr().out


def test_summary_deploy_shows_what_was_fused(capsys):
    out = summary(capsys, "--deploy")
    assert "deploy build" in out
    assert "deploy passes: drop_unused, fold_bn, fuse_relu, fuse_siblings, channels_last\n" in out
    assert (
        "dropped 1 dropout layer; folded 57 batch norms; fused 57 ReLUs; "
        "fused 27 sibling 1x1 convolutions into 9\n"
    ) in out
    assert "aux heads dropped: aux1, aux2\n" in out
    assert (
        "inception3a.branch1_branch2_branch3 <- branch1.conv, branch2.0.conv, branch3.0.conv "
        "(batch norms folded), split 64/96/16\n"
    ) in out
    assert out.count("conv 1x1 +bn +relu (3 fused)") == 9
    assert "batchnorm" not in out and "dropout 0.2" not in out and "<relu>" not in out
    assert "6,617,624" in out  # the deploy parameter count


# What the summary shows only with the pass off, and only with it on.
SWITCHES = {
    "drop_unused": (["dropout 0.2", "aux heads (train only)"], ["aux heads dropped"]),
    "fold_bn": (["batchnorm"], ["+bn", "folded 57 batch norms"]),
    "fuse_relu": (["<relu>"], ["+relu", "fused 57 ReLUs"]),
    "fuse_siblings": (
        ["inception3a.branch1.conv", "inception3a.branch2.0.conv"],
        ["(3 fused)", "branch1_branch2_branch3 <-"],
    ),
    "channels_last": ([], []),
}


@pytest.mark.parametrize("name", list(passes.PASSES))
def test_each_cli_switch_turns_its_pass_off(capsys, name):
    flag = "--no-" + name.replace("_", "-")
    out = summary(capsys, "--deploy", flag)
    ran = [p for p in passes.PASSES if p != name]
    assert f"deploy passes: {', '.join(ran)} (off: {name})\n" in out
    full = summary(capsys, "--deploy")
    only_off, only_on = SWITCHES[name]
    for text in only_off:
        assert text in out and text not in full, text
    for text in only_on:
        assert text in full and text not in out, text


def test_switch_without_deploy_is_an_error(capsys):
    spec = str(ROOT / "specs" / "googlenet_v1.net")
    assert main(["summary", spec, "--no-fold-bn"]) == 2
    assert "--no-fold-bn switches off a deploy pass: it needs --deploy" in capsys.readouterr().err
