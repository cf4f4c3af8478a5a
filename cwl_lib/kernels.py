"""Notebook kernels that end the moment the ``cwl`` process that started them ends.

jupyter_client starts each kernel in a session of its own (so that an interrupt reaches the
kernel's whole process group), so a SIGKILL of ``cwl``'s process group misses the kernel, and
ipykernel notices its parent is gone only at its next one-second poll, running (and writing
records) meanwhile. On Linux, :class:`BoundKernelManager` has the kernel ask, between fork and
exec, to receive SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``). Linux sends that
signal when the thread that started the kernel ends: ``cwl`` starts kernels from its main thread
(papermill runs its event loop there when none is running), so that is when the process ends.
Elsewhere the kernel keeps ipykernel's own poll.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

from jupyter_client import AsyncKernelManager

_PR_SET_PDEATHSIG = 1


def _prctl():
    """libc's ``prctl``, looked up before forking (the child should do as little as possible)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent_hook():
    """A ``preexec_fn`` that makes the child receive SIGKILL when this process ends; None where unsupported."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return hook


class BoundKernelManager(AsyncKernelManager):
    """jupyter_client's kernel manager, launching kernels that die with this process (see the module)."""

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        hook = die_with_parent_hook()
        if hook is not None and "preexec_fn" not in kw:
            kw["preexec_fn"] = hook
        return await super()._async_launch_kernel(kernel_cmd, **kw)
