"""Every shipped spec, built and run: inferred shapes, parameters and MACs
against the real modules, and the runtime modules against the hand-written
reference models of ``tests/reference_models.py`` (same ``state_dict`` keys
and shapes, weights loaded with ``strict=True``, identical outputs).

Forward passes that only check shapes run on the ``meta`` device at each
spec's own input (no compute), and once more on the CPU at a small input.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import compiler
from compiler import ir
from compiler.backends.runtime import NetworkModule, build_module

try:
    import reference_inception as family
    import reference_models as ref
except ImportError:  # tests/ collected as a package
    from tests import reference_inception as family
    from tests import reference_models as ref

SPECS = Path(__file__).resolve().parent.parent / "specs"
SHIPPED = sorted(p.stem for p in SPECS.glob("*.net"))

# A small input that every spec still accepts, for the CPU runs.
SMALL = {
    "googlenet_v1": (3, 112, 112),
    "googlenet_lrn": (3, 112, 112),
    "googlenet_torchvision": (3, 112, 112),
    "googlenet_d2l": (1, 96, 96),
    "googlenet_cifar": (3, 16, 16),
    "googlenet_cifar_short": (3, 16, 16),
    "googlenet_cifar_short2": (3, 16, 16),
    "googlenet_naive": (3, 8, 8),
    # the aux head needs a 17x17 grid at Mixed_6e: 299 is the smallest input
    "inception_v3_torchvision": (3, 299, 299),
    "inception_v4": (3, 75, 75),
    "inception_resnet_v2": (3, 75, 75),
}


def load(name: str, input_shape=None, **params) -> ir.Network:
    return compiler.load(SPECS / f"{name}.net", input_shape, **params)


def test_every_shipped_spec_is_covered():
    assert SHIPPED == sorted(SMALL)


# -- inferred shapes against the real tensors -----------------------------------------


def expected_shapes(net: ir.Network) -> dict[str, ir.Shape]:
    """IR path -> inferred output shape, for every node that is a module."""
    nodes = list(ir.walk(net.body))
    for head in net.active_aux():
        nodes += list(ir.walk((head.head,)))
    return {
        path: node.out_shape
        for path, node, _ in nodes
        if not isinstance(node, ir.Concat) and node.name is not None
    }


def hooked_forward(module: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Module name -> output shape (batch dimension dropped) in one forward pass."""
    seen: dict[str, tuple[int, ...]] = {}

    def hook(name):
        return lambda mod, args, out: seen.__setitem__(name, tuple(out.shape[1:]))

    handles = [m.register_forward_hook(hook(n)) for n, m in module.named_modules() if n]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize(
    "name,device",
    [(name, "meta") for name in SHIPPED]
    + [(name, "cpu") for name in SHIPPED if not name.startswith("inception_")],
)
def test_inferred_shapes_match_every_module(name, device):
    net = load(name, None if device == "meta" else SMALL[name])
    with torch.device(device):
        module = build_module(net).train()  # train: the aux heads run too
        x = torch.randn(2, *net.input_shape)
    seen = hooked_forward(module, x)
    expected = expected_shapes(net)
    assert set(seen) == set(expected)  # the module tree is the IR's named nodes
    assert seen == expected
    assert len(expected) > 100


@pytest.mark.parametrize("name", SHIPPED)
def test_param_totals_match_the_modules(name):
    net = load(name)
    body = ir.total_params(net.body)
    aux = sum(ir.total_params((head.head,)) for head in net.active_aux())
    with torch.device("meta"):
        full = build_module(net)
        deploy = build_module(net, deploy=True)
    assert sum(p.numel() for p in full.parameters()) == body + aux
    assert sum(p.numel() for p in deploy.parameters()) == body
    for path, layer in ir.layers(net.body):
        if layer.name is None:  # a functional call: weightless
            assert layer.params == 0
        else:
            module = full.get_submodule(path)
            assert layer.params == sum(p.numel() for p in module.parameters())


PARAM_COUNTS = [
    ("googlenet_v1", {}, 6_998_552, 13_378_280),
    ("googlenet_v1", {"aux": False}, 6_998_552, 6_998_552),
    ("googlenet_lrn", {}, 6_998_552, 13_378_280),
    ("googlenet_torchvision", {}, 6_624_904, 13_004_888),
    ("googlenet_torchvision", {"aux": False}, 6_624_904, 6_624_904),
    ("googlenet_cifar", {}, 6_258_500, 6_258_500),
    ("googlenet_cifar", {"num_classes": 10}, 6_166_250, 6_166_250),
    ("googlenet_cifar_short", {}, 5_271_652, 5_271_652),
    ("googlenet_cifar_short", {"num_classes": 10}, 5_179_402, 5_179_402),
    ("googlenet_cifar_short2", {}, 3_523_556, 3_523_556),
    ("googlenet_cifar_short2", {"num_classes": 10}, 3_431_306, 3_431_306),
    ("googlenet_naive", {}, 65_736_148, 65_736_148),
    ("googlenet_naive", {"num_classes": 10}, 65_291_098, 65_291_098),
    ("googlenet_d2l", {}, 5_977_530, 5_977_530),
    ("inception_v3_torchvision", {}, 23_834_568, 27_161_264),
    ("inception_v3_torchvision", {"aux": False}, 23_834_568, 23_834_568),
    ("inception_v3_torchvision", {"num_classes": 10}, 21_806_058, 24_371_444),
    ("inception_v4", {}, 42_679_816, 42_679_816),
    ("inception_resnet_v2", {}, 55_843_464, 55_843_464),
]


@pytest.mark.parametrize(
    "name,params,body,total", PARAM_COUNTS, ids=[f"{n}-{p}" for n, p, _, _ in PARAM_COUNTS]
)
def test_exact_parameter_counts(name, params, body, total):
    net = load(name, **params)
    assert ir.total_params(net.body) == body
    assert body + sum(ir.total_params((h.head,)) for h in net.active_aux()) == total
    with torch.device("meta"):
        module = build_module(net).train()
        deploy = build_module(net, deploy=True)
    assert sum(p.numel() for p in module.parameters()) == total
    assert sum(p.numel() for p in deploy.parameters()) == body


def test_d2l_block_outputs():
    net = load("googlenet_d2l")
    outs = {node.name: node.out_shape for node in net.body}
    assert [outs[b] for b in ("b1", "b2", "b3", "b4", "b5", "fc")] == [
        (64, 24, 24),
        (192, 12, 12),
        (480, 6, 6),
        (832, 3, 3),
        (1024,),
        (10,),
    ]


def test_lrn_sits_where_the_paper_puts_it():
    net = load("googlenet_lrn")
    names = [node.name for node in net.body]
    assert names.index("lrn1") == names.index("maxpool1") + 1
    assert names.index("lrn2") == names.index("conv3") + 1
    for node in net.body:
        if node.name in ("lrn1", "lrn2"):
            assert node.op == ir.LRN(size=5, alpha=1e-4, beta=0.75, k=1.0)
    # no weights, so googlenet_v1 checkpoints fit it; lrn=false drops both
    off = load("googlenet_lrn", lrn=False)
    with torch.device("meta"):
        keys = {k: v.shape for k, v in build_module(off).state_dict().items()}
        v1 = {k: v.shape for k, v in build_module(load("googlenet_v1")).state_dict().items()}
    assert keys == v1
    assert "lrn1" not in dict(build_module(off, deploy=True).named_children())


# -- MACs ---------------------------------------------------------------------------


def test_googlenet_v1_macs_match_an_independent_count():
    """conv: weight elements x output H x W; linear: in x out, from the live modules."""
    net = load("googlenet_v1")
    with torch.device("meta"):
        module = build_module(net).train()
    counted: dict[str, int] = {}

    def hook(name):
        def count(mod, args, out):
            if isinstance(mod, nn.Conv2d):
                counted[name] = mod.weight.numel() * out.shape[2] * out.shape[3]
            elif isinstance(mod, nn.Linear):
                counted[name] = mod.in_features * mod.out_features

        return count

    for name, mod in module.named_modules():
        mod.register_forward_hook(hook(name))
    with torch.no_grad():
        module(torch.empty(1, 3, 224, 224, device="meta"))
    aux_names = {head.name for head in net.aux}
    body = sum(v for k, v in counted.items() if k.split(".")[0] not in aux_names)
    aux = sum(v for k, v in counted.items() if k.split(".")[0] in aux_names)
    assert body == ir.total_macs(net.body) == 1_582_671_872
    assert aux == sum(ir.total_macs((h.head,)) for h in net.aux) == 4_169_728 + 4_202_496
    assert counted["conv1.conv"] == 64 * 3 * 7 * 7 * 112 * 112
    assert counted["fc"] == 1024 * 1000
    by_path = {path: layer.macs for path, layer in ir.layers(net.body) if layer.name}
    assert all(by_path[k] == v for k, v in counted.items() if k in by_path)
    # the paper's Table 1, in millions ("ops", rounded either way); its 54M for 5a
    # is 51.08M by its own widths
    table1 = {"conv1": 118, "inception3a": 128, "inception3b": 304, "inception4a": 73,
              "inception4b": 88, "inception4c": 100, "inception4d": 119, "inception4e": 170,
              "inception5b": 71, "fc": 1}
    stages = {node.name: ir.total_macs((node,)) for node in net.body}
    assert all(abs(stages[k] / 1e6 - millions) < 1 for k, millions in table1.items())
    assert abs((stages["conv2"] + stages["conv3"]) / 1e6 - 360) < 1


# -- against the reference models ------------------------------------------------------


def state_shapes(module: nn.Module) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in module.state_dict().items()}


def perturb(module: nn.Module, seed: int = 0) -> None:
    """Weights whose effect shows: random BN statistics and affine terms."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.fixture
def no_dropout(monkeypatch):
    """Dropout off in training mode, for modules and functional calls alike."""
    monkeypatch.setattr(F, "dropout", lambda x, p=0.5, training=True, inplace=False: x)
    monkeypatch.setattr(F, "dropout2d", lambda x, p=0.5, training=True, inplace=False: x)


def compare(ours: NetworkModule, theirs: nn.Module, x: torch.Tensor, aux: bool) -> None:
    """Identical outputs in eval, and in train mode (dropout off) with aux heads."""
    ours.eval(), theirs.eval()
    with torch.no_grad():
        out, expected = ours(x), theirs(x)
    assert isinstance(out, torch.Tensor)
    assert torch.equal(out, expected)
    assert not torch.equal(out[0], out[1])  # the output depends on the input
    ours.train(), theirs.train()
    with torch.no_grad():
        out, expected = ours(x), theirs(x)
    if aux:
        main, aux2, aux1 = expected
        assert out._fields == ("main", "aux1", "aux2")
        assert torch.equal(out.main, main)
        assert torch.equal(out.aux1, aux1)
        assert torch.equal(out.aux2, aux2)
        assert not torch.equal(out.aux1, out.aux2)
    else:
        assert torch.equal(out, expected)
    return out


def built_like(name: str, theirs: nn.Module, **params) -> NetworkModule:
    """Our module for a spec, holding a copy of the reference's weights (built on
    the meta device: its own initialisation would be overwritten anyway)."""
    with torch.device("meta"):
        ours = compiler.build(SPECS / f"{name}.net", **params)
    assert state_shapes(ours) == state_shapes(theirs)
    state = {k: v.clone() for k, v in theirs.state_dict().items()}
    ours.load_state_dict(state, strict=True, assign=True)
    return ours


def test_googlenet_v1_matches_the_reference(no_dropout):
    torch.manual_seed(0)
    theirs = ref.GoogLeNetV1()
    ours = compiler.build(SPECS / "googlenet_v1.net")
    assert state_shapes(ours) == state_shapes(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    outputs = compare(ours, theirs, torch.randn(2, 3, 224, 224), aux=True)
    # the aux loss: cross-entropy of the main output plus 0.3 x each head's
    target = torch.tensor([3, 7])
    expected = F.cross_entropy(outputs.main, target) + 0.3 * (
        F.cross_entropy(outputs.aux1, target) + F.cross_entropy(outputs.aux2, target)
    )
    assert torch.allclose(ours.loss(outputs, target), expected)
    assert ours.aux_weights == {"aux1": 0.3, "aux2": 0.3}


def test_googlenet_v1_deploy_and_no_aux():
    with torch.device("meta"):
        deploy = compiler.build(SPECS / "googlenet_v1.net", deploy=True).train()
        no_aux = compiler.build(SPECS / "googlenet_v1.net", aux=False).train()
        theirs = ref.GoogLeNetV1(aux_logits=False)
    for module in (deploy, no_aux):
        assert state_shapes(module) == state_shapes(theirs)
        out = module(torch.empty(2, 3, 224, 224, device="meta"))
        assert isinstance(out, torch.Tensor) and out.shape == (2, 1000)


def test_googlenet_v1_initialisation():
    torch.manual_seed(0)
    module = compiler.build(SPECS / "googlenet_v1.net")
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    assert all(torch.count_nonzero(m.bias) == 0 for m in convs + linears)
    conv = module.inception3a.branch3[1].conv  # 5x5, 32 out: fan_out 800
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 800), rel=0.05)
    assert module.fc.weight.std().item() == pytest.approx(0.01, rel=0.05)


@pytest.mark.parametrize("transform_input", [False, True])
def test_googlenet_torchvision_matches_the_reference(no_dropout, transform_input):
    """Its aux heads pool adaptively, so a 112 x 112 input keeps this quick."""
    torch.manual_seed(1)
    theirs = ref.GoogLeNetTorchvision(transform_input=transform_input)
    perturb(theirs)
    ours = built_like(
        "googlenet_torchvision", theirs, input_shape=(3, 112, 112), transform_input=transform_input
    )
    compare(ours, theirs, torch.randn(2, 3, 112, 112), aux=True)


@pytest.mark.parametrize(
    "name,cls,size",
    [
        ("googlenet_cifar", ref.GoogLeNetCifar, 32),
        ("googlenet_cifar_short", ref.GoogLeNetCifarShort, 16),
        ("googlenet_cifar_short2", ref.GoogLeNetCifarShort2, 16),
        ("googlenet_naive", ref.GoogLeNetNaive, 8),
    ],
)
def test_cifar_variants_match_the_reference(no_dropout, name, cls, size):
    torch.manual_seed(3)
    theirs = cls()
    perturb(theirs)
    ours = built_like(name, theirs, input_shape=(3, size, size))
    compare(ours, theirs, torch.randn(2, 3, size, size), aux=False)


def test_d2l_matches_the_reference_mxnet_edition():
    """Same shapes and count as the PyTorch edition; same outputs as the MXNet one."""
    torch.manual_seed(4)
    ours = compiler.build(SPECS / "googlenet_d2l.net")
    pytorch_edition = ref.GoogLeNetD2L()
    assert sum(p.numel() for p in ours.parameters()) == ref.count_params(pytorch_edition)
    assert sorted(state_shapes(ours).values()) == sorted(state_shapes(pytorch_edition).values())

    theirs = ref.GoogLeNetD2L(b2_relu=False)
    # their keys say p2_1, ours p2.0: the same tensors in the same order
    pairs = list(zip(theirs.state_dict().items(), ours.state_dict().items(), strict=True))
    assert all(t.shape == o.shape for (_, t), (_, o) in pairs)
    ours.load_state_dict({k: t for (_, t), (k, _) in pairs}, strict=True)
    x = torch.randn(2, 1, 96, 96)
    with torch.no_grad():
        out, expected = ours.eval()(x), theirs.eval()(x)
        assert torch.equal(out, expected)
        assert not torch.equal(out[0], out[1])
        assert not torch.equal(out, ref.GoogLeNetD2L().eval()(x))  # the b2 ReLUs matter


# -- the Inception family beyond v1 (tests/reference_inception.py) ----------------------------


@pytest.mark.parametrize("transform_input", [False, True])
def test_inception_v3_matches_torchvision_in_eval(transform_input):
    """At 75 x 75, the smallest input it takes; the aux head (which needs 299) is off."""
    torch.manual_seed(5)
    theirs = family.InceptionV3Torchvision(aux_logits=False, transform_input=transform_input)
    perturb(theirs)
    ours = built_like(
        "inception_v3_torchvision",
        theirs,
        input_shape=(3, 75, 75),
        aux=False,
        transform_input=transform_input,
    )
    ours.eval(), theirs.eval()
    x = torch.randn(2, 3, 75, 75)
    with torch.no_grad():
        out, expected = ours(x), theirs(x)
    assert torch.equal(out, expected) and not torch.equal(out[0], out[1])


def test_inception_v3_matches_torchvision_in_train_with_aux(no_dropout):
    torch.manual_seed(6)
    theirs = family.InceptionV3Torchvision(num_classes=10)
    perturb(theirs)
    ours = built_like("inception_v3_torchvision", theirs, num_classes=10)
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    ours.train(), theirs.train()
    x = torch.randn(2, 3, 299, 299)
    with torch.no_grad():
        out, (main, aux) = ours(x), theirs(x)
    assert out._fields == ("main", "AuxLogits")
    assert torch.equal(out.main, main) and torch.equal(out.AuxLogits, aux)
    assert ours.aux_weights == {"AuxLogits": 0.4}


@pytest.mark.parametrize(
    "name,cls",
    [("inception_v4", family.InceptionV4), ("inception_resnet_v2", family.InceptionResNetV2)],
)
def test_timm_inceptions_match_the_reference(no_dropout, name, cls):
    torch.manual_seed(7)
    theirs = cls(num_classes=10)
    perturb(theirs)
    ours = built_like(name, theirs, input_shape=(3, 75, 75), num_classes=10)
    assert list(ours.state_dict()) == list(theirs.state_dict())  # timm's order too
    compare(ours, theirs, torch.randn(2, 3, 75, 75), aux=False)


def test_inception_resnet_v2_residuals_are_scaled_and_the_last_has_no_relu():
    net = load("inception_resnet_v2")
    by_name = {node.name: node for node in net.body}
    scales = {
        name: {item.body[0].scales for item in by_name[name].items}
        for name in ("repeat", "repeat_1", "repeat_2")
    }
    assert scales == {"repeat": {(1.0, 0.17)}, "repeat_1": {(1.0, 0.10)}, "repeat_2": {(1.0, 0.20)}}
    assert [len(by_name[n].items) for n in ("repeat", "repeat_1", "repeat_2")] == [10, 20, 9]
    last = by_name["block8"]
    assert last.body[0].join == "add" and last.body[0].scales == (1.0, 1.0)
    assert [n.name for n in last.body[1:]] == []  # no ReLU after the last residual
    assert [n.name for n in by_name["repeat_2"].items[0].body[1:]] == ["relu"]
