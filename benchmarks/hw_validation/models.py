"""PyTorch definitions of the validation designs (the Keras originals' layer sizes, as their
hls4ml ``firmware/defines.h`` and ``parameters.h`` give them)."""

from __future__ import annotations

from torch import nn


class MnistCnn(nn.Module):
    """28x28x1 -> conv 3x3x4 -> ReLU -> max pool 4 -> conv 3x3x8 -> ReLU -> max pool 2 -> dense 10
    -> head (softmax, relu or linear), no padding, biases on (pominiq/DNNonSilicon's MNIST CNN)."""

    def __init__(self, head: str = "softmax"):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(4)
        self.conv2 = nn.Conv2d(4, 8, 3)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32, 10)
        self.head = {"softmax": nn.Softmax(dim=1), "relu": nn.ReLU(), "linear": None}[head]

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.fc(self.flatten(x))
        return x if self.head is None else self.head(x)


BUILDERS = {"mnist_cnn": MnistCnn}
