"""Data read from users' files: a streamed image folder, and CIFAR-10/100 and SVHN in
their official formats, written by the tests (no download)."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from skipswitch.data import iterate_batches, load_dataset
from skipswitch.data.files import FileSplit
from skipswitch.errors import SkipswitchError
from skipswitch.models import create_model
from skipswitch.training import Trainer, TrainConfig

PALETTE = np.array([[220, 30, 30], [30, 200, 30], [30, 30, 220], [220, 220, 30], [30, 220, 220]])
PER_CLASS = {"train": 500, "test": 100}  # 3,000 JPEGs
FILE_SIZE = 64


def _write_folder(root: Path, per_class: dict[str, int], size: int = FILE_SIZE) -> None:
    rng = np.random.default_rng(0)
    for sub, n in per_class.items():
        for k, color in enumerate(PALETTE):
            (root / sub / f"c{k}").mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(color + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / sub / f"c{k}" / f"{i}.jpg", quality=90)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagefolder")
    _write_folder(root, PER_CLASS)
    return root


def _rss_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0])


def test_streamed_image_folder_has_right_labels(folder):
    ds = load_dataset("imagefolder", folder, stream=True, image_size=16)
    assert isinstance(ds.train, FileSplit) and ds.input_size == (16, 16) and ds.num_classes == 5
    assert len(ds.train) + len(ds.val) == 2500 and len(ds.test) == 500
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None]
    for x, y in iterate_batches(ds.val, 100, workers=0):
        rgb = (x.flatten(2).mean(2) * std.T + mean.T) * 255  # undo the normalisation
        nearest = torch.cdist(rgb, torch.tensor(PALETTE, dtype=torch.float32)).argmin(1)
        assert torch.equal(nearest, y)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak RSS reset needs Linux /proc")
def test_streamed_image_folder_trains_an_epoch_in_bounded_memory(folder, tmp_path):
    ds = load_dataset("imagefolder", folder, stream=True, image_size=16)
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=5, in_channels=3, input_size=16)
    rss = {}

    def measure(epoch, model):  # epoch 0 warms up (imports, allocator); epoch 1 is measured
        if epoch == 1:
            Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
            rss["before"] = _rss_kib("VmRSS")
        if epoch == 2:
            rss["peak"] = _rss_kib("VmHWM")
        return [], None

    config = TrainConfig(epochs=3, batch_size=128, lr=0.05, workers=2)
    result = Trainer(model, ds, config, tmp_path, epoch_hook=measure, quiet=True).fit()
    train_growth = (rss["peak"] - rss["before"]) / 1024
    # Reading an epoch at the files' own 64x64, which decoded as float32 would take
    # 2,250 * 3 * 64 * 64 * 4 B = 105 MiB in memory (the whole folder: 141 MiB).
    full = load_dataset("imagefolder", folder, stream=True, image_size=FILE_SIZE)
    Path("/proc/self/clear_refs").write_text("5")
    before = _rss_kib("VmRSS")
    n, total = 0, 0.0
    for x, y in iterate_batches(full.train, 128, augment=full.augment, workers=2):
        n, total = n + len(y), total + float(x.sum())  # touch every batch
    read_growth = (_rss_kib("VmHWM") - before) / 1024
    print(f"peak RSS growth: training epoch {train_growth:.1f} MiB, reading epoch {read_growth:.1f} MiB")
    # Bound: 48 MiB, a third of the decoded folder. Training holds the step's activations
    # (batch 128 of 16x16: ~24 MiB measured) and reading a few batches in flight.
    assert n == 2250 and train_growth < 48 and read_growth < 48, (train_growth, read_growth)
    assert result.test_acc > 0.6  # 5 colour-coded classes: chance is 0.2


@pytest.mark.parametrize("stream", [True, False])
def test_corrupt_image_is_one_line_naming_the_file(tmp_path, stream):
    _write_folder(tmp_path, {"train": 20, "test": 4}, size=8)
    bad = tmp_path / "train" / "c3" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(SkipswitchError) as err:
        ds = load_dataset("imagefolder", tmp_path, stream=stream, image_size=8)
        for split in (ds.train, ds.val):
            for _ in iterate_batches(split, 8, augment="resized_crop_flip", workers=1):
                pass
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"cannot decode image {bad}")


def test_size_rule_chooses_the_path(tmp_path, monkeypatch):
    from skipswitch.data import datasets

    _write_folder(tmp_path, {"train": 20, "test": 4}, size=8)
    decoded = 120 * 3 * 8 * 8 * 4
    monkeypatch.setattr(datasets, "IN_MEMORY_BYTES", decoded)
    assert not isinstance(load_dataset("imagefolder", tmp_path, image_size=8).train, FileSplit)
    monkeypatch.setattr(datasets, "IN_MEMORY_BYTES", decoded - 1)
    assert isinstance(load_dataset("imagefolder", tmp_path, image_size=8).train, FileSplit)
    assert not isinstance(load_dataset("imagefolder", tmp_path, image_size=8, stream=False).train, FileSplit)
    with pytest.raises(SkipswitchError, match="dataset digits takes no options"):
        load_dataset("digits", stream=True)


# -- official formats -------------------------------------------------------------------------
def _pattern(labels: np.ndarray) -> np.ndarray:
    """N x 3 x 32 x 32 uint8: channel (label % 3) bright in the top half only."""
    x = np.zeros((len(labels), 3, 32, 32), dtype=np.uint8)
    for i, label in enumerate(labels):
        x[i, label % 3, :16] = 100 + label
    return x


def _check_pattern(split, labels_seen: set) -> None:
    x, y = split.images, split.labels
    assert torch.equal(x.mean(dim=(2, 3)).argmax(1), y % 3)
    bright = x[torch.arange(len(y)), y % 3]
    assert bool((bright[:, :16].mean((1, 2)) > bright[:, 16:].mean((1, 2))).all())  # rows not transposed
    labels_seen.update(y.tolist())


def _pickle(path: Path, obj) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))  # the official files are Python 2 pickles


@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_pickled_batches(tmp_path, monkeypatch, classes):
    from torchvision.datasets import CIFAR10

    # torchvision checks the official files' md5 sums; ours have the format, not those bytes.
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args, **kwargs: True)
    cls = CIFAR10 if classes == 10 else __import__("torchvision").datasets.CIFAR100
    folder = tmp_path / cls.base_folder
    folder.mkdir()
    key = "labels" if classes == 10 else "fine_labels"
    rng = np.random.default_rng(0)
    counts = {}
    for name, _ in cls.train_list + cls.test_list:
        labels = rng.permutation(np.arange(60 if classes == 10 else 1000) % classes)  # stratifiable
        rows = _pattern(labels).reshape(len(labels), 3072)  # R plane, G plane, B plane, row-major
        _pickle(folder / name, {"data": rows, key: labels.tolist(), "batch_label": name})
        counts[name] = len(labels)
    _pickle(folder / cls.meta["filename"], {cls.meta["key"]: [f"class{i}" for i in range(classes)]})
    ds = load_dataset(f"cifar{classes}", tmp_path)
    train_count = sum(counts[n] for n, _ in cls.train_list)
    assert len(ds.train) + len(ds.val) == train_count and len(ds.test) == counts[cls.test_list[0][0]]
    assert ds.input_size == (32, 32) and ds.in_channels == 3 and ds.num_classes == classes
    seen: set = set()
    for split in (ds.train, ds.val, ds.test):
        _check_pattern(split, seen)
    assert seen == set(range(classes))


def test_svhn_mat_files(tmp_path, monkeypatch):
    import scipy.io

    monkeypatch.setattr("torchvision.datasets.svhn.check_integrity", lambda *args, **kwargs: True)
    rng = np.random.default_rng(0)
    sizes = {"train": 200, "test": 50}
    for split, n in sizes.items():
        digits = rng.integers(0, 10, n)
        digits[:10] = np.arange(10)
        x = _pattern(digits).transpose(2, 3, 1, 0)  # SVHN's .mat layout: H x W x C x N
        y = np.where(digits == 0, 10, digits)[:, None]  # the digit 0 is stored as label 10
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y.astype(np.uint8)})
    ds = load_dataset("svhn", tmp_path)
    assert len(ds.train) + len(ds.val) == 200 and len(ds.test) == 50 and ds.num_classes == 10
    seen: set = set()
    for split in (ds.train, ds.val, ds.test):
        _check_pattern(split, seen)
    assert seen == set(range(10))
