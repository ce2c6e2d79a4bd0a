"""A crash on cue: kill the process group of a `pulumi` run right after a stand-in has carried
out a mutating call, before the caller hears the answer.

Every stand-in records each mutating call it carries out (``record("POST /v2/pods")``); a test
arms the switch with one of those calls (and which occurrence of it) and the process group to
kill. This is the worst moment for a tool that keeps state: the cloud has the resource, the
state file does not.
"""
from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class KillSwitch:
    calls: list[str] = field(default_factory=list)        # every mutating call carried out, in order
    fired: Optional[str] = None                            # the call after which the group was killed
    _armed: Optional[tuple[str, int]] = None
    _pgid: Optional[int] = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self, call: str, occurrence: int = 1) -> None:
        """Kill after the ``occurrence``-th ``call`` from now on (counting only new calls)."""
        with self._lock:
            seen = self.calls.count(call)
            self._armed = (call, seen + occurrence)
            self.fired = None

    def target(self, pgid: int) -> None:
        """The process group to kill (a run started with start_new_session=True: its pid)."""
        self._pgid = pgid

    def disarm(self) -> None:
        with self._lock:
            self._armed = None

    def record(self, call: str) -> None:
        """Called by a stand-in after it carried out ``call`` and before it answers."""
        with self._lock:
            self.calls.append(call)
            armed = self._armed
            if armed is None or armed[0] != call or self.calls.count(call) != armed[1] or self._pgid is None:
                return
            self._armed = None
            self.fired = call
            pgid = self._pgid
        # Pulumi starts its plugins (the dynamic-provider processes) in process groups of their
        # own: a crashed machine takes them down too, so every descendant is killed as well.
        doomed = _descendants(pgid)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _descendants(root: int) -> list[int]:
    """Every live process below ``root`` (from /proc; Linux, as the stand-ins' CI)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
