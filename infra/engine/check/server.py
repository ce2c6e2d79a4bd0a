"""The checker process (runs in the engine venv): answers JSON-line requests on stdin with the
verdict of the engine's real parser. Any attempt to reach the network beyond loopback is
refused for its whole lifetime."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
from typing import Any

from infra.common.versions import version_tuple
from infra.engine.check.engine_output import clean
from infra.engine.check.parsers import SglangParser, VllmParser, installed_version
from infra.engine.check.venv import ENGINES, INSTALL_SCRIPT

_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}
_network_attempts: list[str] = []


def guard_network() -> None:
    """Refuse any connection or name lookup beyond loopback, for the checker's lifetime."""

    def hook(event: str, args: tuple) -> None:
        if event == "socket.getaddrinfo":
            host = args[0]
            if isinstance(host, bytes):
                host = host.decode(errors="replace")
            if host not in _LOOPBACK and not str(host).startswith("127."):
                _network_attempts.append(f"name lookup of {host}")
                raise OSError(f"glmserve engine check: network access refused ({host})")
        elif event == "socket.connect":
            addr = args[1]
            if isinstance(addr, tuple) and addr:
                host = addr[0]
                if host not in _LOOPBACK and not str(host).startswith("127."):
                    _network_attempts.append(f"connection to {host}")
                    raise OSError(f"glmserve engine check: network access refused ({host})")

    sys.addaudithook(hook)


_PARSERS: dict[str, Any] = {}


def _parser(engine: str):
    if engine not in _PARSERS:
        with contextlib.redirect_stdout(sys.stderr):
            _PARSERS[engine] = {"vllm": VllmParser, "sglang": SglangParser}[engine]()
    return _PARSERS[engine]


def _handle(req: dict, default_engine: str | None) -> dict:
    op = req.get("op", "check")
    engine = req.get("engine") or default_engine
    t0 = time.monotonic()
    if op == "ping":
        return {"ok": True}
    if op == "versions":
        return {"ok": True, "versions": {d: v for d in ("vllm", "sglang", "torch")
                                         if (v := installed_version(d))}}
    if engine not in ENGINES:
        return {"ok": False, "op_error": f"unknown engine {engine!r}"}
    try:
        parser = _parser(engine)
    except Exception as e:
        tb = traceback.format_exc(limit=4)
        return {"ok": False, "op_error": f"cannot import the {engine} parser: {type(e).__name__}: {e}\n{tb}"}
    if op == "warmup":
        return {"ok": True, "engine": engine, "version": parser.version, "seconds": round(time.monotonic() - t0, 3)}
    if op == "flags":
        return {"ok": True, "engine": engine, "version": parser.version, "flags": parser.flags()}
    if op != "check":
        return {"ok": False, "op_error": f"unknown op {op!r}"}
    argv = [str(a) for a in req.get("argv") or []]
    resp: dict[str, Any] = {"engine": engine, "version": parser.version, "argv": argv,
                            "errors": [], "warnings": [], "values": {}}
    want = req.get("version")
    if want and parser.version and version_tuple(want) != version_tuple(parser.version):
        resp["errors"].append({
            "stage": "version", "flags": [],
            "message": (f"the engine-check venv has {engine} {parser.version} but engine.version is {want}; "
                        f"pin {engine}=={want} in requirements/engine-check-{engine}.txt and rerun {INSTALL_SCRIPT}")})
    else:
        n_before = len(_network_attempts)
        try:
            parser.check(argv, resp)
        except Exception as e:
            resp["errors"].append({"stage": "internal", "flags": [],
                                   "message": f"{type(e).__name__}: {e} ({traceback.format_exc(limit=3)})"})
        if len(_network_attempts) > n_before:
            resp["errors"].append({"stage": "network", "flags": [],
                                   "message": "tried to reach the network: " + ", ".join(_network_attempts[n_before:])})
    for e in resp["errors"]:
        e["message"] = clean(e["message"])
    resp["warnings"] = [clean(w) for w in resp["warnings"]]
    resp["ok"] = not resp["errors"]
    resp["seconds"] = round(time.monotonic() - t0, 3)
    return resp


def serve(engine: str | None) -> int:
    """Answer JSON-line requests on stdin until EOF. The protocol goes to the real stdout;
    everything else printed (by the engines, at the C level too) goes to stderr."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    guard_network()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            resp = _handle(json.loads(line), engine)
        except Exception as e:  # never leave the client waiting
            resp = {"ok": False, "op_error": f"{type(e).__name__}: {e}"}
        proto.write(json.dumps(resp) + "\n")
        proto.flush()
    return 0
