"""Atomic file output: every file igs-tex writes goes through here.

A temp file next to the target, then os.replace: a crash, a full disk or a reader running at
the same time (hot reload, a parallel bake) sees the old file or the new one, never half of one.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable

from . import IgsError


def atomic_write(target, write: Callable[[Path], None]) -> None:
    """Call write(tmp_path) and rename the result onto target; on failure remove the temp file."""
    target = Path(target)
    tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        # Created with 0o666 so the umask decides the mode, as for any ordinary output file.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        write(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise IgsError(f"{target}: cannot write: {exc.strerror or exc}") from None
        raise


def atomic_write_bytes(target, data: bytes) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    atomic_write(target, write)


def atomic_write_text(target, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))
