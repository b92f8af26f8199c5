"""Running an external program for a batch: its own process group, stdin closed, logs to files, a timeout, and the
whole group stopped (SIGTERM, then SIGKILL) on a timeout, on an interrupted wait and after the program exits; on
Linux the program also dies with the benchmark process (`PR_SET_PDEATHSIG`). POSIX only (process groups)."""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

KILL_GRACE_S = 2.0  # between SIGTERM and SIGKILL of a command's process group
TAIL_CHARS = 300  # of the command's stderr quoted in an error
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass(frozen=True)
class CommandRun:
    """How one run of a command ended: its exit status (None: killed for passing its timeout), wall time and logs."""

    returncode: int | None
    wall_s: float
    stdout: Path
    stderr: Path

    def tail(self) -> str:
        """The end of its stderr (of its stdout when stderr is empty), quoted on one line for an error message."""
        err = _tail(self.stderr)
        out = "" if err else _tail(self.stdout)
        return f"stdout tail: {out!r}" if out else f"stderr tail: {err!r}"


def _tail(path: Path) -> str:
    """The last TAIL_CHARS characters of a log file, stripped ('' when it is empty or unreadable)."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4 * TAIL_CHARS))
            data = fh.read()
    except OSError:
        return ""
    return data.decode("utf-8", "replace").strip()[-TAIL_CHARS:]


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl on Linux; None elsewhere, or when it cannot be found."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn (Linux) asking the kernel to SIGKILL the command when this process dies, even of SIGKILL or
    of an unhandled SIGTERM, which no `finally` sees (`PR_SET_PDEATHSIG`; this library installs no signal
    handlers). Limits: only the command gets it, not processes it starts (those are killed with its group on a
    timeout or an interrupted wait, not when the runner dies); the kernel sends it when the *thread* that started
    the command ends, and `run_command`'s thread waits for the command, so it outlives it. Python calls
    preexec_fn unsafe in threaded programs (the child could deadlock before exec): this one only calls an
    already-resolved C function and getppid."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL))
        if os.getppid() != parent:  # the runner died before the request took effect
            os._exit(1)

    return preexec


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; False when no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal: still there
        return True
    return True


def _group_alive(pgid: int) -> bool:
    """Whether a process group has a member that is not a zombie. Orphans are reaped by init, which in a
    container may never do it: zombies alone must not hold the wait for the grace period (Linux: /proc)."""
    if not _signal_group(pgid, 0):
        return False
    if not sys.platform.startswith("linux"):
        return True  # zombies cannot be told apart: wait for them
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]  # after "pid (comm)"
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


def _end_group(proc: subprocess.Popen) -> None:
    """SIGTERM the command's process group, SIGKILL what is left after KILL_GRACE_S, and reap the command."""
    if _signal_group(proc.pid, signal.SIGTERM):
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline:
            proc.poll()  # reaps the command once it exits
            if not _group_alive(proc.pid):
                break
            time.sleep(0.02)
        _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def run_command(argv: Sequence[str], timeout_s: float, logs: Path) -> CommandRun:
    """Run `argv` in a new session (its own process group), stdin closed, stdout and stderr into files in `logs`.

    The group is killed (`_end_group`) when the command passes `timeout_s` (returncode None), when the wait is
    interrupted, and after the command exits; on Linux the command also dies with this process
    (`_die_with_parent`). The wall time runs from the command's exec to its exit: the preexec_fn makes Python
    fork rather than vfork, about 30 ms for a 1 GB runner, which is the harness's time, not the program's.
    Raises OSError or SubprocessError when the command cannot start."""
    stdout, stderr = logs / "stdout.log", logs / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=_die_with_parent(),  # unsafe with threads, says Python: see _die_with_parent
        )
    start = time.perf_counter()  # Popen returns once the command is exec'd: the fork is not the command's time
    try:
        try:
            returncode: int | None = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            returncode = None
        wall = time.perf_counter() - start
    finally:
        _end_group(proc)
    return CommandRun(returncode, wall, stdout, stderr)


def killed_by(returncode: int) -> str:
    if returncode >= 0:
        return ""
    try:
        return f" (killed by {signal.Signals(-returncode).name})"
    except ValueError:
        return f" (killed by signal {-returncode})"
