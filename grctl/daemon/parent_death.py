"""Children that do not outlive grctld: a process started with ``die_with_parent(sig)`` as its
``preexec_fn`` receives ``sig`` from the kernel when grctld dies, even by SIGKILL (Linux
PR_SET_PDEATHSIG). Used for the embedded nats-server, which cannot watch a pipe as the Python children
do; without it a killed grctld leaves the server holding its port and store.

The kernel sends the signal when the *thread* that started the child ends: start such children from
a thread that lives as long as grctld (the event loop's, or its default executor's).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()  # looked up now: the function below runs between fork and exec


def die_with_parent(signum: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks for ``signum`` when the starting process dies; None off Linux."""
    if _PRCTL is None:
        return None
    prctl, parent = _PRCTL, os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), signum)

    return arm
