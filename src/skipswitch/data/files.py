"""Data sets larger than memory: image files decoded and augmented per sample in
DataLoader workers, as torchvision's ImageNet reference recipe does (RandomResizedCrop
+ horizontal flip for training, Resize + CenterCrop for evaluation).

Each global batch is the same as the in-memory path's for the same (seed, epoch): a
seeded permutation cut into batches, each rank taking its contiguous shard
(``ShardedBatches``, our distributed sampler: torch's ``DistributedSampler`` interleaves
ranks and pads the data set, so its batches change with the number of ranks). Every
sample's random crop is seeded by (seed, epoch, index), so augmentation does not
depend on the number of ranks or workers either, and ``--resume`` stays exact.

A file that cannot be decoded stops the run with one line naming it: skipping it would
silently train on a different data set than the one the user pointed at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Sampler

from ..errors import SkipswitchError

# torchvision's reference normalisation for ImageNet-style RGB data.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def order_and_batches(n: int, batch_size: int, shuffle: bool, seed: int, epoch: int) -> tuple[torch.Generator, list[torch.Tensor]]:
    """The global batches of one epoch (index tensors) and the generator that drew them."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    return generator, list(order.split(batch_size))


def shard_of(batch: torch.Tensor, shard: tuple[int, int]) -> torch.Tensor:
    """Rank ``shard[0]``'s contiguous part of a global batch of ``shard[1]`` ranks."""
    rank, world = shard
    return batch if world == 1 else torch.tensor_split(batch, world)[rank]


class ShardedBatches(Sampler[list[int]]):
    """Batch sampler: this rank's shard of each global batch, in the epoch's order."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, epoch: int, shard: tuple[int, int]):
        _, batches = order_and_batches(n, batch_size, shuffle, seed, epoch)
        self.batches = [shard_of(b, shard).tolist() for b in batches]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def decode_image(path: str, mode: str = "RGB"):
    """The PIL image at ``path``; a file PIL cannot read is one error line naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.convert(mode)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise SkipswitchError(f"cannot decode image {path}: {exc}") from None


class _Samples(torch.utils.data.Dataset):
    def __init__(self, split: "FileSplit", train: bool, seed: int, epoch: int):
        self.split, self.train, self.seed, self.epoch = split, train, seed, epoch

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int):
        path, label = self.split.samples[index]
        image = decode_image(path, self.split.mode)
        if not self.train:
            return self.split.eval_transform(image), label
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 100_003 + self.epoch) * 10_000_019 + index)
            return self.split.train_transform(image), label


@dataclass
class FileSplit:
    """A split read from files: ``samples`` are (path, class index) pairs."""

    samples: list[tuple[str, int]]
    image_size: int
    mode: str = "RGB"

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (3 if self.mode == "RGB" else 1), self.image_size, self.image_size

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([label for _, label in self.samples])

    def _transforms(self, train: bool) -> Callable:
        from torchvision.transforms import v2

        size = self.image_size
        head = ([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()] if train
                else [v2.Resize(round(size * 256 / 224), antialias=True), v2.CenterCrop(size)])
        channels = self.sample_shape[0]
        return v2.Compose([v2.PILToTensor(), *head, v2.ToDtype(torch.float32, scale=True),
                           v2.Normalize(IMAGENET_MEAN[:channels], IMAGENET_STD[:channels])])

    def __post_init__(self):
        self.train_transform, self.eval_transform = self._transforms(True), self._transforms(False)

    def batches(self, batch_size: int, *, augment: bool, seed: int, epoch: int, shard: tuple[int, int],
                workers: int, shuffle: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        sampler = ShardedBatches(len(self), batch_size, shuffle, seed, epoch, shard)
        loader = DataLoader(_Samples(self, augment, seed, epoch), batch_sampler=sampler, num_workers=workers,
                            pin_memory=torch.cuda.is_available(), persistent_workers=False)
        try:
            yield from loader
        except SkipswitchError as exc:  # re-raised from a worker with its traceback: keep the one line
            raise SkipswitchError(str(exc).strip().splitlines()[-1].split("SkipswitchError: ")[-1]) from None


def image_folder_samples(root: Path) -> tuple[list[tuple[str, int]], list[str]]:
    """(path, class) pairs of ``root/<class>/*`` in torchvision's ImageFolder order."""
    from torchvision.datasets import ImageFolder

    try:
        folder = ImageFolder(str(root), loader=lambda p: p)  # lists files; decodes nothing
    except (FileNotFoundError, RuntimeError) as exc:
        raise SkipswitchError(f"malformed image folder {root}: {exc}") from None
    return list(folder.samples), list(folder.classes)
