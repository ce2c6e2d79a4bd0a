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


# A preview that the policy pack (policy/) failed: the engine lists the violations under
# `Policies:` and cancels the program, whose language host prints a chained KeyboardInterrupt.
PACK_FAILED = """\
 +  pulumi:pulumi:Stack glmserve-dev create error: preview failed
 +  pulumi:pulumi:Stack glmserve-dev create Traceback (most recent call last):
 +  pulumi:pulumi:Stack glmserve-dev create   File "/x/pulumi-language-python-exec", line 232, in <module>
 +  pulumi:pulumi:Stack glmserve-dev create     loop.run_until_complete(coro)
 +  pulumi:pulumi:Stack glmserve-dev create KeyboardInterrupt
 +  pulumi:pulumi:Stack glmserve-dev create During handling of the above exception, another exception occurred:
 +  pulumi:pulumi:Stack glmserve-dev create Traceback (most recent call last):
 +  pulumi:pulumi:Stack glmserve-dev create     t.join()
 +  pulumi:pulumi:Stack glmserve-dev create KeyboardInterrupt
 +  pulumi:pulumi:Stack glmserve-dev create 1 error; 26 messages
Policies:
    \u274c glmserve@v0.0.1 (local: /x/policy)
        - [mandatory]  pinned-revision  (glmserve:index:ServingNode: glmserve-dev)
          model.revision is a 40-hex commit (on in prod)
          model.revision in stacks/Pulumi.dev.yaml: [pinned-revision] is not set; allowed: the 40-hex commit

Diagnostics:
  pulumi:pulumi:Stack (glmserve-dev):
    error: preview failed

    Traceback (most recent call last):
      File "/x/pulumi-language-python-exec", line 232, in <module>
        loop.run_until_complete(coro)
    KeyboardInterrupt
    During handling of the above exception, another exception occurred:
    Traceback (most recent call last):
        t.join()
    KeyboardInterrupt

Outputs:
    provider     : "none"
"""


def test_the_packs_violations_are_collected_and_the_cancellation_dropped():
    shown, f = run(PACK_FAILED)
    text = "\n".join(shown)
    assert f.policy_violations == ["model.revision in stacks/Pulumi.dev.yaml: [pinned-revision] is not set; "
                                   "allowed: the 40-hex commit"]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text and "During handling" not in text
    assert "t.join()" not in text and "File \"" not in text
    # what follows the tracebacks is shown again
    assert " +  pulumi:pulumi:Stack glmserve-dev create 1 error; 26 messages" in shown
    assert '    provider     : "none"' in shown
    assert f.errors == [] and summary(f.errors) == ""
