"""Small crash-safe file helpers shared by the recording store, keyring and manifests."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

PRIVATE_MODE = 0o600


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (a created, renamed or removed file) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of `data` to `fd` (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _write_temp(path: Path, data: bytes) -> Path:
    """Write `data` to a new owner-only temporary file next to `path`, fsync'd."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_MODE)
    try:
        write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return temp


def create_exclusive(path: Path, data: bytes) -> bool:
    """Create `path` (mode 0600) holding `data`, unless it exists; True if this call created it.

    The content is written to a temporary file first and hard-linked into place, so a second
    process starting at the same moment never reads a half-written file: it either loses the
    race (and reads the winner's complete file) or wins it.
    """
    temp = _write_temp(path, data)
    try:
        os.link(temp, path)
    except FileExistsError:
        return False
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


def replace_private(path: Path, data: bytes) -> None:
    """Atomically replace `path` with `data` (mode 0600): readers see the old or the new file."""
    temp = _write_temp(path, data)
    try:
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(path.parent)


def read_private(path: Path) -> tuple[bytes, os.stat_result]:
    """Read a whole regular file without following a symlink; returns its bytes and its stat.

    The stat comes from the open descriptor, so the permissions checked by the caller are those
    of the bytes returned.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        chunks = []
        while block := os.read(fd, 1 << 16):
            chunks.append(block)
        return b"".join(chunks), info
    finally:
        os.close(fd)


def exposed_to_others(info: os.stat_result) -> bool:
    """True if group or other users have any permission on the file (only 0600/0400 pass)."""
    return bool(info.st_mode & 0o077)
