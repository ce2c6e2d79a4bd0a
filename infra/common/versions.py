"""Engine release numbers as comparable tuples: "0.33" == "0.33.0" < "0.33.1"."""
from __future__ import annotations

import re


def version_tuple(v: str) -> tuple[int, int, int]:
    """The first three numeric parts of a version (missing or non-numeric parts count as 0)."""
    parts = []
    for x in str(v).split(".")[:3]:
        m = re.match(r"\d+", x)
        parts.append(int(m.group(0)) if m else 0)
    return (tuple(parts) + (0, 0, 0))[:3]  # type: ignore[return-value]
