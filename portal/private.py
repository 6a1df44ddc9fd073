"""Files only the portal's own user may read: the database (with SQLite's -wal and -shm), keys,
recordings and exports are 0600, their folders 0700.

The process umask (set by create_app) covers every file anything creates, SQLite and PyAV
included; the explicit modes here also hold under another umask, and `tighten` corrects what an
earlier version left readable by others.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
#: Nobody but the owner gets any permission on what this process creates.
UMASK = 0o077


def restrict_umask() -> None:
    """Add group and other to the process umask (keeping whatever else it already masks)."""
    os.umask(os.umask(UMASK) | UMASK)


def folder(path: Path) -> Path:
    """Make the folder (and missing parents) 0700; an existing one is tightened."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    tighten(path)
    return path


def new_file(path: Path) -> None:
    """Create an empty file 0600, so that whatever writes it later (a library that opens it by
    name, e.g. PyAV) writes into a private file."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE))


def tighten(path: Path) -> None:
    """Take group and other permissions off an existing file or folder we own."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if info.st_uid == os.geteuid() and info.st_mode & 0o077 and not path.is_symlink():
        path.chmod(info.st_mode & 0o700)


def sqlite_files(database: Path) -> None:
    """The SQLite database and its -wal, -shm and -journal files: 0600 (a missing folder is made
    0700). An empty new file is a valid empty database; SQLite gives its -wal and -shm the
    database file's permissions."""
    database.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if not database.exists():
        new_file(database)
    for path in (database, *(database.with_name(database.name + s)
                             for s in ("-wal", "-shm", "-journal"))):
        tighten(path)
