"""Process hygiene at start: no core dumps, and no reading of this process's memory by its peers.

The worker holds submitted shares, the master key while a quorum is combined,
the new share and one-time pads in its memory. A core dump would
write them to disk, and any process of the same user could read them through
/proc/PID/mem or ptrace. So, whatever the environment allowed (an
``ulimit -c unlimited`` shell, a unit without ``LimitCORE=0``):

- ``RLIMIT_CORE`` is set to 0, soft and hard: no core file, and no way back;
- ``PR_SET_DUMPABLE`` is set to 0 (Linux, through libc's ``prctl``, since the
  standard library has no binding): no core dump either, and the kernel lets
  only a process with ``CAP_SYS_PTRACE`` attach to this one or open its
  /proc/PID/mem and environ; /proc/PID belongs to root from then on.

Both are inherited by threads and forks, and reset for gpg by its exec, which
holds no secret of ours. Clearing buffers is a separate, best-effort matter
(see the ceremonies); this module only closes the two doors the kernel keeps.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys

__all__ = ["harden_process"]

_PR_SET_DUMPABLE = 4  # <linux/prctl.h>
_PR_GET_DUMPABLE = 3


def harden_process() -> dict[str, object]:
    """Turn core dumps off and make the process non-dumpable; return what the kernel now says."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # lowering a limit is always allowed
    dumpable: int | None = None
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"prctl(PR_SET_DUMPABLE, 0) failed: {error}")
        dumpable = libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0)
    return {"core_limit": resource.getrlimit(resource.RLIMIT_CORE), "dumpable": dumpable}
