"""Safe file writing and bounded JSON reading, shared by checkpoints and run folders.

Writes go to a temporary file in the same folder and are moved into place with
``os.replace``, so a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from soartlab.errors import CheckpointError

MAX_JSON_BYTES = 16 * 1024**2  # run.json and checkpoint metadata: far above any real one
MAX_CHECKPOINT_BYTES = 2 * 1024**3  # a weights file: 2 GiB, far above any model this app trains


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never
    a half-written one: temp file in the same folder, flush + fsync, ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        # Also on KeyboardInterrupt: never leave a stray temp file behind.
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """`atomic_write_bytes` of ``obj`` as indented UTF-8 JSON."""
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    return atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def parse_json_object(raw: bytes | str, source: str) -> dict[str, Any]:
    """The JSON object in ``raw``; `CheckpointError` naming ``source`` when it is larger
    than ``MAX_JSON_BYTES``, not UTF-8 JSON, nested too deep, or not an object."""
    if len(raw) > MAX_JSON_BYTES:
        raise CheckpointError(f"'{source}' is larger than {MAX_JSON_BYTES // 1024**2} MiB.")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"'{source}' is not valid UTF-8 JSON ({exc}).") from None
    except RecursionError:
        raise CheckpointError(f"'{source}' is nested too deeply to be a SOART Lab file.") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"'{source}' must hold a JSON object; got {type(data).__name__}.")
    return data


def read_regular_file(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` of them; `CheckpointError`
    naming the file when it is something else (a FIFO, a device, a folder), larger than
    ``max_bytes`` or unreadable.

    The file is opened without blocking and checked on the open descriptor, so a FIFO put
    in its place is never waited on, and at most ``max_bytes + 1`` bytes are read whatever
    the file claims its size is."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise CheckpointError(f"'{path}' could not be read: {exc.strerror}.") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CheckpointError(f"'{path}' is not a regular file.")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise CheckpointError(f"'{path}' could not be read: {exc.strerror}.") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise CheckpointError(
            f"'{path}' is larger than {max_bytes:,} bytes, the most a SOART Lab run file holds."
        )
    return data


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any]:
    """`parse_json_object` of a regular file of at most ``MAX_JSON_BYTES``
    (`read_regular_file`: a FIFO or device is refused, never read)."""
    return parse_json_object(read_regular_file(path, MAX_JSON_BYTES), str(path))


def check_writable_folder(folder: str | os.PathLike[str]) -> Path:
    """Make sure files can be created in ``folder``, or in its nearest existing parent when
    it does not exist yet (it would be created there), by creating and removing a file;
    `CheckpointError` naming the folder otherwise. Returns the folder checked. For a
    check before long work: a read-only folder or a file in the way is found now."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CheckpointError(f"'{existing}' is not a folder, so '{folder}' cannot be made.")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".soartlab-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CheckpointError(
            f"Cannot write in '{existing}' ({exc.strerror}); choose a folder you can write to."
        ) from None
    return existing
