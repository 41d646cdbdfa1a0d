"""Datasets in memory, and the batch pipeline that fits them to a spec's input.

``load(text, shape, classes)`` reads what ``--data`` names:

* ``digits``: scikit-learn's bundled 8x8 digits (1,797 images, no download); a
  fixed fifth is held out for testing.
* ``synthetic`` or ``synthetic:N``: N (default 256) noisy copies of one random
  pattern per class, plus N/4 for testing: a smoke test that a model can learn.
* ``cifar10:PATH`` / ``cifar100:PATH``: the CIFAR "python version" batches as
  downloaded (``data_batch_1..5`` and ``test_batch``; ``train`` and ``test``
  with ``fine_labels``), PATH being their folder or the folder above it.
  They are unpickled with only numpy's array constructors allowed.
* ``PATH``: an ImageFolder-style folder, one subfolder of PNG/JPEG images per
  class; with ``train/`` and ``test/`` (or ``val/``) subfolders those are the
  splits, else a fixed fifth of each class is held out.

Images stay in memory at their own size as stored (uint8); ``Pipeline`` turns a
batch of them into the spec's input: scaled to [0, 1], channels replicated (or
averaged to grey), resized with ``torch.nn.functional.interpolate``, then the
training augmentations (random horizontal flip, random crop after zero padding)
and normalisation.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F

from compiler.training import TrainingError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_HELD_OUT = 0.2  # the test fraction when a source has no test split
_SPLIT_SEED = 0  # fixed: the held-out images do not depend on --seed


@dataclass(frozen=True)
class Dataset:
    name: str
    train_x: torch.Tensor  # N x C x H x W, uint8 (or float), values in [0, scale]
    train_y: torch.Tensor  # N, int64
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    scale: float = 255.0


def load(text: str, shape: tuple[int, ...], outputs: int) -> Dataset:
    """The dataset ``--data`` names, checked against a network of ``outputs`` classes."""
    kind, colon, rest = text.partition(":")
    if kind == "digits" and not colon:
        data = _digits()
    elif kind == "synthetic":
        data = _synthetic(rest, shape, outputs)
    elif kind in ("cifar10", "cifar100") and colon:
        data = _cifar(kind, Path(rest))
    else:
        data = _image_folder(Path(text), shape[0])
    stored = data.train_x.shape[1]
    if stored not in (1, shape[0]) and shape[0] != 1:
        raise TrainingError(
            f"--data {text} has {stored}-channel images: the network's input has {shape[0]}"
        )
    if len(data.classes) > outputs:
        raise TrainingError(
            f"--data {text} has {len(data.classes)} classes but the network outputs {outputs} "
            f"(try --set num_classes={len(data.classes)})"
        )
    return data


def _split(
    x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(_SPLIT_SEED))
    cut = len(y) - max(1, round(len(y) * _HELD_OUT))
    train, test = order[:cut].sort().values, order[cut:].sort().values
    return x[train], y[train], x[test], y[test]


def _digits() -> Dataset:
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    digits = load_digits()
    x = torch.from_numpy(digits.images).to(torch.uint8).unsqueeze(1)  # values 0..16
    y = torch.from_numpy(digits.target).long()
    train_x, train_y, test_x, test_y = _split(x, y)
    names = tuple(map(str, digits.target_names))
    return Dataset("digits", train_x, train_y, test_x, test_y, names, scale=16.0)


def _synthetic(size: str, shape: tuple[int, ...], outputs: int) -> Dataset:
    if size and not (size.isdigit() and int(size) > 0):
        raise TrainingError(f"--data synthetic:N expects a positive count, got '{size}'")
    n = int(size or 256)
    g = torch.Generator().manual_seed(_SPLIT_SEED)
    classes = min(outputs, 10)
    patterns = torch.rand(classes, *shape, generator=g) * 255

    def make(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(count) % classes
        noise = torch.randn(count, *shape, generator=g) * 48
        return (patterns[y] + noise).clamp(0, 255).to(torch.uint8), y

    train_x, train_y = make(n)
    test_x, test_y = make(max(classes, n // 4))
    names = tuple(f"class{i}" for i in range(classes))
    return Dataset("synthetic", train_x, train_y, test_x, test_y, names)


class _ArraysOnly(pickle.Unpickler):
    """CIFAR batches hold numpy arrays, lists and bytes: nothing else is unpickled."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[str, object]:
    try:
        with open(path, "rb") as f:
            raw = _ArraysOnly(f, encoding="bytes").load()
    except FileNotFoundError:
        raise TrainingError(f"{path}: no such file") from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise TrainingError(f"{path}: not a CIFAR python batch ({err})") from None
    if not isinstance(raw, dict):
        raise TrainingError(f"{path}: not a CIFAR python batch (no dictionary)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _cifar(kind: str, path: Path) -> Dataset:
    folder_name = "cifar-10-batches-py" if kind == "cifar10" else "cifar-100-python"
    if (path / folder_name).is_dir():
        path = path / folder_name
    if not path.is_dir():
        raise TrainingError(f"--data {kind}:{path}: no such folder")
    if kind == "cifar10":
        train_files = sorted(path.glob("data_batch_*"))
        if not train_files:
            raise TrainingError(f"--data {kind}:{path}: no data_batch_* files in the folder")
        test_files, label_key, meta, names_key = (
            [path / "test_batch"],
            "labels",
            "batches.meta",
            "label_names",
        )
    else:
        train_files, test_files = [path / "train"], [path / "test"]
        label_key, meta, names_key = "fine_labels", "meta", "fine_label_names"

    def read(files: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for file in files:
            batch = _unpickle(file)
            if "data" not in batch or label_key not in batch:
                raise TrainingError(f"{file}: not a {kind} batch (no 'data' or '{label_key}')")
            data = torch.as_tensor(batch["data"], dtype=torch.uint8)
            labels = torch.as_tensor(batch[label_key], dtype=torch.long)
            if data.dim() != 2 or data.shape[1] != 3072 or len(labels) != len(data):
                raise TrainingError(f"{file}: expected N x 3072 bytes and N labels")
            xs.append(data.view(-1, 3, 32, 32))
            ys.append(labels)
        return torch.cat(xs), torch.cat(ys)

    train_x, train_y = read(train_files)
    test_x, test_y = read(test_files)
    count = 10 if kind == "cifar10" else 100
    names: tuple[str, ...] = tuple(str(i) for i in range(count))
    if (path / meta).exists():
        listed = _unpickle(path / meta).get(names_key)
        if isinstance(listed, list) and len(listed) == count:
            names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in listed)
    top = int(max(train_y.max(), test_y.max()))
    if int(min(train_y.min(), test_y.min())) < 0 or top >= count:
        raise TrainingError(f"--data {kind}:{path}: labels outside 0..{count - 1}")
    return Dataset(kind, train_x, train_y, test_x, test_y, names)


def _image_folder(path: Path, channels: int) -> Dataset:
    if not path.is_dir():
        raise TrainingError(
            f"--data {path}: no such folder (expected digits, synthetic[:N], cifar10:PATH, "
            "cifar100:PATH or an image folder)"
        )
    train = path / "train"
    test = next((path / s for s in ("test", "val") if (path / s).is_dir()), None)
    if train.is_dir() and test is not None:
        classes = sorted(d.name for d in train.iterdir() if d.is_dir())
        train_x, train_y = _read_images(train, classes, channels)
        test_x, test_y = _read_images(test, classes, channels)
    else:
        classes = sorted(d.name for d in path.iterdir() if d.is_dir())
        train_x, train_y, test_x, test_y = _split(*_read_images(path, classes, channels))
    return Dataset(path.name, train_x, train_y, test_x, test_y, tuple(classes))


def _read_images(
    root: Path, classes: list[str], channels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image under ``root/<class>/``, as uint8 tensors of the first image's size."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if not classes:
        raise TrainingError(f"--data {root}: no class subfolders")
    mode = "L" if channels == 1 else "RGB"
    images, labels, size = [], [], None
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for file in files:
            try:
                with Image.open(file) as opened:
                    image = opened.convert(mode)
                size = size or image.size
                if image.size != size:
                    image = image.resize(size, Image.Resampling.BILINEAR)
                array = np.asarray(image, dtype=np.uint8)
            except (OSError, UnidentifiedImageError) as err:
                raise TrainingError(f"{file}: cannot read the image ({err})") from None
            images.append(
                torch.from_numpy(array.copy()).view(size[1], size[0], -1).permute(2, 0, 1)
            )
            labels.append(label)
    if not images:
        raise TrainingError(f"--data {root}: no PNG or JPEG images in the class subfolders")
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


def parse_normalize(
    text: str | None, channels: int
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``MEAN,STD`` (one of each for every channel) or ``M1,..,MC,S1,..,SC``."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) == 2:
        return (values[0],) * channels, (values[1],) * channels
    if len(values) == 2 * channels and all(v > 0 for v in values[channels:]):
        return tuple(values[:channels]), tuple(values[channels:])
    raise TrainingError(
        f"--normalize expects MEAN,STD or {channels} means then {channels} stds, got '{text}'"
    )


@dataclass(frozen=True)
class Pipeline:
    """A batch of stored images to the network's input, with the training augmentations."""

    shape: tuple[int, ...]  # C, H, W
    scale: float = 255.0
    hflip: bool = False
    crop_padding: int = 0
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``x`` as the network's input; augmented when a ``generator`` is given (training)."""
        c, h, w = self.shape
        x = x.float() / self.scale
        if x.shape[1] != c:
            x = x.mean(1, keepdim=True) if c == 1 else x.expand(-1, c, -1, -1)
        if tuple(x.shape[2:]) != (h, w):
            down = x.shape[2] > h or x.shape[3] > w
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=down)
        if generator is not None:
            x = self._augment(x, generator)
        if self.normalize is not None:
            mean, std = (x.new_tensor(v).view(1, -1, 1, 1) for v in self.normalize)
            x = (x - mean) / std
        return x.contiguous()

    def _augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        if self.hflip:
            flip = torch.rand(n, generator=g) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        if self.crop_padding:
            p = self.crop_padding
            padded = F.pad(x, (p, p, p, p))
            dy, dx = torch.randint(0, 2 * p + 1, (2, n), generator=g).tolist()
            x = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
        return x
