"""The layering of .importlinter holds: import-linter reads the contracts and the real import
graph of infra/ and providers/ (no module reaches back up the data path, the core never
imports a provider, no provider imports another)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_import_contracts_are_kept():
    proc = subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / ".importlinter"), "--no-cache"],
                          cwd=ROOT, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
