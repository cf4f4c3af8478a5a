"""What a study's runs need besides their config: a device, the data, the backbones, a shared folder.

A :class:`Context` keeps the latest dataset and backbone it loaded (:meth:`memo`), so memory holds one of each;
the executor orders runs so that those sharing data come together.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .. import records, transfer
from ..data import classification as cdata
from ..models import load_backbone
from ..runtime import pick_device


def default_split(name: str, input_size: int, data_root: str | None) -> cdata.Split:
    """A classification dataset stored at 224 or more (resized per batch)."""
    return cdata.load(name, data_root, size=max(input_size, 224), progress=False)


@dataclass
class Context:
    device: torch.device | str = "auto"
    data_root: str | None = None
    shared: Path | None = None  # a folder runs of one study share (a transferred network, say)
    load_split: Callable[[str, int, str | None], cdata.Split] = default_split
    load_model: Callable[[str, bool], nn.Module] = load_backbone
    progress: bool = False  # inner progress bars (decoding, descriptors)
    eval_batch_size: int = 256  # batch sizes that change speed and memory, not results
    extract_batch_size: int = 16
    _memo: dict = field(default_factory=dict, repr=False)
    requested: str = field(default="", repr=False)  # the device as asked ("auto", "cuda", ...): Ray workers decide "auto"

    def __post_init__(self):
        self.requested = self.requested or str(getattr(self.device, "type", self.device))
        if not isinstance(self.device, torch.device):
            self.device = pick_device(str(self.device))

    def memo(self, kind: str, key: Any, build: Callable[[], Any]) -> Any:
        """``build()`` once per ``key``; only the latest value of each ``kind`` is kept."""
        held = self._memo.get(kind)
        if held is None or held[0] != key:
            self._memo.pop(kind, None)  # free the old value before building its successor
            self._memo[kind] = (key, build())
        return self._memo[kind][1]

    def backbone(self, arch: str, pretrained: bool = True) -> nn.Module:
        """The pretrained backbone (in eval mode), loaded once; runs work on copies of it."""
        return self.memo("backbone", (arch, pretrained), lambda: self.load_model(arch, pretrained).eval())

    def split(self, name: str, input_size: int) -> cdata.Split:
        return self.memo("split", (name, input_size), lambda: self.load_split(name, input_size, self.data_root))

    def correct(self, model: nn.Module, test: cdata.ImageSet, size: int) -> torch.Tensor:
        """Whether ``model`` gets each image of ``test`` right (:func:`cwl_lib.transfer.correct`)."""
        return transfer.correct(model, test.images, test.labels, self.device, size=size,
                                batch_size=self.eval_batch_size)

    def accuracy(self, model: nn.Module, test: cdata.ImageSet, size: int) -> float:
        """Top-1 accuracy of ``model`` on ``test`` (:func:`cwl_lib.transfer.evaluate`)."""
        return transfer.evaluate(model, test.images, test.labels, self.device, size=size,
                                 batch_size=self.eval_batch_size)

    def record(self, study: str, config, start: float, **results) -> dict:
        """A run's record (:func:`cwl_lib.records.new_record`) on this device, timed from ``start``."""
        return records.new_record(study, config, self.device, **results, seconds=time.perf_counter() - start)


__all__ = ["Context", "default_split"]
