"""Datasets: digits (default), mnist5k, CIFAR/SVHN/ImageFolder from local files."""

from .datasets import DATASETS, Dataset, Split, iterate_batches, load_dataset

__all__ = ["DATASETS", "Dataset", "Split", "iterate_batches", "load_dataset"]
