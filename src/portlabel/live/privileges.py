"""Dropping root after the capture is open: supplementary groups, then group, then user.

Capture sockets are opened as root; everything after (decoding, writing output files) can
run as an unprivileged ``--user``. The order matters: groups and gid must change while we
still have the right to change them, the uid last. A failure is an error, never a silent
continue as root.
"""

from __future__ import annotations

import os
import pwd

from portlabel.errors import UsageError


def drop_privileges(user: str) -> tuple[int, int]:
    """Become ``user`` (name or uid) for good; returns (uid, gid)."""
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise UsageError(f"--user {user}: no such user") from None
    if os.geteuid() != 0:
        if os.geteuid() == entry.pw_uid:
            return entry.pw_uid, entry.pw_gid
        raise UsageError(f"--user {user}: only root can change user")
    os.initgroups(entry.pw_name, entry.pw_gid)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    if os.getuid() != entry.pw_uid or os.geteuid() != entry.pw_uid:
        raise UsageError(f"--user {user}: could not drop privileges")
    return entry.pw_uid, entry.pw_gid
