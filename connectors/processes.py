"""Whether a process on this host still exists: how a restarted scheduler or a retrain knows that
a lock or a half-written folder was left by a process that was killed."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
