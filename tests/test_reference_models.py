"""Sanity tests for the hand-written reference models in tests/reference_models.py.

Parameter counts are checked on the ``meta`` device (no memory, no compute); forward passes
use batch 1 (batch 2 in training mode) at each model's natural input size.
"""

import pytest
import torch
from torch import nn

try:
    from reference_models import (
        GoogLeNetCifar,
        GoogLeNetCifarShort,
        GoogLeNetCifarShort2,
        GoogLeNetD2L,
        GoogLeNetNaive,
        GoogLeNetTorchvision,
        GoogLeNetV1,
        count_params,
    )
except ImportError:  # tests/ collected as a package
    from tests.reference_models import (
        GoogLeNetCifar,
        GoogLeNetCifarShort,
        GoogLeNetCifarShort2,
        GoogLeNetD2L,
        GoogLeNetNaive,
        GoogLeNetTorchvision,
        GoogLeNetV1,
        count_params,
    )


def build_meta(cls, **kwargs):
    with torch.device("meta"):
        return cls(**kwargs)


# ---------------------------------------------------------------------------
# Parameter counts
# ---------------------------------------------------------------------------

PARAM_COUNTS = [
    (GoogLeNetV1, {}, 13_378_280),
    (GoogLeNetV1, {"aux_logits": False}, 6_998_552),
    (GoogLeNetCifar, {}, 6_258_500),
    (GoogLeNetCifar, {"num_classes": 10}, 6_166_250),
    (GoogLeNetCifarShort, {}, 5_271_652),
    (GoogLeNetCifarShort, {"num_classes": 10}, 5_179_402),
    (GoogLeNetCifarShort2, {}, 3_523_556),
    (GoogLeNetCifarShort2, {"num_classes": 10}, 3_431_306),
    (GoogLeNetNaive, {}, 65_736_148),
    (GoogLeNetNaive, {"num_classes": 10}, 65_291_098),
    (GoogLeNetTorchvision, {}, 13_004_888),
    (GoogLeNetTorchvision, {"aux_logits": False}, 6_624_904),
    (GoogLeNetD2L, {}, 5_977_530),
]


@pytest.mark.parametrize(
    "cls,kwargs,expected",
    PARAM_COUNTS,
    ids=[f"{c.__name__}-{k}" for c, k, _ in PARAM_COUNTS],
)
def test_param_count(cls, kwargs, expected):
    model = build_meta(cls, **kwargs)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert count_params(model) == expected


def test_naive_channel_growth():
    model = build_meta(GoogLeNetNaive)
    names = ["a3", "b3", "a4", "b4", "c4", "d4", "e4", "a5", "b5"]
    widths = [getattr(model, n).out_channels for n in names]
    assert widths == [416, 832, 1280, 1728, 2176, 2640, 3344, 4048, 4944]
    assert model.linear.in_features == 4944
    # the pool branch is a bare max pool: no projection, no parameters
    assert [type(m) for m in model.a3.b4] == [nn.MaxPool2d]


# ---------------------------------------------------------------------------
# state_dict contract spot checks
# ---------------------------------------------------------------------------


def test_state_dict_contract_spot_checks():
    v1 = build_meta(GoogLeNetV1).state_dict()
    assert v1["inception3a.branch3.1.conv.weight"].shape == (32, 16, 5, 5)
    assert v1["inception3a.branch4.1.conv.bias"].shape == (32,)
    assert v1["aux1.fc1.weight"].shape == (1024, 2048)
    assert v1["aux2.conv.conv.weight"].shape == (128, 528, 1, 1)
    assert v1["fc.weight"].shape == (1000, 1024)
    assert not any(
        k.startswith("aux") for k in build_meta(GoogLeNetV1, aux_logits=False).state_dict()
    )

    tv = build_meta(GoogLeNetTorchvision).state_dict()
    assert tv["inception3a.branch3.1.conv.weight"].shape == (32, 16, 3, 3)  # vision#906 quirk
    assert "inception3a.branch1.conv.bias" not in tv
    assert tv["inception3a.branch1.bn.num_batches_tracked"].shape == ()
    assert len(tv) == 364
    assert len(build_meta(GoogLeNetTorchvision, aux_logits=False).state_dict()) == 344

    cifar = build_meta(GoogLeNetCifar)
    sd = cifar.state_dict()
    assert sd["prelayer.0.weight"].shape == (192, 3, 3, 3)
    assert sd["a3.b3.3.weight"].shape == (32, 16, 3, 3)
    assert sd["a3.b3.6.weight"].shape == (32, 32, 3, 3)
    assert sd["a3.b4.1.weight"].shape == (32, 192, 1, 1)
    assert sd["linear.weight"].shape == (100, 1024)
    assert all(m.eps == 1e-5 for m in cifar.modules() if isinstance(m, nn.BatchNorm2d))
    assert isinstance(cifar.dropout, nn.Dropout2d)

    d2l = build_meta(GoogLeNetD2L).state_dict()
    assert d2l["b1.0.weight"].shape == (64, 1, 7, 7)
    assert d2l["b2.2.weight"].shape == (192, 64, 3, 3)
    assert d2l["b3.0.p3_2.weight"].shape == (32, 16, 5, 5)
    assert d2l["b5.1.p4_2.weight"].shape == (128, 832, 1, 1)
    assert d2l["fc.weight"].shape == (10, 1024)


# ---------------------------------------------------------------------------
# Forward passes
# ---------------------------------------------------------------------------


@torch.no_grad()
def test_d2l_block_shapes():
    model = GoogLeNetD2L().eval()
    x = torch.rand(1, 1, 96, 96)
    expected = {
        "b1": (1, 64, 24, 24),
        "b2": (1, 192, 12, 12),
        "b3": (1, 480, 6, 6),
        "b4": (1, 832, 3, 3),
        "b5": (1, 1024),
        "fc": (1, 10),
    }
    for name, shape in expected.items():
        x = getattr(model, name)(x)
        assert tuple(x.shape) == shape, name


FORWARD_CASES = [
    (GoogLeNetV1, {}, (3, 224, 224), 1000),
    (GoogLeNetD2L, {}, (1, 96, 96), 10),
    (GoogLeNetCifar, {}, (3, 32, 32), 100),
    (GoogLeNetCifarShort2, {"num_classes": 10}, (3, 32, 32), 10),
    (GoogLeNetNaive, {"num_classes": 10}, (3, 32, 32), 10),
    (GoogLeNetTorchvision, {}, (3, 224, 224), 1000),
]


@pytest.mark.parametrize(
    "cls,kwargs,input_shape,num_classes",
    FORWARD_CASES,
    ids=[c.__name__ for c, *_ in FORWARD_CASES],
)
@torch.no_grad()
def test_eval_forward_shape(cls, kwargs, input_shape, num_classes):
    torch.manual_seed(0)
    model = cls(**kwargs).eval()
    y = model(torch.randn(1, *input_shape))
    assert isinstance(y, torch.Tensor)
    assert tuple(y.shape) == (1, num_classes)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("cls", [GoogLeNetV1, GoogLeNetTorchvision])
@torch.no_grad()
def test_train_mode_returns_main_and_aux(cls):
    torch.manual_seed(0)
    model = cls(num_classes=7).train()
    out = model(torch.randn(2, 3, 224, 224))
    assert isinstance(out, tuple) and len(out) == 3
    assert all(tuple(t.shape) == (2, 7) for t in out)

    no_aux = cls(num_classes=7, aux_logits=False).train()
    y = no_aux(torch.randn(2, 3, 224, 224))
    assert isinstance(y, torch.Tensor) and tuple(y.shape) == (2, 7)


def test_short_variants_drop_modules_of_stage_4():
    short = build_meta(GoogLeNetCifarShort).state_dict()
    short2 = build_meta(GoogLeNetCifarShort2).state_dict()
    modules = {k.split(".")[0] for k in short}
    assert modules == {"prelayer", "a3", "b3", "a4", "d4", "e4", "a5", "b5", "linear"}
    assert {k.split(".")[0] for k in short2} == modules - {"d4", "e4"}
    # 4d reads 4a's 512 channels in both the full net and Short; in Short2 5a reads 4a's 512
    assert short["d4.b1.0.weight"].shape == (112, 512, 1, 1)
    assert short2["a5.b1.0.weight"].shape == (256, 512, 1, 1)
    assert short2["linear.weight"].shape == (100, 1024)


@torch.no_grad()
def test_train_mode_cifar_variants_return_tensor():
    model = GoogLeNetCifar(num_classes=10).train()
    y = model(torch.randn(2, 3, 32, 32))
    assert isinstance(y, torch.Tensor) and tuple(y.shape) == (2, 10)


@torch.no_grad()
def test_torchvision_transform_input():
    torch.manual_seed(0)
    plain = GoogLeNetTorchvision(aux_logits=False).eval()
    transformed = GoogLeNetTorchvision(aux_logits=False, transform_input=True).eval()
    transformed.load_state_dict(plain.state_dict(), strict=True)

    x = torch.randn(1, 3, 224, 224)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x_manual = (x * std + mean - 0.5) / 0.5
    torch.testing.assert_close(transformed(x), plain(x_manual), rtol=1e-4, atol=1e-5)


def test_v1_init_weights():
    torch.manual_seed(0)
    model = GoogLeNetV1(num_classes=10, aux_logits=False, init_weights=True)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            assert torch.count_nonzero(m.bias) == 0
        elif isinstance(m, nn.Linear):
            assert torch.count_nonzero(m.bias) == 0
            assert m.weight.std().item() == pytest.approx(0.01, rel=0.1)
    # kaiming fan_out: std = sqrt(2 / (out_channels * k * k))
    w = model.inception3a.branch3[1].conv.weight  # 32 x 16 x 5 x 5
    assert w.std().item() == pytest.approx((2 / (32 * 25)) ** 0.5, rel=0.1)
