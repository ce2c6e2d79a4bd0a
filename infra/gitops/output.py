"""Where a GitOps step's results go: its log (grouped in GitHub Actions), the job summary
(Markdown), a JSON file. Every text goes through the redaction registry first."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from infra.common.secrets import redact


def say(line: str = "") -> None:
    print(redact(line), flush=True)


def group(title: Optional[str]) -> None:
    """A collapsible group in the GitHub Actions log (a plain heading elsewhere); None ends it."""
    actions = os.environ.get("GITHUB_ACTIONS") == "true"
    if title is None:
        if actions:
            say("::endgroup::")
    else:
        say(f"::group::{title}" if actions else f"--- {title}")


def write_summary(markdown: str, path: Optional[str]) -> None:
    """Append to ``path`` (e.g. $GITHUB_STEP_SUMMARY)."""
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(redact(markdown).rstrip("\n") + "\n")


def write_text(text: str, path: Optional[str]) -> None:
    if path:
        Path(path).write_text(redact(text))


def write_json(data: dict, path: Optional[str]) -> None:
    write_text(json.dumps(data, indent=2) + "\n", path)


def money(v: Optional[float]) -> str:
    return "n/a" if v is None else f"${v:,.2f}"


def signed_money(v: Optional[float]) -> str:
    if v is None:
        return "n/a"
    return ("+" if v > 0 else "-" if v < 0 else "±") + f"${abs(v):,.2f}"
