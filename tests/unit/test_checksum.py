"""scripts/lib/checksum.sh, which decides whether a cached Pulumi binary is used or rebuilt:
a file is accepted only while it has the sha256 recorded for it."""
from __future__ import annotations

import subprocess

from tests.helpers import ROOT

LIB = ROOT / "scripts" / "lib" / "checksum.sh"


def sh(tmp_path, script: str) -> int:
    return subprocess.run(["bash", "-c", f"source {LIB}; cd {tmp_path}; {script}"], timeout=60).returncode


def test_recorded_files_pass_until_one_changes(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "pulumi").write_bytes(b"\x7fELF cli")
    (tmp_path / "bin" / "pulumi-language-python").write_bytes(b"\x7fELF host")
    assert sh(tmp_path, "checksum_ok SUMS bin/pulumi") == 1, "nothing recorded yet"
    assert sh(tmp_path, "checksum_record SUMS bin/pulumi bin/pulumi-language-python") == 0
    assert sh(tmp_path, "checksum_ok SUMS bin/pulumi bin/pulumi-language-python") == 0

    (tmp_path / "bin" / "pulumi-language-python").write_bytes(b"\x7fELF trunc")   # a corrupt cache
    assert sh(tmp_path, "checksum_ok SUMS bin/pulumi-language-python") == 1
    assert sh(tmp_path, "checksum_ok SUMS bin/pulumi") == 0, "the other binary is still good"

    # Rebuilt: its new hash replaces the old one, the other entry is kept.
    assert sh(tmp_path, "checksum_record SUMS bin/pulumi-language-python") == 0
    assert sh(tmp_path, "checksum_ok SUMS bin/pulumi bin/pulumi-language-python") == 0
    assert len((tmp_path / "SUMS").read_text().splitlines()) == 2

    (tmp_path / "bin" / "pulumi").unlink()
    assert sh(tmp_path, "checksum_ok SUMS bin/pulumi") == 1
