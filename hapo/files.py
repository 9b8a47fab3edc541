"""Files replaced whole: a process killed at any moment leaves the old file or the new one."""

from __future__ import annotations

import contextlib
import os
import pathlib
import uuid
from collections.abc import Iterator
from typing import IO, Any


@contextlib.contextmanager
def replaced_atomically(path: str | os.PathLike, mode: str = "w", **open_args: Any) -> Iterator[IO]:
    """A new file beside `path` to write in the block ("w" or "wb" `mode`), which then replaces `path`.

    The new file (`.NAME.HEX.partial`) is flushed, synced and renamed over `path` when the
    block ends. If the block raises, the partial file is removed and `path` is untouched; one
    left by a killed process is removed by the next replacement of `path`.
    """
    path = pathlib.Path(path)
    for stale in path.parent.glob(f".{path.name}.*.partial"):
        stale.unlink(missing_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    try:
        with partial.open(mode.replace("w", "x"), **open_args) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
