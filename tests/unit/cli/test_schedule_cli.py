"""`glmserve schedule show|apply` offline: what it says about the window, and the user errors
(the RunPod start/stop through `up` is tests/e2e/test_runpod.py)."""
from __future__ import annotations

import pytest

from infra.cli.main import main
from tests.helpers import edit_stack

OFFICE = {"timeZone": "Europe/Berlin", "minReplicas": 1,
          "windows": [{"days": ["mon-fri"], "start": "08:00", "end": "19:00"}]}


@pytest.fixture
def scheduled(project, monkeypatch):
    monkeypatch.setenv("GLMSERVE_PROJECT_DIR", str(project))
    monkeypatch.delenv("GLMSERVE_SCHEDULE_AT", raising=False)
    for stack in ("runpod-prod", "k8s-prod"):
        edit_stack(project, stack, {"glmserve:scaling": {"minReplicas": 0, "warmSchedule": OFFICE}})
    return project


def test_show_says_inside_or_outside_the_replicas_and_the_next_change(scheduled, capsys):
    assert main(["schedule", "show", "--stack", "runpod-prod", "--at", "2026-12-07T09:00+01:00"]) == 0
    out = capsys.readouterr().out
    assert "inside a warm window at Mon 2026-12-07 09:00 CET: 1 replica(s)" in out
    assert "next change Mon 2026-12-07 19:00 CET" in out
    assert main(["schedule", "show", "--stack", "runpod-prod", "--at", "2026-12-05T12:00Z"]) == 0
    out = capsys.readouterr().out
    assert "outside a warm window" in out and "0 replica(s)" in out and "next change Mon 2026-12-07 08:00" in out


def test_kubernetes_leaves_the_window_to_the_cluster(scheduled, capsys):
    assert main(["schedule", "apply", "--stack", "k8s-prod", "--at", "2026-12-07T09:00+01:00"]) == 0
    assert "CronJobs in the manifests follow the window" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["schedule", "apply", "--stack", "modal-dev"], "scaling.warmSchedule: is not set for stack modal-dev"),
    (["schedule", "show", "--stack", "runpod-prod", "--at", "2026-12-07T09:00"], "--at"),
    (["schedule", "apply", "--stack", "runpod-prod", "--all"], "give --stack STACK or --all"),
    (["schedule", "show"], "give --stack STACK or --all"),
])
def test_user_errors_exit_2_without_a_traceback(scheduled, capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_show_all_lists_only_the_scheduled_stacks(scheduled, capsys):
    assert main(["schedule", "show", "--all", "--at", "2026-12-07T09:00+01:00"]) == 0
    out = capsys.readouterr().out
    assert out.count("inside a warm window") == 2
    assert "k8s-prod:" in out and "runpod-prod:" in out and "modal-dev" not in out
