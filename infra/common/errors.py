"""User-facing errors: each names the key, the file, the value and what is allowed.

They are raised instead of tracebacks for anything a user can fix by editing a stack
file or running `pulumi config set`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from infra.common.secrets import redact


@dataclass(frozen=True)
class Problem:
    key: str
    message: str
    file: str | None = None
    value: object = None
    allowed: str | None = None
    secret: bool = False

    def render(self) -> str:
        where = f" in {self.file}" if self.file else ""
        parts = [f"{self.key}{where}: {self.message}"]
        if self.value is not None:
            shown = "[secret]" if self.secret else redact(repr(self.value))
            parts.append(f"got {shown}")
        if self.allowed:
            parts.append(f"allowed: {self.allowed}")
        return "; ".join(parts)


@dataclass
class GlmserveError(Exception):
    """One or more problems a user can fix; rendered without a traceback."""

    problems: list[Problem] = field(default_factory=list)
    headline: str = "invalid configuration"

    def __post_init__(self) -> None:
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"glmserve: {self.headline}:"]
        lines += [f"  - {p.render()}" for p in self.problems]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


def fail(key: str, message: str, **kw) -> GlmserveError:
    return GlmserveError([Problem(key=key, message=message, **kw)])
