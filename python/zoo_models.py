"""PyTorch twins of the Rust architectures in crates/pretrained-zoo/src/arch/.

Each class has the same state_dict keys as the Rust network's VarStore (plus PyTorch's
batch-norm `num_batches_tracked` counters) and the same forward pass, so weights move both ways
through safetensors files. Constructors take the fields of the Rust config struct as keyword
arguments (the JSON of the config), e.g. `ResNet(width=16, blocks=[2, 2, 2], classes=10)`.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Mlp(nn.Module):
    """fc1 -> ReLU -> ... -> fcN -> ReLU -> head, on the flattened input."""

    def __init__(self, inputs, hidden, classes):
        super().__init__()
        self.hidden = []
        width = inputs
        for i, h in enumerate(hidden):
            # setattr gives the key "fc1.weight" (a ModuleList would give "fcs.0.weight").
            setattr(self, f"fc{i + 1}", nn.Linear(width, h))
            self.hidden.append(f"fc{i + 1}")
            width = h
        self.head = nn.Linear(width, classes)

    def features(self, x):
        x = x.flatten(1)
        for name in self.hidden:
            x = F.relu(getattr(self, name)(x))
        return x

    def forward(self, x):
        return self.head(self.features(x))


class LeNet(nn.Module):
    """conv1 (5x5, pad 2) -> pool -> conv2 (5x5) -> pool -> fc1 -> fc2 -> head, ReLUs between."""

    def __init__(self, channels, hidden, classes):
        super().__init__()
        c1, c2 = channels
        h1, h2 = hidden
        self.conv1 = nn.Conv2d(1, c1, 5, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.fc1 = nn.Linear(c2 * 5 * 5, h1)
        self.fc2 = nn.Linear(h1, h2)
        self.head = nn.Linear(h2, classes)

    def features(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return F.relu(self.fc2(x))

    def forward(self, x):
        return self.head(self.features(x))


class ConvBn(nn.Module):
    """Convolution without bias and batch norm: keys `conv.weight`, `bn.*`."""

    def __init__(self, conv, bn):
        super().__init__()
        self.conv = conv
        self.bn = bn

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, inputs, outputs, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        if stride != 1 or inputs != outputs:
            # Keys shortcut.0.weight (1x1 conv) and shortcut.1.* (batch norm).
            self.shortcut = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs)
            )
        else:
            self.shortcut = nn.Sequential()  # identity, no keys

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """stem -> layer1 (width) -> layer2 (2 width, /2) -> layer3 (4 width, /2) -> GAP -> head."""

    def __init__(self, width, blocks, classes):
        super().__init__()
        w = width
        self.stem = ConvBn(nn.Conv2d(1, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w))
        inputs = w
        for i, n in enumerate(blocks):
            outputs = w << i
            layer = []
            for b in range(n):
                stride = 2 if i > 0 and b == 0 else 1
                layer.append(BasicBlock(inputs, outputs, stride))
                inputs = outputs
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.head = nn.Linear(4 * w, classes)

    def features(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, x):
        return self.head(self.features(x))


def conv_blocks_2d(module, channels):
    """block1 ... blockN of 3x3 conv (no bias) + batch norm, added to `module`; their names."""
    names, inputs = [], 1
    for i, c in enumerate(channels):
        name = f"block{i + 1}"
        setattr(module, name, ConvBn(nn.Conv2d(inputs, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)))
        names.append(name)
        inputs = c
    return names


class FaceCnn(nn.Module):
    """blocks of conv3x3-BN-ReLU-maxpool2, adaptive average pooling to 1x1, head."""

    def __init__(self, channels, classes):
        super().__init__()
        self.blocks = conv_blocks_2d(self, channels)
        self.head = nn.Linear(channels[-1], classes)

    def features(self, x):
        for name in self.blocks:
            x = F.max_pool2d(getattr(self, name)(x), 2)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, x):
        return self.head(self.features(x))


class SpectrogramCnn(nn.Module):
    """blocks as FaceCnn on [N, 1, mels, frames], then mean over frequency, max over time."""

    def __init__(self, channels, classes):
        super().__init__()
        self.blocks = conv_blocks_2d(self, channels)
        self.head = nn.Linear(channels[-1], classes)

    def features(self, x):
        for name in self.blocks:
            x = F.max_pool2d(getattr(self, name)(x), 2)
        return x.mean(dim=2).amax(dim=2)

    def forward(self, x):
        return self.head(self.features(x))


class AudioCnn1d(nn.Module):
    """M5-style: a wide strided conv, then conv-BN-ReLU-maxpool blocks, average over time, head."""

    def __init__(self, channels, first_kernel, first_stride, kernel, pool, classes):
        super().__init__()
        self.pool = pool
        self.blocks, inputs = [], 1
        for i, c in enumerate(channels):
            if i == 0:
                conv = nn.Conv1d(inputs, c, first_kernel, first_stride, 0, bias=False)
            else:
                conv = nn.Conv1d(inputs, c, kernel, 1, kernel // 2, bias=False)
            setattr(self, f"block{i + 1}", ConvBn(conv, nn.BatchNorm1d(c)))
            self.blocks.append(f"block{i + 1}")
            inputs = c
        self.head = nn.Linear(inputs, classes)

    def features(self, x):
        for name in self.blocks:
            x = F.max_pool1d(getattr(self, name)(x), self.pool)
        return F.adaptive_avg_pool1d(x, 1).flatten(1)

    def forward(self, x):
        return self.head(self.features(x))


def TorchvisionResNet(depth, classes, in_channels=3, width=64, small_input=False):
    """torchvision's ResNet-18/34/50 (`torchvision.models.resnet{depth}`), itself when
    `in_channels`, `width` and `small_input` are torchvision's (3, 64, False). Otherwise the same
    torchvision `ResNet` class with its stem and layers rebuilt by its own `_make_layer`:
    `width` planes in layer1 (2, 4, 8 times that after), `in_channels` input channels, and with
    `small_input` the CIFAR stem (3x3 conv1 with stride 1, no max-pool); the rebuilt modules get
    torchvision's initialisation again (Kaiming-normal fan-out convolutions, BN weight 1 bias 0).
    """
    from torchvision.models import resnet

    kinds = {
        18: (resnet.BasicBlock, [2, 2, 2, 2]),
        34: (resnet.BasicBlock, [3, 4, 6, 3]),
        50: (resnet.Bottleneck, [3, 4, 6, 3]),
    }
    if depth not in kinds:
        raise SystemExit(f"depth {depth}: choose 18, 34 or 50")
    model = getattr(resnet, f"resnet{depth}")(num_classes=classes)
    if (in_channels, width, small_input) == (3, 64, False):
        return model
    block, layers = kinds[depth]
    if small_input:
        model.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    else:
        model.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(width)
    model.inplanes = width
    model.layer1 = model._make_layer(block, width, layers[0])
    model.layer2 = model._make_layer(block, 2 * width, layers[1], stride=2)
    model.layer3 = model._make_layer(block, 4 * width, layers[2], stride=2)
    model.layer4 = model._make_layer(block, 8 * width, layers[3], stride=2)
    model.fc = nn.Linear(8 * width * block.expansion, classes)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    return model


# The `arch` tags of the Rust ArchConfig.
ARCHS = {
    "mlp": Mlp,
    "lenet": LeNet,
    "resnet": ResNet,
    "face_cnn": FaceCnn,
    "audio_cnn1d": AudioCnn1d,
    "spectrogram_cnn": SpectrogramCnn,
    "torchvision_resnet": TorchvisionResNet,
}


def build(arch, config):
    """The twin of the Rust network `arch` with `config` (the Rust config's fields, a dict)."""
    if arch not in ARCHS:
        raise SystemExit(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    return ARCHS[arch](**config)
