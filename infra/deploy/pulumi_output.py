"""What the engine prints, made fit for users: no Python tracebacks, secrets redacted.

Pulumi's dynamic-provider host formats every exception a provider raises with its full
traceback. For glmserve those exceptions are user-facing messages (a readiness gate that
failed, a cloud that has no capacity), so the traceback is dropped and the message kept.
"""
from __future__ import annotations

import re

from infra.common.secrets import redact
from infra.policy.rules import RULES

_START = "Traceback (most recent call last):"
# The last line of a traceback: `SomeError: message` (possibly dotted, possibly indented).
_FINAL = re.compile(r"^\s*(?:[A-Za-z_][\w.]*\.)?(?:[A-Z]\w*(?:Error|Exception|Failure|Exit)|Exception)(?::\s?(.*))?$")
# When a mandatory policy of the pack fails, the engine cancels the program: the language host
# prints a KeyboardInterrupt traceback (twice, chained) that says nothing to a user.
_CANCELLED = "KeyboardInterrupt"
_CHAINED = ("During handling of the above exception, another exception occurred:",
            "The above exception was the direct cause of the following exception:")
# A violation line of the policy pack (policy/) in the `Policies:` section: `key in file: [rule] ...`.
_VIOLATION = re.compile(r": \[(?:" + "|".join(map(re.escape, RULES)) + r")\] ")


class OutputFilter:
    def __init__(self) -> None:
        self._in_traceback = False
        self._indent = ""
        self._continues: int | None = None    # indent of the error whose lines may follow
        self._inline: str | None = None       # the progress-line prefix of a traceback being dropped
        self._in_policies = False
        self.errors: list[str] = []
        # The policy pack's violations (one line each), as the engine's `Policies:` section lists them.
        self.policy_violations: list[str] = []

    def __call__(self, line: str) -> str | None:
        """The line to show, or None to drop it."""
        line = redact(line)
        if line.strip() == "Policies:":
            self._in_policies = True
        elif self._in_policies and line.strip() and not line.startswith(" "):
            self._in_policies = False
        elif self._in_policies and _VIOLATION.search(line):
            self.policy_violations.append(line.strip())
        if self._inline is not None:
            rest = line[len(self._inline):] if line.startswith(self._inline) else None
            if rest is not None and (rest.startswith(" ") or rest.strip() in (_START, _CANCELLED, *_CHAINED)
                                     or _FINAL.match(rest)):
                return None
            self._inline = None
        if line.strip() in _CHAINED:
            return None
        if self._in_traceback:
            if line.strip() == _CANCELLED and not line.startswith(self._indent + "  "):
                # Not an error of its own: the pack's violations (or a Ctrl-C) stopped the program.
                self._in_traceback = False
                return None
            m = _FINAL.match(line)
            if m and not line.startswith(self._indent + "  "):
                self._in_traceback = False
                message = (m.group(1) or line.strip()).strip()
                self.errors.append(message)
                return f"{self._indent}error: {message}"
            return None
        if _START in line:
            head = line.split(_START)[0]
            if line.strip() in (f"error: {_START}", _START):
                # The Diagnostics entry: swallow the traceback, print its final message.
                self._in_traceback = True
                self._indent = line[: len(line) - len(line.lstrip())]
                return None
            # An inline progress line: the message follows in the Diagnostics section.
            self._inline = head
            return head + "(see Diagnostics below)"
        indent = len(line) - len(line.lstrip())
        if self._continues is not None:
            if line.strip() and indent > self._continues:
                # A multi-line error message (e.g. one problem per line) stays one error.
                self.errors[-1] += "\n" + line.strip()
                return line
            self._continues = None
        if re.search(r"\berror: ", line) and "update failed" not in line and "preview failed" not in line:
            message = line.split("error: ", 1)[1].strip().removeprefix("an unhandled error occurred: ")
            self.errors.append(message)
            self._continues = indent
        return line


def summary(errors: list[str]) -> str:
    """Each distinct error once; a progress line's first line is dropped when the Diagnostics
    section carries the same error in full."""
    seen, out = set(), []
    for e in errors:
        if not e or e in seen or e.startswith("(see Diagnostics"):
            continue
        if any(other != e and other.startswith(e) for other in errors):
            continue
        seen.add(e)
        out.append("  - " + e.replace("\n", "\n    "))
    return "\n".join(out)
