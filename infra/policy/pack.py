"""The CrossGuard policy pack (policy/) as glmserve's own commands use it.

`glmserve preview`/`up` pass `--policy-pack <repo>/policy` once `make policy-pack` has built the
pack's virtualenv, and set ``PACK_ENV`` for the program: the program then leaves the verdict to
the pack (infra/policy/check.py, ``enforce``), so a violation is reported once, by the pack. The
pack can only see a violation on the ServingNode the program registers, which is why the program
must not stop before it (docs/gitops.md, Policy)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

# Set (to the pack's folder) by the wrapper that passes --policy-pack; read by the program.
PACK_ENV = "GLMSERVE_POLICY_PACK"
PACK_DIR = Path(__file__).resolve().parents[2] / "policy"
# Written by `make policy-pack` once the pack's virtualenv is complete (Makefile).
PACK_STAMP = PACK_DIR / ".venv" / ".installed"


def available_pack() -> Optional[Path]:
    """The pack's folder when its virtualenv is built, else None (the program's check alone)."""
    return PACK_DIR if PACK_STAMP.is_file() else None


def enforced_by_pack() -> bool:
    return bool(os.environ.get(PACK_ENV))
