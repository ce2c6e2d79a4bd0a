"""Saved runs per stack under the glmserve home, and the comparison of two runs."""
from __future__ import annotations

import json

import pytest

from infra.bench import results
from infra.common.errors import GlmserveError


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GLMSERVE_HOME", str(tmp_path))
    return tmp_path


def _row(c, tps, ttft, usd, best=False, errors=0.0):
    return {"concurrency": c, "output_tokens_per_s": tps, "ttft_s": {"p50": ttft, "p95": ttft, "mean": ttft},
            "e2e_s": {"p50": 1.0, "p95": 1.0, "mean": 1.0}, "usd_per_million_output_tokens": usd,
            "error_rate": errors, "best": best}


def _run(run_id, rows, knee=4):
    return {"id": run_id, "stack": "dev", "knee_concurrency": knee, "planner_max_concurrency": 4.4, "levels": rows}


def test_runs_are_saved_per_stack_and_the_last_one_is_found(home):
    a = results.save(_run("20261201T100000Z", [_row(1, 100, 0.1, 100.0)]))
    b = results.save(_run("20261201T110000Z", [_row(1, 110, 0.1, 90.0, best=True)]))
    assert a == home / "bench" / "dev" / "20261201T100000Z.json" and b.is_file()
    assert results.load("dev")["id"] == "20261201T110000Z"
    assert results.load("dev", before="20261201T110000Z")["id"] == "20261201T100000Z"
    assert results.load("dev", "20261201T100000Z")["levels"][0]["output_tokens_per_s"] == 100
    assert results.last_summary("dev")["output_tokens_per_s"] == 110
    assert results.last_summary("other") is None


def test_a_second_run_in_the_same_second_gets_its_own_id():
    results.save(_run("20261201T100000Z", []))
    run = _run("20261201T100000Z", [])
    claimed = results.claim(run)
    assert run["id"] == "20261201T100000Z-2" and results.save(run) == claimed
    assert json.loads(claimed.read_text())["id"] == run["id"]
    assert json.loads((claimed.parent / "20261201T100000Z.json").read_text())["id"] == "20261201T100000Z"


def test_compare_reports_before_after_and_whether_it_got_better():
    before = _run("r1", [_row(1, 100.0, 0.2, 100.0), _row(4, 400.0, 0.4, 25.0)])
    after = _run("r2", [_row(4, 500.0, 0.5, 20.0), _row(16, 600.0, 1.0, 16.0)], knee=16)
    cmp = results.compare(after, before)
    assert cmp["before"] == "r1" and cmp["knee"] == {"before": 4, "after": 16}
    assert [lv["concurrency"] for lv in cmp["levels"]] == [4]        # only levels both runs measured
    f = cmp["levels"][0]["figures"]
    assert f["output tok/s"] == {"before": 400.0, "after": 500.0, "change": pytest.approx(0.25), "better": True}
    assert f["TTFT p50 s"]["change"] == pytest.approx(0.25) and f["TTFT p50 s"]["better"] is False
    assert f["$/Mtok"]["change"] == pytest.approx(-0.2) and f["$/Mtok"]["better"] is True
    assert f["error rate"]["change"] is None                         # 0 before: no relative change


def test_comparing_without_an_earlier_run_is_a_clear_error():
    with pytest.raises(GlmserveError) as e:
        results.load("dev")
    assert "no earlier bench run of stack dev" in str(e.value)
    results.save(_run("20261201T100000Z", []))
    with pytest.raises(GlmserveError) as e:
        results.load("dev", "nope")
    assert "--compare: no such run of stack dev" in str(e.value) and "20261201T100000Z" in str(e.value)


def test_the_gitops_summary_line_shows_the_last_run():
    assert results.summary_markdown("dev") is None
    results.save(_run("20261201T100000Z", [_row(1, 100.0, 0.2, 100.0), _row(4, 390.5, 0.25, 25.61, best=True)]))
    assert results.summary_markdown("dev") == (
        "**Last bench** (`glmserve bench`, run 20261201T100000Z): knee at concurrency 4 (planner max_concurrency 4.4), "
        "390.5 output tok/s, TTFT p50 0.25 s, $25.61/Mtok")
