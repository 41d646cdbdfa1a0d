"""Hand-written PyTorch twins of the Inception family beyond v1, from the libraries' structure.

Plain PyTorch (only ``torch`` is imported), written after the libraries' source: the module
tree, hence the ``state_dict`` keys and shapes, is the library's, so a checkpoint of the
library model loads into the twin with ``strict=True`` and gives the same outputs.
``bench/check_references.py`` checks that once against the real libraries (run it with a
Python that has torchvision and timm); the tests check the twins against netc's specs.

Models
------
InceptionV3Torchvision  torchvision.models.inception_v3(aux_logits=True, init_weights=False)
InceptionV4             timm's inception_v4 (``features.N`` numbering, ``last_linear``)
InceptionResNetV2       timm's inception_resnet_v2 (scaled residuals, block8 without ReLU)
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["InceptionResNetV2", "InceptionV3Torchvision", "InceptionV4"]


class BasicConv2d(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d(eps=0.001) -> ReLU: torchvision's BasicConv2d and,
    key for key, timm's ConvNormAct (whose ReLU lives inside ``bn`` and has no state)."""

    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


# ---------------------------------------------------------------------------
# 1. torchvision Inception-v3: flat branch attributes (branch7x7_1, branch7x7_2, ...)
# ---------------------------------------------------------------------------


class InceptionA(nn.Module):
    def __init__(self, in_channels, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a)."""

    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        branch3x3 = self.branch3x3(x)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch3x3dbl, branch_pool], 1)


class InceptionC(nn.Module):
    """Factorised 7x7 convolutions: 1x7 then 7x1 (and the double version)."""

    def __init__(self, in_channels, channels_7x7):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = self.branch7x7dbl_1(x)
        branch7x7dbl = self.branch7x7dbl_3(self.branch7x7dbl_2(branch7x7dbl))
        branch7x7dbl = self.branch7x7dbl_5(self.branch7x7dbl_4(branch7x7dbl))
        branch_pool = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a)."""

    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = self.branch7x7x3_2(self.branch7x7x3_1(x))
        branch7x7x3 = self.branch7x7x3_4(self.branch7x7x3_3(branch7x7x3))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch7x7x3, branch_pool], 1)


class InceptionE(nn.Module):
    """Expanded filter bank: branches that split again into 1x3 and 3x1 halves."""

    def __init__(self, in_channels):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat(
            [self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1
        )
        branch_pool = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)


class InceptionAux(nn.Module):
    """avgpool 5/3 -> 1x1 conv 128 -> 5x5 conv 768 -> global average -> fc."""

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.conv0 = BasicConv2d(in_channels, 128, kernel_size=1)
        self.conv1 = BasicConv2d(128, 768, kernel_size=5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x):
        x = F.avg_pool2d(x, kernel_size=5, stride=3)  # N x 768 x 5 x 5
        x = self.conv1(self.conv0(x))  # N x 768 x 1 x 1
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return self.fc(torch.flatten(x, 1))


class InceptionV3Torchvision(nn.Module):
    """Structural twin of ``torchvision.models.inception_v3(aux_logits=True, init_weights=False)``
    for 3x299x299 inputs (27,161,264 parameters; 23,834,568 without the aux head).

    Training mode with ``aux_logits`` returns ``(x, aux)`` (torchvision: the namedtuple
    ``InceptionOutputs(logits, aux_logits)``); otherwise the logits.
    """

    def __init__(self, num_classes=1000, aux_logits=True, transform_input=False, dropout=0.5):
        super().__init__()
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.AuxLogits = InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(2048, num_classes)

    def _transform_input(self, x):
        """Map inputs normalised with ImageNet mean/std to the (x - 0.5) / 0.5 convention."""
        if self.transform_input:
            x_ch0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
            x_ch1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
            x_ch2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
            x = torch.cat((x_ch0, x_ch1, x_ch2), 1)
        return x

    def forward(self, x):
        x = self._transform_input(x)
        x = self.Conv2d_1a_3x3(x)  # N x 32 x 149 x 149
        x = self.Conv2d_2a_3x3(x)  # N x 32 x 147 x 147
        x = self.Conv2d_2b_3x3(x)  # N x 64 x 147 x 147
        x = self.maxpool1(x)  # N x 64 x 73 x 73
        x = self.Conv2d_3b_1x1(x)  # N x 80 x 73 x 73
        x = self.Conv2d_4a_3x3(x)  # N x 192 x 71 x 71
        x = self.maxpool2(x)  # N x 192 x 35 x 35
        x = self.Mixed_5b(x)  # N x 256 x 35 x 35
        x = self.Mixed_5c(x)  # N x 288 x 35 x 35
        x = self.Mixed_5d(x)
        x = self.Mixed_6a(x)  # N x 768 x 17 x 17
        x = self.Mixed_6b(x)
        x = self.Mixed_6c(x)
        x = self.Mixed_6d(x)
        x = self.Mixed_6e(x)
        aux = self.AuxLogits(x) if self.training and self.AuxLogits is not None else None
        x = self.Mixed_7a(x)  # N x 1280 x 8 x 8
        x = self.Mixed_7b(x)  # N x 2048 x 8 x 8
        x = self.Mixed_7c(x)
        x = self.avgpool(x)  # N x 2048 x 1 x 1
        x = self.dropout(x)
        x = self.fc(torch.flatten(x, 1))
        if self.training and self.aux_logits:
            return x, aux
        return x


# ---------------------------------------------------------------------------
# 2. timm Inception-v4: one nn.Sequential ``features`` of 22 modules
# ---------------------------------------------------------------------------


def _avg_pool_no_pad():
    """timm's pool branches exclude the padding from the average."""
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


class Mixed3a(nn.Module):
    def __init__(self):
        super().__init__()
        self.maxpool = nn.MaxPool2d(3, stride=2)
        self.conv = BasicConv2d(64, 96, kernel_size=3, stride=2)

    def forward(self, x):
        return torch.cat((self.maxpool(x), self.conv(x)), 1)


class Mixed4a(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch0 = nn.Sequential(
            BasicConv2d(160, 64, kernel_size=1),
            BasicConv2d(64, 96, kernel_size=3),
        )
        self.branch1 = nn.Sequential(
            BasicConv2d(160, 64, kernel_size=1),
            BasicConv2d(64, 64, kernel_size=(1, 7), padding=(0, 3)),
            BasicConv2d(64, 64, kernel_size=(7, 1), padding=(3, 0)),
            BasicConv2d(64, 96, kernel_size=3),
        )

    def forward(self, x):
        return torch.cat((self.branch0(x), self.branch1(x)), 1)


class Mixed5a(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = BasicConv2d(192, 192, kernel_size=3, stride=2)
        self.maxpool = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat((self.conv(x), self.maxpool(x)), 1)


class InceptionAV4(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(384, 96, kernel_size=1)
        self.branch1 = nn.Sequential(
            BasicConv2d(384, 64, kernel_size=1),
            BasicConv2d(64, 96, kernel_size=3, padding=1),
        )
        self.branch2 = nn.Sequential(
            BasicConv2d(384, 64, kernel_size=1),
            BasicConv2d(64, 96, kernel_size=3, padding=1),
            BasicConv2d(96, 96, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(_avg_pool_no_pad(), BasicConv2d(384, 96, kernel_size=1))

    def forward(self, x):
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1)


class ReductionAV4(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(384, 384, kernel_size=3, stride=2)
        self.branch1 = nn.Sequential(
            BasicConv2d(384, 192, kernel_size=1),
            BasicConv2d(192, 224, kernel_size=3, padding=1),
            BasicConv2d(224, 256, kernel_size=3, stride=2),
        )
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1)


class InceptionBV4(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(1024, 384, kernel_size=1)
        self.branch1 = nn.Sequential(
            BasicConv2d(1024, 192, kernel_size=1),
            BasicConv2d(192, 224, kernel_size=(1, 7), padding=(0, 3)),
            BasicConv2d(224, 256, kernel_size=(7, 1), padding=(3, 0)),
        )
        self.branch2 = nn.Sequential(
            BasicConv2d(1024, 192, kernel_size=1),
            BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0)),
            BasicConv2d(192, 224, kernel_size=(1, 7), padding=(0, 3)),
            BasicConv2d(224, 224, kernel_size=(7, 1), padding=(3, 0)),
            BasicConv2d(224, 256, kernel_size=(1, 7), padding=(0, 3)),
        )
        self.branch3 = nn.Sequential(_avg_pool_no_pad(), BasicConv2d(1024, 128, kernel_size=1))

    def forward(self, x):
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1)


class ReductionBV4(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch0 = nn.Sequential(
            BasicConv2d(1024, 192, kernel_size=1),
            BasicConv2d(192, 192, kernel_size=3, stride=2),
        )
        self.branch1 = nn.Sequential(
            BasicConv2d(1024, 256, kernel_size=1),
            BasicConv2d(256, 256, kernel_size=(1, 7), padding=(0, 3)),
            BasicConv2d(256, 320, kernel_size=(7, 1), padding=(3, 0)),
            BasicConv2d(320, 320, kernel_size=3, stride=2),
        )
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1)


class InceptionCV4(nn.Module):
    """Flat attributes for the branches that split in two (branch1_1a / branch1_1b, ...)."""

    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(1536, 256, kernel_size=1)
        self.branch1_0 = BasicConv2d(1536, 384, kernel_size=1)
        self.branch1_1a = BasicConv2d(384, 256, kernel_size=(1, 3), padding=(0, 1))
        self.branch1_1b = BasicConv2d(384, 256, kernel_size=(3, 1), padding=(1, 0))
        self.branch2_0 = BasicConv2d(1536, 384, kernel_size=1)
        self.branch2_1 = BasicConv2d(384, 448, kernel_size=(3, 1), padding=(1, 0))
        self.branch2_2 = BasicConv2d(448, 512, kernel_size=(1, 3), padding=(0, 1))
        self.branch2_3a = BasicConv2d(512, 256, kernel_size=(1, 3), padding=(0, 1))
        self.branch2_3b = BasicConv2d(512, 256, kernel_size=(3, 1), padding=(1, 0))
        self.branch3 = nn.Sequential(_avg_pool_no_pad(), BasicConv2d(1536, 256, kernel_size=1))

    def forward(self, x):
        x0 = self.branch0(x)
        x1_0 = self.branch1_0(x)
        x1 = torch.cat((self.branch1_1a(x1_0), self.branch1_1b(x1_0)), 1)
        x2_2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        x2 = torch.cat((self.branch2_3a(x2_2), self.branch2_3b(x2_2)), 1)
        x3 = self.branch3(x)
        return torch.cat((x0, x1, x2, x3), 1)


class InceptionV4(nn.Module):
    """Structural twin of timm's ``inception_v4`` for 3x299x299 inputs (42,679,816 parameters).

    ``features`` is one nn.Sequential: a three-conv stem (0-2), Mixed3a/4a/5a (3-5),
    4 x Inception-A (6-9), Reduction-A (10), 7 x Inception-B (11-17), Reduction-B (18),
    3 x Inception-C (19-21); then global average pooling, dropout and ``last_linear``.
    """

    def __init__(self, num_classes=1000, in_chans=3, drop_rate=0.0):
        super().__init__()
        features = [
            BasicConv2d(in_chans, 32, kernel_size=3, stride=2),
            BasicConv2d(32, 32, kernel_size=3),
            BasicConv2d(32, 64, kernel_size=3, padding=1),
            Mixed3a(),
            Mixed4a(),
            Mixed5a(),
        ]
        features += [InceptionAV4() for _ in range(4)]
        features += [ReductionAV4()]
        features += [InceptionBV4() for _ in range(7)]
        features += [ReductionBV4()]
        features += [InceptionCV4() for _ in range(3)]
        self.features = nn.Sequential(*features)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(drop_rate)
        self.last_linear = nn.Linear(1536, num_classes)

    def forward(self, x):
        x = self.features(x)  # N x 1536 x 8 x 8
        x = torch.flatten(self.global_pool(x), 1)
        return self.last_linear(self.head_drop(x))


# ---------------------------------------------------------------------------
# 3. timm Inception-ResNet-v2: residual blocks ``x + scale * branch``
# ---------------------------------------------------------------------------


class Mixed5b(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(192, 96, kernel_size=1)
        self.branch1 = nn.Sequential(
            BasicConv2d(192, 48, kernel_size=1),
            BasicConv2d(48, 64, kernel_size=5, padding=2),
        )
        self.branch2 = nn.Sequential(
            BasicConv2d(192, 64, kernel_size=1),
            BasicConv2d(64, 96, kernel_size=3, padding=1),
            BasicConv2d(96, 96, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(_avg_pool_no_pad(), BasicConv2d(192, 64, kernel_size=1))

    def forward(self, x):
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1)


class Block35(nn.Module):
    """Inception-ResNet-A on 35x35x320: three branches, a 1x1 conv (with bias) back to 320,
    scaled, added to the input, ReLU."""

    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale
        self.branch0 = BasicConv2d(320, 32, kernel_size=1)
        self.branch1 = nn.Sequential(
            BasicConv2d(320, 32, kernel_size=1),
            BasicConv2d(32, 32, kernel_size=3, padding=1),
        )
        self.branch2 = nn.Sequential(
            BasicConv2d(320, 32, kernel_size=1),
            BasicConv2d(32, 48, kernel_size=3, padding=1),
            BasicConv2d(48, 64, kernel_size=3, padding=1),
        )
        self.conv2d = nn.Conv2d(128, 320, kernel_size=1)
        self.act = nn.ReLU()

    def forward(self, x):
        out = torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1)
        out = self.conv2d(out)
        return self.act(out * self.scale + x)


class Mixed6a(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(320, 384, kernel_size=3, stride=2)
        self.branch1 = nn.Sequential(
            BasicConv2d(320, 256, kernel_size=1),
            BasicConv2d(256, 256, kernel_size=3, padding=1),
            BasicConv2d(256, 384, kernel_size=3, stride=2),
        )
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1)


class Block17(nn.Module):
    """Inception-ResNet-B on 17x17x1088."""

    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale
        self.branch0 = BasicConv2d(1088, 192, kernel_size=1)
        self.branch1 = nn.Sequential(
            BasicConv2d(1088, 128, kernel_size=1),
            BasicConv2d(128, 160, kernel_size=(1, 7), padding=(0, 3)),
            BasicConv2d(160, 192, kernel_size=(7, 1), padding=(3, 0)),
        )
        self.conv2d = nn.Conv2d(384, 1088, kernel_size=1)
        self.act = nn.ReLU()

    def forward(self, x):
        out = self.conv2d(torch.cat((self.branch0(x), self.branch1(x)), 1))
        return self.act(out * self.scale + x)


class Mixed7a(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch0 = nn.Sequential(
            BasicConv2d(1088, 256, kernel_size=1),
            BasicConv2d(256, 384, kernel_size=3, stride=2),
        )
        self.branch1 = nn.Sequential(
            BasicConv2d(1088, 256, kernel_size=1),
            BasicConv2d(256, 288, kernel_size=3, stride=2),
        )
        self.branch2 = nn.Sequential(
            BasicConv2d(1088, 256, kernel_size=1),
            BasicConv2d(256, 288, kernel_size=3, padding=1),
            BasicConv2d(288, 320, kernel_size=3, stride=2),
        )
        self.branch3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1)


class Block8(nn.Module):
    """Inception-ResNet-C on 8x8x2080; ``no_relu`` for the last one (no ReLU module at all)."""

    def __init__(self, scale=1.0, no_relu=False):
        super().__init__()
        self.scale = scale
        self.branch0 = BasicConv2d(2080, 192, kernel_size=1)
        self.branch1 = nn.Sequential(
            BasicConv2d(2080, 192, kernel_size=1),
            BasicConv2d(192, 224, kernel_size=(1, 3), padding=(0, 1)),
            BasicConv2d(224, 256, kernel_size=(3, 1), padding=(1, 0)),
        )
        self.conv2d = nn.Conv2d(448, 2080, kernel_size=1)
        self.relu = None if no_relu else nn.ReLU()

    def forward(self, x):
        out = self.conv2d(torch.cat((self.branch0(x), self.branch1(x)), 1))
        out = out * self.scale + x
        return out if self.relu is None else self.relu(out)


class InceptionResNetV2(nn.Module):
    """Structural twin of timm's ``inception_resnet_v2`` for 3x299x299 inputs
    (55,843,464 parameters): 10 x Block35 (scale 0.17) in ``repeat``, 20 x Block17 (0.10) in
    ``repeat_1``, 9 x Block8 (0.20) in ``repeat_2``, then ``block8`` (scale 1, no ReLU)."""

    def __init__(self, num_classes=1000, in_chans=3, drop_rate=0.0):
        super().__init__()
        self.conv2d_1a = BasicConv2d(in_chans, 32, kernel_size=3, stride=2)
        self.conv2d_2a = BasicConv2d(32, 32, kernel_size=3)
        self.conv2d_2b = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = BasicConv2d(64, 80, kernel_size=1)
        self.conv2d_4a = BasicConv2d(80, 192, kernel_size=3)
        self.maxpool_5a = nn.MaxPool2d(3, stride=2)
        self.mixed_5b = Mixed5b()
        self.repeat = nn.Sequential(*[Block35(scale=0.17) for _ in range(10)])
        self.mixed_6a = Mixed6a()
        self.repeat_1 = nn.Sequential(*[Block17(scale=0.10) for _ in range(20)])
        self.mixed_7a = Mixed7a()
        self.repeat_2 = nn.Sequential(*[Block8(scale=0.20) for _ in range(9)])
        self.block8 = Block8(no_relu=True)
        self.conv2d_7b = BasicConv2d(2080, 1536, kernel_size=1)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(drop_rate)
        self.classif = nn.Linear(1536, num_classes)

    def forward(self, x):
        x = self.conv2d_1a(x)  # N x 32 x 149 x 149
        x = self.conv2d_2a(x)  # N x 32 x 147 x 147
        x = self.conv2d_2b(x)  # N x 64 x 147 x 147
        x = self.maxpool_3a(x)  # N x 64 x 73 x 73
        x = self.conv2d_3b(x)  # N x 80 x 73 x 73
        x = self.conv2d_4a(x)  # N x 192 x 71 x 71
        x = self.maxpool_5a(x)  # N x 192 x 35 x 35
        x = self.mixed_5b(x)  # N x 320 x 35 x 35
        x = self.repeat(x)
        x = self.mixed_6a(x)  # N x 1088 x 17 x 17
        x = self.repeat_1(x)
        x = self.mixed_7a(x)  # N x 2080 x 8 x 8
        x = self.repeat_2(x)
        x = self.block8(x)
        x = self.conv2d_7b(x)  # N x 1536 x 8 x 8
        x = torch.flatten(self.global_pool(x), 1)
        return self.classif(self.head_drop(x))
