"""Notebook kernels that end the moment the ``cwl`` process that started them ends.

jupyter_client starts each kernel in a session of its own, so a SIGKILL of ``cwl``'s group misses it. On Linux
the kernel asks, between fork and exec, for SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``; sent
when the starting thread ends: ``cwl`` starts kernels from its main thread). Connection files go under
``_build/kernels/``, those of dead ``cwl`` processes removed by the next run; the kernel's own stderr goes to
a ``.log`` beside them (an interrupted kernel prints a traceback of its closed socket).
"""
from __future__ import annotations

import atexit
import ctypes
import os
import signal
import sys
import uuid
from pathlib import Path

from jupyter_client import AsyncKernelManager

from .paths import project_root

_PR_SET_PDEATHSIG = 1


def die_with_parent_hook():
    """A ``preexec_fn`` that makes the child receive SIGKILL when this process ends; None where unsupported."""
    if not sys.platform.startswith("linux"):
        return None
    try:  # libc's prctl, looked up before forking (the child should do as little as possible)
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return hook


def connection_folder() -> Path:
    """Where this project's kernels' connection files go; those of ``cwl`` processes now gone are removed."""
    folder = project_root() / "_build" / "kernels"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("kernel-*-*.json"), *folder.glob("kernel-*-*.log")]:
        try:
            os.kill(int(stale.name.split("-")[1]), 0)
        except ProcessLookupError:
            stale.unlink(missing_ok=True)
        except (ValueError, PermissionError):
            pass  # not named by cwl, or another user's process: left alone
    return folder


class BoundKernelManager(AsyncKernelManager):
    """jupyter_client's kernel manager, launching kernels that die with this process (see the module)."""

    async def _async_pre_start_kernel(self, **kw):
        if not self.connection_file:
            self.connection_file = str(connection_folder() / f"kernel-{os.getpid()}-{uuid.uuid4().hex[:12]}.json")
            # an interrupted cwl skips jupyter_client's clean-up; its kernel dies with it, so the file goes too
            atexit.register(Path(self.connection_file).unlink, missing_ok=True)
        return await super()._async_pre_start_kernel(**kw)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        hook = die_with_parent_hook()
        if hook is not None and "preexec_fn" not in kw:
            kw["preexec_fn"] = hook
        if "stderr" in kw or not self.connection_file:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        with open(Path(self.connection_file).with_suffix(".log"), "ab") as log:  # the child keeps its own copy
            return await super()._async_launch_kernel(kernel_cmd, stdout=log, stderr=log, **kw)
