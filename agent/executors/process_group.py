"""Stopping a whole process group: SIGTERM, a grace period, then SIGKILL.

Liveness comes from /proc where it exists. A member that has died but was
not reaped yet (a zombie) still counts as a member for killpg(), and an
orphaned grandchild is reaped only by PID 1, which some containers never do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator

# How often a group is checked while waiting for it to end.
_POLL_INTERVAL_S = 0.02
# How long to wait for the kernel to finish off a group after SIGKILL.
_AFTER_KILL_WAIT_S = 1.0


def group_alive(group_id: int) -> bool:
    """Return whether any process of the group is running (zombies do not count)."""
    try:
        os.killpg(group_id, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # A member changed its user id; it still exists.
        return True
    if not os.path.isdir("/proc/self"):
        return True
    return any(_group_members_running(group_id))


def _group_members_running(group_id: int) -> Iterator[bool]:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat_file:
                stat = stat_file.read()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may contain spaces.
        fields = stat[stat.rfind(b")") + 2 :].split()
        state, process_group = fields[0], int(fields[2])
        if process_group == group_id:
            yield state not in (b"Z", b"X")


def signal_group(group_id: int, signal_number: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group_id, signal_number)


async def wait_group_ended(group_id: int, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for the group to end; return whether it did."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while group_alive(group_id):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(_POLL_INTERVAL_S)
    return True


async def terminate_group(group_id: int, *, grace_s: float) -> None:
    """Stop every process of the group: SIGTERM, then SIGKILL to what is left after `grace_s`.

    Returns at once when the group has no running member. Cancellation
    during the grace period still sends SIGKILL.
    """
    if not group_alive(group_id):
        return
    signal_group(group_id, signal.SIGTERM)
    try:
        if await wait_group_ended(group_id, grace_s):
            return
    finally:
        signal_group(group_id, signal.SIGKILL)
    await wait_group_ended(group_id, _AFTER_KILL_WAIT_S)
