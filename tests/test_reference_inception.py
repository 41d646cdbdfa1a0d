"""Sanity tests for the Inception-family twins in tests/reference_inception.py.

Parameter counts and output shapes are taken on the ``meta`` device (no memory, no
compute); one real forward pass runs at the smallest input the models take (75x75).
bench/check_references.py checks the twins against torchvision and timm themselves.
"""

import pytest
import torch
from torch import nn

try:
    from reference_inception import InceptionResNetV2, InceptionV3Torchvision, InceptionV4
except ImportError:  # tests/ collected as a package
    from tests.reference_inception import InceptionResNetV2, InceptionV3Torchvision, InceptionV4


def build_meta(cls, **kwargs):
    with torch.device("meta"):
        return cls(**kwargs)


PARAM_COUNTS = [
    (InceptionV3Torchvision, {}, 27_161_264, 580),
    (InceptionV3Torchvision, {"aux_logits": False}, 23_834_568, 566),
    (InceptionV3Torchvision, {"num_classes": 10}, 24_371_444, 580),
    (InceptionV4, {}, 42_679_816, 896),
    (InceptionResNetV2, {}, 55_843_464, 1306),
]


@pytest.mark.parametrize(
    "cls,kwargs,expected,keys",
    PARAM_COUNTS,
    ids=[f"{c.__name__}-{k}" for c, k, *_ in PARAM_COUNTS],
)
def test_param_count(cls, kwargs, expected, keys):
    model = build_meta(cls, **kwargs)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert len(model.state_dict()) == keys


def test_state_dict_contract_spot_checks():
    v3 = build_meta(InceptionV3Torchvision).state_dict()
    assert v3["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert v3["Mixed_5b.branch1x1.conv.weight"].shape == (64, 192, 1, 1)
    assert v3["Mixed_6b.branch7x7_2.conv.weight"].shape == (128, 128, 1, 7)
    assert v3["Mixed_7b.branch3x3_2b.bn.running_var"].shape == (384,)
    assert v3["AuxLogits.conv1.conv.weight"].shape == (768, 128, 5, 5)
    assert v3["AuxLogits.fc.weight"].shape == (1000, 768)
    assert "Conv2d_1a_3x3.conv.bias" not in v3

    v4 = build_meta(InceptionV4).state_dict()
    assert v4["features.3.conv.conv.weight"].shape == (96, 64, 3, 3)
    assert v4["features.9.branch3.1.conv.weight"].shape == (96, 384, 1, 1)
    assert v4["features.17.branch2.4.conv.weight"].shape == (256, 224, 1, 7)
    assert v4["features.21.branch2_3b.bn.weight"].shape == (256,)
    assert v4["last_linear.weight"].shape == (1000, 1536)

    irv2 = build_meta(InceptionResNetV2)
    sd = irv2.state_dict()
    assert sd["repeat.9.conv2d.weight"].shape == (320, 128, 1, 1)
    assert sd["repeat.9.conv2d.bias"].shape == (320,)
    assert sd["repeat_1.19.branch1.2.conv.weight"].shape == (192, 160, 7, 1)
    assert sd["repeat_2.8.conv2d.weight"].shape == (2080, 448, 1, 1)
    assert sd["block8.branch1.1.conv.weight"].shape == (224, 192, 1, 3)
    assert sd["classif.weight"].shape == (1000, 1536)
    assert [m.scale for m in irv2.repeat] == [0.17] * 10
    assert [m.scale for m in irv2.repeat_1] == [0.10] * 20
    assert irv2.block8.relu is None and isinstance(irv2.repeat_2[8].relu, nn.ReLU)
    avgpools = [m for m in irv2.modules() if isinstance(m, nn.AvgPool2d)]
    assert avgpools and not any(m.count_include_pad for m in avgpools)


@pytest.mark.parametrize("cls", [InceptionV3Torchvision, InceptionV4, InceptionResNetV2])
def test_meta_shapes_at_299(cls):
    model = build_meta(cls, num_classes=10).eval()
    assert model(torch.empty(2, 3, 299, 299, device="meta")).shape == (2, 10)


def test_v3_train_mode_returns_main_and_aux():
    model = build_meta(InceptionV3Torchvision, num_classes=7).train()
    main, aux = model(torch.empty(2, 3, 299, 299, device="meta"))
    assert main.shape == (2, 7) and aux.shape == (2, 7)
    no_aux = build_meta(InceptionV3Torchvision, num_classes=7, aux_logits=False).train()
    assert no_aux(torch.empty(2, 3, 299, 299, device="meta")).shape == (2, 7)


@torch.no_grad()
def test_v3_transform_input_at_75():
    torch.manual_seed(0)
    plain = InceptionV3Torchvision(aux_logits=False).eval()
    transformed = InceptionV3Torchvision(aux_logits=False, transform_input=True).eval()
    transformed.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(1, 3, 75, 75)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    y = transformed(x)
    assert y.shape == (1, 1000) and torch.isfinite(y).all()
    torch.testing.assert_close(y, plain((x * std + mean - 0.5) / 0.5), rtol=1e-4, atol=1e-5)
