"""The registry actor behind :class:`cwl_lib.ray_executor.SharedSplits`; a module without torch or the studies,
so that the actor's process starts with Ray and NumPy alone.
"""
from __future__ import annotations

import asyncio

import ray


class SplitRegistry:
    """The grid's datasets in the object store, keyed by (name, input size, data root), owned by this actor
    (they outlive any worker, and go when the registry is killed)."""

    def __init__(self):
        self._refs: dict = {}
        self._building: dict = {}

    async def take(self, key, load) -> list:
        """A one-item list (so Ray hands over the reference, not the arrays) holding the split's reference; the
        first caller of a key has it decoded while the others wait."""
        while key in self._building:
            await self._building[key].wait()
        if key not in self._refs:
            self._building[key] = asyncio.Event()
            try:  # in a thread: the other callers' waits are answered meanwhile
                self._refs[key] = [await asyncio.to_thread(lambda: ray.put(_to_arrays(load(*key))))]
            finally:
                self._building.pop(key).set()
        return self._refs[key]


def _to_arrays(split) -> dict:
    return {"name": split.name, "classes": list(split.classes),
            **{f"{part}_{what}": getattr(getattr(split, part), what).numpy()
               for part in ("train", "test") for what in ("images", "labels")}}
