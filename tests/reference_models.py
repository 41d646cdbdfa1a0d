"""Hand-written PyTorch reference models that netc's generated code is checked against.

Every model here is plain PyTorch (only ``torch`` is imported). Attribute names are part of
the contract: they fix the ``state_dict`` keys that generated modules must reproduce.

Models
------
GoogLeNetV1          canonical GoogLeNet (Conv2d+ReLU, no BN, 5x5 branch, aux heads)
GoogLeNetD2L         Dive-into-Deep-Learning GoogLeNet (blocks b1..b5, 96x96 grayscale input)
GoogLeNetCifar       pytorch-cifar100 GoogLeNet (BN everywhere, 3x3 prelayer, two stacked 3x3)
GoogLeNetNaive       the cifar layout with "naive" Inception modules (no 1x1 reductions)
GoogLeNetCifarShort  seed 004's "Short": the cifar layout without 4b and 4c
GoogLeNetCifarShort2 seed 004's "Short2": the cifar layout without 4b, 4c, 4d and 4e
GoogLeNetTorchvision structural twin of torchvision.models.googlenet (BN, eps=1e-3, 3x3 quirk)
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "GoogLeNetCifar",
    "GoogLeNetCifarShort",
    "GoogLeNetCifarShort2",
    "GoogLeNetD2L",
    "GoogLeNetNaive",
    "GoogLeNetTorchvision",
    "GoogLeNetV1",
    "count_params",
]

# The nine Inception configurations shared by all GoogLeNet variants:
# (in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)
INCEPTION_CONFIGS = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


def count_params(model: nn.Module) -> int:
    """Total number of parameter elements (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------
# 1. Canonical GoogLeNet (Conv2d with bias + ReLU, no batch norm)
# ---------------------------------------------------------------------------


class BasicConv2d(nn.Module):
    """Conv2d (with bias) followed by ReLU."""

    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, **kwargs)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.conv(x))


class Inception(nn.Module):
    """Four parallel branches concatenated along channels: 1x1 | 1x1->3x3 | 1x1->5x5 | pool->1x1."""

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=5, padding=2),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: avgpool 5/3 -> 1x1 conv 128 -> FC 1024 -> FC num_classes."""

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.averagePool = nn.AvgPool2d(kernel_size=5, stride=3)
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.averagePool(x)  # N x C x 14 x 14 -> N x C x 4 x 4
        x = self.conv(x)  # N x 128 x 4 x 4
        x = torch.flatten(x, 1)  # N x 2048
        x = F.dropout(x, 0.5, training=self.training)
        x = F.relu(self.fc1(x), inplace=True)
        x = F.dropout(x, 0.5, training=self.training)
        return self.fc2(x)


class GoogLeNetV1(nn.Module):
    """Canonical GoogLeNet / Inception v1 for 3x224x224 inputs.

    In training mode with ``aux_logits`` the forward returns ``(x, aux2, aux1)``;
    otherwise it returns the main logits only.
    """

    def __init__(self, num_classes=1000, aux_logits=True, init_weights=False):
        super().__init__()
        self.aux_logits = aux_logits

        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception3a = Inception(*INCEPTION_CONFIGS["3a"])
        self.inception3b = Inception(*INCEPTION_CONFIGS["3b"])
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception4a = Inception(*INCEPTION_CONFIGS["4a"])
        self.inception4b = Inception(*INCEPTION_CONFIGS["4b"])
        self.inception4c = Inception(*INCEPTION_CONFIGS["4c"])
        self.inception4d = Inception(*INCEPTION_CONFIGS["4d"])
        self.inception4e = Inception(*INCEPTION_CONFIGS["4e"])
        self.maxpool4 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception5a = Inception(*INCEPTION_CONFIGS["5a"])
        self.inception5b = Inception(*INCEPTION_CONFIGS["5b"])

        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes)  # fed by inception4a
            self.aux2 = InceptionAux(528, num_classes)  # fed by inception4d

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.4)
        self.fc = nn.Linear(1024, num_classes)

        if init_weights:
            self._initialize_weights()

    def _initialize_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        use_aux = self.training and self.aux_logits
        x = self.conv1(x)  # N x 64 x 112 x 112
        x = self.maxpool1(x)  # N x 64 x 56 x 56
        x = self.conv2(x)
        x = self.conv3(x)  # N x 192 x 56 x 56
        x = self.maxpool2(x)  # N x 192 x 28 x 28

        x = self.inception3a(x)  # N x 256 x 28 x 28
        x = self.inception3b(x)  # N x 480 x 28 x 28
        x = self.maxpool3(x)  # N x 480 x 14 x 14

        x = self.inception4a(x)  # N x 512 x 14 x 14
        aux1 = self.aux1(x) if use_aux else None
        x = self.inception4b(x)
        x = self.inception4c(x)
        x = self.inception4d(x)  # N x 528 x 14 x 14
        aux2 = self.aux2(x) if use_aux else None
        x = self.inception4e(x)  # N x 832 x 14 x 14
        x = self.maxpool4(x)  # N x 832 x 7 x 7

        x = self.inception5a(x)
        x = self.inception5b(x)  # N x 1024 x 7 x 7

        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.dropout(x)
        x = self.fc(x)
        if use_aux:
            return x, aux2, aux1
        return x


# ---------------------------------------------------------------------------
# 2. d2l GoogLeNet (PyTorch edition layout)
# ---------------------------------------------------------------------------


class InceptionD2L(nn.Module):
    """d2l Inception block; c2 and c3 are (reduce, out) pairs. ReLU is applied functionally."""

    def __init__(self, in_channels, c1, c2, c3, c4):
        super().__init__()
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)

    def forward(self, x):
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


def _d2l_inception(name):
    in_ch, c1, c2a, c2b, c3a, c3b, c4 = INCEPTION_CONFIGS[name]
    return InceptionD2L(in_ch, c1, (c2a, c2b), (c3a, c3b), c4)


class GoogLeNetD2L(nn.Module):
    """d2l GoogLeNet: five blocks b1..b5 and a final Linear ``fc``; no aux heads.

    With a 1x1x96x96 input the block outputs are (1,64,24,24), (1,192,12,12),
    (1,480,6,6), (1,832,3,3), (1,1024) and the logits (1,num_classes).

    ``b2_relu=False`` drops the two ReLUs of b2, as the book's MXNet edition
    (seed 003) does; ``specs/googlenet_d2l.net`` follows that edition.
    """

    def __init__(self, in_channels=1, num_classes=10, b2_relu=True):
        super().__init__()
        self.b1 = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        b2_act = [nn.ReLU()] if b2_relu else []
        self.b2 = nn.Sequential(
            nn.Conv2d(64, 64, kernel_size=1),
            *b2_act,
            nn.Conv2d(64, 192, kernel_size=3, padding=1),
            *b2_act,
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        self.b3 = nn.Sequential(
            _d2l_inception("3a"),
            _d2l_inception("3b"),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        self.b4 = nn.Sequential(
            _d2l_inception("4a"),
            _d2l_inception("4b"),
            _d2l_inception("4c"),
            _d2l_inception("4d"),
            _d2l_inception("4e"),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        self.b5 = nn.Sequential(
            _d2l_inception("5a"),
            _d2l_inception("5b"),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten(),
        )
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.b1(x)
        x = self.b2(x)
        x = self.b3(x)
        x = self.b4(x)
        x = self.b5(x)
        return self.fc(x)


# ---------------------------------------------------------------------------
# 3. pytorch-cifar100 GoogLeNet (BN after every conv, 3x3 prelayer)
# ---------------------------------------------------------------------------


def _conv_bn_relu(in_channels, out_channels, kernel_size, padding=0):
    """The three layers (Conv2d with bias, BatchNorm2d, ReLU) that make up the cifar branches."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, padding=padding),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class InceptionCifar(nn.Module):
    """Inception with BN; the "5x5" branch is a 1x1 reduction followed by two stacked 3x3 convs."""

    def __init__(self, in_channels, n1x1, n3x3_reduce, n3x3, n5x5_reduce, n5x5, pool_proj):
        super().__init__()
        self.out_channels = n1x1 + n3x3 + n5x5 + pool_proj
        self.b1 = nn.Sequential(*_conv_bn_relu(in_channels, n1x1, 1))
        self.b2 = nn.Sequential(
            *_conv_bn_relu(in_channels, n3x3_reduce, 1),
            *_conv_bn_relu(n3x3_reduce, n3x3, 3, padding=1),
        )
        # The upstream code writes BatchNorm2d(n5x5, n5x5) (n5x5 lands in eps); we use the default eps.
        self.b3 = nn.Sequential(
            *_conv_bn_relu(in_channels, n5x5_reduce, 1),
            *_conv_bn_relu(n5x5_reduce, n5x5, 3, padding=1),
            *_conv_bn_relu(n5x5, n5x5, 3, padding=1),
        )
        self.b4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1),
            *_conv_bn_relu(in_channels, pool_proj, 1),
        )

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)


class InceptionNaive(nn.Module):
    """Inception without 1x1 reductions or pool projection.

    Takes the same seven arguments as :class:`InceptionCifar` so both share the nine
    configurations; ``n3x3_reduce``, ``n5x5_reduce`` and ``pool_proj`` are ignored.
    Output channels: n1x1 + n3x3 + n5x5 + in_channels (the pool branch passes its input through).
    """

    def __init__(self, in_channels, n1x1, n3x3_reduce, n3x3, n5x5_reduce, n5x5, pool_proj):
        super().__init__()
        self.out_channels = n1x1 + n3x3 + n5x5 + in_channels
        self.b1 = nn.Sequential(*_conv_bn_relu(in_channels, n1x1, 1))
        self.b2 = nn.Sequential(*_conv_bn_relu(in_channels, n3x3, 3, padding=1))
        self.b3 = nn.Sequential(*_conv_bn_relu(in_channels, n5x5, 3, padding=1))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)


# The cifar layout: three stages of Inception modules, one shared 3x3/2 max pool between them.
CIFAR_STAGES = (("a3", "b3"), ("a4", "b4", "c4", "d4", "e4"), ("a5", "b5"))


class _CifarBody(nn.Module):
    """Shared layout of the cifar variants; ``inception`` picks the Inception module class,
    ``stages`` the modules kept (the "Short" variants of seed 004 drop some)."""

    def __init__(self, inception, num_classes, stages=CIFAR_STAGES):
        super().__init__()
        self.stages = stages
        self.prelayer = nn.Sequential(*_conv_bn_relu(3, 192, 3, padding=1))

        # Channel counts flow from one module to the next, so the Naive variant
        # (whose modules widen their input) can reuse the same nine configurations.
        channels = 192
        for index, stage in enumerate(stages):
            if index == 1:
                self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            for name in stage:
                _, *rest = INCEPTION_CONFIGS[name[1] + name[0]]
                module = inception(channels, *rest)
                setattr(self, name, module)
                channels = module.out_channels

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout2d(p=0.4)
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.prelayer(x)  # N x 192 x 32 x 32
        for index, stage in enumerate(self.stages):
            if index > 0:
                x = self.maxpool(x)  # 16 x 16, then 8 x 8
            for name in stage:
                x = getattr(self, name)(x)
        x = self.avgpool(x)
        x = self.dropout(x)
        x = torch.flatten(x, 1)
        return self.linear(x)


class GoogLeNetCifar(_CifarBody):
    """pytorch-cifar100 GoogLeNet for 3x32x32 inputs (6,258,500 params at 100 classes)."""

    def __init__(self, num_classes=100):
        super().__init__(InceptionCifar, num_classes)


class GoogLeNetNaive(_CifarBody):
    """Cifar layout with naive Inception modules; channels grow 192 -> 416 -> ... -> 4944."""

    def __init__(self, num_classes=100):
        super().__init__(InceptionNaive, num_classes)


class GoogLeNetCifarShort(_CifarBody):
    """Seed 004's "GoogleNet Short": the cifar GoogLeNet without 4b and 4c
    (5,271,652 params at 100 classes, 5,179,402 at 10)."""

    def __init__(self, num_classes=100):
        stages = (("a3", "b3"), ("a4", "d4", "e4"), ("a5", "b5"))
        super().__init__(InceptionCifar, num_classes, stages)


class GoogLeNetCifarShort2(_CifarBody):
    """Seed 004's "GoogleNet Short2": stage 4 cut down to 4a (no 4b, 4c, 4d, 4e;
    3,523,556 params at 100 classes, 3,431,306 at 10)."""

    def __init__(self, num_classes=100):
        stages = (("a3", "b3"), ("a4",), ("a5", "b5"))
        super().__init__(InceptionCifar, num_classes, stages)


# ---------------------------------------------------------------------------
# 5. torchvision GoogLeNet twin (Conv2d without bias + BatchNorm2d eps=1e-3)
# ---------------------------------------------------------------------------


class BasicConv2dBN(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d(eps=0.001) -> ReLU."""

    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionTV(nn.Module):
    """torchvision's Inception: branch3 uses a 3x3 conv where the paper has 5x5
    (pytorch/vision issue 906, kept for weight compatibility)."""

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2dBN(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2dBN(in_channels, ch3x3red, kernel_size=1),
            BasicConv2dBN(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2dBN(in_channels, ch5x5red, kernel_size=1),
            BasicConv2dBN(ch5x5red, ch5x5, kernel_size=3, padding=1),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2dBN(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAuxTV(nn.Module):
    """torchvision's auxiliary head: adaptive avgpool to 4x4 -> 1x1 conv 128 -> FC 1024 -> ReLU
    -> dropout(0.7) -> FC num_classes."""

    def __init__(self, in_channels, num_classes, dropout=0.7):
        super().__init__()
        self.conv = BasicConv2dBN(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(x, (4, 4))
        x = self.conv(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x), inplace=True)
        x = self.dropout(x)
        return self.fc2(x)


class GoogLeNetTorchvision(nn.Module):
    """Structural twin of ``torchvision.models.googlenet(weights=None, init_weights=True)``.

    Same module tree and state_dict keys, so torchvision checkpoints load with strict=True.
    Training mode with ``aux_logits`` returns the plain tuple ``(x, aux2, aux1)`` (torchvision
    returns a namedtuple with the same field order).
    """

    def __init__(
        self,
        num_classes=1000,
        aux_logits=True,
        transform_input=False,
        init_weights=True,
        dropout=0.2,
        dropout_aux=0.7,
    ):
        super().__init__()
        self.aux_logits = aux_logits
        self.transform_input = transform_input

        self.conv1 = BasicConv2dBN(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2dBN(64, 64, kernel_size=1)
        self.conv3 = BasicConv2dBN(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception3a = InceptionTV(*INCEPTION_CONFIGS["3a"])
        self.inception3b = InceptionTV(*INCEPTION_CONFIGS["3b"])
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception4a = InceptionTV(*INCEPTION_CONFIGS["4a"])
        self.inception4b = InceptionTV(*INCEPTION_CONFIGS["4b"])
        self.inception4c = InceptionTV(*INCEPTION_CONFIGS["4c"])
        self.inception4d = InceptionTV(*INCEPTION_CONFIGS["4d"])
        self.inception4e = InceptionTV(*INCEPTION_CONFIGS["4e"])
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        self.inception5a = InceptionTV(*INCEPTION_CONFIGS["5a"])
        self.inception5b = InceptionTV(*INCEPTION_CONFIGS["5b"])

        if aux_logits:
            self.aux1 = InceptionAuxTV(512, num_classes, dropout=dropout_aux)
            self.aux2 = InceptionAuxTV(528, num_classes, dropout=dropout_aux)
        else:
            self.aux1 = None
            self.aux2 = None

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)

        if init_weights:
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    def _transform_input(self, x):
        """Map inputs normalised with ImageNet mean/std to the (x - 0.5) / 0.5 convention."""
        if self.transform_input:
            x_ch0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
            x_ch1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
            x_ch2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
            x = torch.cat((x_ch0, x_ch1, x_ch2), 1)
        return x

    def forward(self, x):
        use_aux = self.training and self.aux_logits
        x = self._transform_input(x)
        x = self.conv1(x)  # N x 64 x 112 x 112
        x = self.maxpool1(x)  # N x 64 x 56 x 56
        x = self.conv2(x)
        x = self.conv3(x)  # N x 192 x 56 x 56
        x = self.maxpool2(x)  # N x 192 x 28 x 28

        x = self.inception3a(x)
        x = self.inception3b(x)  # N x 480 x 28 x 28
        x = self.maxpool3(x)  # N x 480 x 14 x 14

        x = self.inception4a(x)  # N x 512 x 14 x 14
        aux1 = self.aux1(x) if use_aux and self.aux1 is not None else None
        x = self.inception4b(x)
        x = self.inception4c(x)
        x = self.inception4d(x)  # N x 528 x 14 x 14
        aux2 = self.aux2(x) if use_aux and self.aux2 is not None else None
        x = self.inception4e(x)  # N x 832 x 14 x 14
        x = self.maxpool4(x)  # N x 832 x 7 x 7

        x = self.inception5a(x)
        x = self.inception5b(x)  # N x 1024 x 7 x 7

        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.dropout(x)
        x = self.fc(x)
        if use_aux:
            return x, aux2, aux1
        return x
