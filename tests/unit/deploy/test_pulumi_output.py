"""What users see of the engine's output: provider exceptions without tracebacks, multi-line
errors kept whole, each error once in the summary."""
from __future__ import annotations

from infra.deploy.pulumi_output import OutputFilter, summary

DIAGNOSTICS = """\
 +  pulumi-python:dynamic:Resource glmserve-dev-ready creating (10s) error: Traceback (most recent call last):
 +  pulumi:pulumi:Stack glmserve-dev creating (10s) error: update failed
Diagnostics:
  pulumi-python:dynamic:Resource (glmserve-dev-ready):
    error: Traceback (most recent call last):
      File "/x/pulumi/dynamic/__main__.py", line 170, in Create
        result = provider.create(props)
                 ^^^^^^^^^^^^^^^^^^^^^^
      File "/x/infra/gate.py", line 25, in _run
        raise Exception(f"{e}.") from None
    Exception: readiness gate failed at 'health': last answer: HTTP 503.

  pulumi:pulumi:Stack (glmserve-dev):
    error: glmserve: policy check failed for stack dev:
      - [feasible-plan] does not fit: weights 178.38 GiB/GPU
      - [max-cost] $80.00/h exceeds 40
    error: an unhandled error occurred: glmserve: policy check failed for stack dev:
      - [feasible-plan] does not fit: weights 178.38 GiB/GPU
      - [max-cost] $80.00/h exceeds 40

Resources:
"""


def run(text: str) -> tuple[list[str], OutputFilter]:
    f = OutputFilter()
    shown = [s for s in (f(line) for line in text.splitlines()) if s is not None]
    return shown, f


def test_tracebacks_are_dropped_and_their_message_kept():
    shown, f = run(DIAGNOSTICS)
    text = "\n".join(shown)
    assert "Traceback" not in text and "File \"" not in text and "^^^" not in text
    assert "    error: readiness gate failed at 'health': last answer: HTTP 503." in shown
    assert "creating (10s) error: (see Diagnostics below)" in text


def test_summary_lists_each_error_once_with_its_detail_lines():
    _, f = run(DIAGNOSTICS)
    out = summary(f.errors)
    assert out.count("policy check failed") == 1
    assert out.count("readiness gate failed") == 1
    assert "\n    - [max-cost] $80.00/h exceeds 40" in out
    assert "update failed" not in out and "see Diagnostics" not in out


def test_secrets_known_to_the_process_are_redacted():
    from infra.common import secrets
    secrets.register("sk-glm-PLANTED-output-filter-123")
    shown, _ = run("    info: key sk-glm-PLANTED-output-filter-123 in a log line\n")
    assert shown == ["    info: key [secret] in a log line"]
