"""Where the gateway's admin socket lives: a folder only its owner may enter.

The socket is HAProxy's Runtime API at admin level (it changes what every model serves), so
it is `<state folder>/admin/gateway.sock`, the folder 0700. HAProxy takes a socket path of 97
bytes, and HAProxy expands `$NAME` in an address whatever the quoting; where that path is
longer or holds a `$`, the socket goes into a short private folder that mkdtemp makes (0700,
a random name), recorded in `admin/socket-folder` and used again while it is still this
user's and private; never a predictable name in a shared temporary folder, which another
local user could create first. A stopped gateway's short folder is removed with its record.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from maas.errors import DeployError
from maas.files import write_text_atomic

# a Unix socket's path: sockaddr_un holds 107 bytes, and HAProxy keeps 10 of them for the
# suffix of the temporary name it binds first (`haproxy -c`: "too long (max 97)")
SOCKET_BYTES = 97
SOCKET_NAME = "gateway.sock"


def admin_socket(folder: Path) -> Path:
    """The admin socket's path for the gateway whose files are in `folder`."""
    private = folder / "admin"
    inside = private / SOCKET_NAME
    if fits(inside):
        return inside
    record = private / "socket-folder"
    with contextlib.suppress(OSError, ValueError):
        recorded = Path(record.read_text().strip())
        if private_folder(recorded):
            return recorded / SOCKET_NAME
    make_private(private)
    short = Path(tempfile.mkdtemp(prefix="maas-gw-"))
    write_text_atomic(record, str(short))
    return short / SOCKET_NAME


def release(folder: Path) -> None:
    """A stopped gateway's socket gone; its short private folder too, with its record (the
    next start makes a new one, never the same name again: someone may have seen it)."""
    private = folder / "admin"
    (private / SOCKET_NAME).unlink(missing_ok=True)
    record = private / "socket-folder"
    with contextlib.suppress(OSError, ValueError):
        recorded = Path(record.read_text().strip())
        if private_folder(recorded):
            (recorded / SOCKET_NAME).unlink(missing_ok=True)
            recorded.rmdir()
    record.unlink(missing_ok=True)


def fits(path: Path) -> bool:
    """HAProxy binds `path` as given: short enough, nothing it would expand or unescape."""
    return len(os.fsencode(path)) <= SOCKET_BYTES and not set(str(path)) & set("$\\\n")


def make_private(folder: Path) -> None:
    """`folder`, made if missing, that only its owner (this user) may enter; one that is a
    link or another user's is refused."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise DeployError(f"{folder} (the gateway's admin socket folder) is not this user's")
    if stat.S_IMODE(info.st_mode) & 0o077:
        folder.chmod(0o700)


def private_folder(folder: Path) -> bool:
    """A folder (not a link) this user owns, that no one else may enter, short enough."""
    try:
        info = folder.lstat()
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and not stat.S_IMODE(info.st_mode) & 0o077
        and fits(folder / SOCKET_NAME)
    )
