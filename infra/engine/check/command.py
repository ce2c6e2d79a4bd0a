"""``python -m infra.engine.check``: the checker process (``serve``, what Checker starts), a
one-off ``check`` for a person, and ``install`` (what scripts/install-engine-check runs)."""
from __future__ import annotations

import dataclasses
import json

from infra.engine.check.client import check
from infra.engine.check.venv import ENGINES, venv_dir


def main(argv: list[str] | None = None) -> int:
    """The checker process (runs in the engine venv).

    ``serve``: answer JSON-line requests on stdin until EOF (what Checker starts).
    ``check ENGINE ARG...``: check one argv and print the verdict (for a person).
    ``install``: create or reuse the cached venv (what scripts/install-engine-check runs).
    """
    import argparse

    ap = argparse.ArgumentParser(prog="python -m infra.engine.check", allow_abbrev=False)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", allow_abbrev=False)
    s.add_argument("--engine", choices=ENGINES)
    c = sub.add_parser("check", allow_abbrev=False)
    c.add_argument("engine", choices=ENGINES)
    c.add_argument("--version")
    c.add_argument("argv", nargs=argparse.REMAINDER)
    i = sub.add_parser("install", allow_abbrev=False)
    i.add_argument("--force", action="store_true", help="reinstall even if the cached venv exists")
    i.add_argument("--python", help="the interpreter to base the venv on (default: this one)")
    i.add_argument("--keep-others", action="store_true", help="keep venvs of other requirement hashes")
    i.add_argument("--pip-cache", action="store_true", help="let pip cache the wheels (~3.2 GB more disk)")
    i.add_argument("--print-dir", action="store_true", help="print the venv directory and exit")
    i.add_argument("--verbose", action="store_true", help="show pip's own output")
    a = ap.parse_args(argv)

    if a.cmd == "install":
        if a.print_dir:
            print(venv_dir())
            return 0
        from infra.engine.check.install import install

        install(force=a.force, python=a.python, keep_others=a.keep_others, pip_cache=a.pip_cache,
                verbose=a.verbose)
        return 0

    if a.cmd == "check":
        v = check(a.argv, a.engine, a.version)
        print(json.dumps({"ok": v.ok, "version": v.version,
                          "errors": [dataclasses.asdict(e) for e in v.errors], "warnings": list(v.warnings)}, indent=2))
        return 0 if v.ok else 1

    from infra.engine.check.server import serve

    return serve(a.engine)

