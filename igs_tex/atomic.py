"""Atomic file output: every file igs-tex writes goes through here.

A temp file next to the target, then os.replace: a crash, a full disk or a reader running at
the same time (hot reload, a parallel bake) sees the old file or the new one, never half of one.
JSON that igs-tex writes is made by json_text: strict, so every JSON reader accepts it.
"""

from __future__ import annotations

import json
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


def json_text(obj, *, indent: int | None = 2) -> str:
    """Strict JSON (RFC 8259, what JavaScript's JSON.parse accepts) of `obj`.

    Python's json writes NaN and infinities as NaN / Infinity, which are not JSON; here they
    raise ValueError, so a value that cannot be written is a loud error rather than a file other
    tools reject. Callers map the non-finite values they expect (an infinite PSNR) to something
    JSON has. numpy scalars and arrays are written as numbers and lists.
    """
    return json.dumps(obj, indent=indent, allow_nan=False, default=_plain)


def _plain(o):
    if hasattr(o, "tolist"):  # numpy scalars and arrays
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")
