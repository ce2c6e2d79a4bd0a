"""The kill-point harness: crash `pulumi` right after each mutating cloud call, then recover as a
user would, and check that nothing billable escaped state and nothing foreign was touched.

A provider's scenario module gives: its stand-in (with a ``KillSwitch`` every mutating call goes
through), a project/stack to deploy, what counts as billable in the stand-in's inventory, and
seeded foreign resources. The harness then, for each mutating call of a clean `up` and
`destroy` (enumerated from a first, uninterrupted run), runs:

    up (killed after that call) -> [pulumi cancel] -> refresh -> up -> destroy

and asserts after every scenario: zero billable resources alive, never two live copies of the
node at once (the stand-in's own high-water mark), the seeded foreign resources untouched, and
no secret value in any log of the run.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Optional

from tests.helpers import GLMSERVE, run_pulumi
from tests.standins.killswitch import KillSwitch


@dataclass
class Run:
    args: list[str]
    returncode: int
    output: str


@dataclass
class Journal:
    """Everything the scenario printed, to grep for secrets at the end."""

    runs: list[Run] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(r.output for r in self.runs)


def glmserve(journal: Journal, env: dict, *args: str, switch: Optional[KillSwitch] = None,
             timeout: float = 600) -> Run:
    """Run `glmserve ARGS` in its own process group (the switch kills the whole group: the CLI,
    the Pulumi engine and its dynamic-provider processes, as a crashed machine would)."""
    proc = subprocess.Popen([GLMSERVE, *args], env={**os.environ, **env}, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    if switch is not None:
        switch.target(proc.pid)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
    run = Run(list(args), proc.returncode, out or "")
    journal.runs.append(run)
    return run


def recover(journal: Journal, env: dict, project, stack: str) -> None:
    """What a user does after a crashed `up`: release the lock if the crash left it, refresh,
    then `up` again (it must adopt what the crashed run created, never duplicate it)."""
    refreshed = glmserve(journal, env, "refresh", "--stack", stack)
    if refreshed.returncode != 0 and "locked" in refreshed.output:
        run_pulumi("cancel", "--stack", stack, "--yes", env=env, project=project)
        refreshed = glmserve(journal, env, "refresh", "--stack", stack)
    assert refreshed.returncode == 0, refreshed.output
    up = glmserve(journal, env, "up", "--stack", stack)
    assert up.returncode == 0, up.output


def kill_points(calls: list[str], mutating: Callable[[str], bool]) -> list[tuple[str, int]]:
    """(call, occurrence) for every mutating call of an uninterrupted run, in order."""
    seen: dict[str, int] = {}
    points = []
    for call in calls:
        if mutating(call):
            seen[call] = seen.get(call, 0) + 1
            points.append((call, seen[call]))
    return points


def assert_no_secrets(journal: Journal, secrets: list[str], *more_texts: str) -> None:
    text = "\n".join([journal.text(), *more_texts])
    for s in secrets:
        assert s not in text, "a secret value appears in the run's output"


def kill_then_recover(scenario, op: str, call: str, occurrence: int, stack: str,
                      while_killed: Callable[[], None] = lambda: None) -> None:
    """One kill-point scenario: `op` ("up", or "destroy" after a clean up) killed right after
    ``call`` (its ``occurrence``-th time) succeeded remotely; then recovery, a state that matches
    the cloud, and a destroy that leaves nothing. ``scenario`` is a test file's Scenario (run,
    switch, journal, env, project, check_matches_state, check_clean)."""
    s = scenario
    if op == "destroy":
        assert s.run("up").returncode == 0
    s.switch.arm(call, occurrence)
    killed = s.run(op, switch=s.switch)
    assert s.switch.fired == call and killed.returncode != 0, killed.output
    while_killed()
    recover(s.journal, s.env, s.project, stack)
    s.check_matches_state()
    done = s.run("destroy")
    assert done.returncode == 0, done.output
    s.check_clean()
