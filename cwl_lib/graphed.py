"""A training step replayed from a CUDA graph: forward, backward and the optimizer step of one model.

A few-shot step launches about two thousand small kernels; on an H100 the GPU waits for Python far longer than
it computes (benchmarks/README.md). The capture follows PyTorch's whole-network recipe (eager warm-up steps on a
side stream, gradients set to None, ``capturable=True``). Each input shape gets its own graph after ``warmup``
real eager steps, so the run is the same run. ``CWL_CUDA_GRAPHS=0`` turns graphs off.
"""
from __future__ import annotations

import os
from typing import Callable

import torch
from torch import nn


def enabled(device: torch.device, bn_train: bool = False) -> bool:
    """Whether :func:`cwl_lib.transfer.train` replays its steps from graphs on ``device``."""
    return device.type == "cuda" and not bn_train and os.environ.get("CWL_CUDA_GRAPHS", "1") != "0"


class GraphedStep:
    """``step(x, y)`` trains ``model`` on one batch and returns the loss (a device tensor)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 loss_of: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor], warmup: int = 3):
        self.model, self.optimizer, self.loss_of, self.warmup = model, optimizer, loss_of, warmup
        self.graphs: dict[tuple, tuple] = {}
        self.seen: dict[tuple, int] = {}
        self.side = torch.cuda.Stream()

    def _eager(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # zero in place: the gradients may live in a graph's pool, where that graph's optimizer reads them
        self.optimizer.zero_grad(set_to_none=False)
        loss = self.loss_of(self.model, x, y)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        static_x, static_y = x.clone(), y.clone()
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            static_loss = self.loss_of(self.model, static_x, static_y)
            static_loss.backward()
            self.optimizer.step()
        return graph, static_x, static_y, static_loss

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.stride(), x.dtype, tuple(y.shape), y.dtype)
        captured = self.graphs.get(key)
        if captured is None:
            if self.seen.get(key, 0) < self.warmup:
                self.seen[key] = self.seen.get(key, 0) + 1
                self.side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(self.side):
                    loss = self._eager(x, y)
                torch.cuda.current_stream().wait_stream(self.side)
                return loss
            captured = self.graphs[key] = self._capture(x, y)
        graph, static_x, static_y, static_loss = captured
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()
        return static_loss.clone()  # the next replay overwrites static_loss
