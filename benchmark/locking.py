"""An exclusive lock on a lock file (``fcntl.flock``), for work that two processes sharing a
folder must not do at once: taking over a stale claim, generating the mini world.

The kernel releases the lock when its process ends, however it ends, so a killed process
never leaves a lock behind. The lock file itself stays; it holds nothing.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created if needed), waiting for it."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock
