"""Atomic file output: write to a temporary file beside the target, then rename.

A crash or an error part-way leaves the target untouched (the old file, or none). The temporary
file is named `.<target>.<pid>.<random>.tmp`; one left behind by a process that was killed (its
pid no longer running) is removed by the next write of the same target. A new file gets the mode
the umask allows (as open() would give it); a replaced file keeps its mode.
`check_writable(path)` tells, before any work starts, whether a file (or folder) can be written
there: a CLI calls it first, so that a read-only disk or a path through a file is one line at the
start, not a traceback after the work.
Shared by every CLI and the app that writes results, checkpoints or tokenizers.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from accounting.errors import UserError

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    with _UMASK_LOCK:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temporaries(target: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of `target` whose writing process is gone; return them."""
    target = Path(target)
    # ".<name>.<pid>.<random>.tmp"; before pids were named: ".<name>.<random>.tmp"
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(?:(\d+)\.)?[A-Za-z0-9_]+\.tmp$")
    removed = []
    for tmp in target.parent.glob(f".{target.name}.*.tmp"):
        match = pattern.match(tmp.name)
        if match and not (match.group(1) and _pid_alive(int(match.group(1)))):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def check_writable(path: str | os.PathLike[str], *, folder: bool = False) -> Path:
    """UserError (one line) unless a file (`folder=False`) or a folder could be created or replaced
    at `path`: its nearest existing ancestor must be a writable folder, and an existing `path`
    must be of the right kind. Returns the path."""
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            raise UserError(f"cannot write into {path}: it is a file, not a folder")
        if not folder and path.is_dir():
            raise UserError(f"cannot write {path}: it is a folder")
    ancestor = path.parent if not (folder and path.is_dir()) else path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"cannot write {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        why = "read-only file system" if _read_only(ancestor) else "permission denied"
        raise UserError(f"cannot write {path}: {ancestor} is not writable ({why})")
    return path


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success rename it onto `path`."""
    target = Path(path)
    check_writable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)  # mkstemp makes 0600
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
