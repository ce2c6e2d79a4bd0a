"""Inside the checker process: what an engine prints and raises during a check, captured and
turned into stable messages, the flags they name, and JSON-safe values."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import re
from typing import Any, Iterable

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_FLAG_RE = re.compile(r"(?<![\w-])(--?[A-Za-z][\w.-]*)")


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.records.append(record.getMessage())


@contextlib.contextmanager
def captured(logger_names: Iterable[str]):
    """Capture stdout/stderr text and WARNING+ log records of the engine during a check."""
    import warnings

    out, err = io.StringIO(), io.StringIO()
    handler = _Capture()
    loggers = [logging.getLogger(n) for n in logger_names]
    for lg in loggers:
        lg.addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                yield out, err, handler, caught
        finally:
            for lg in loggers:
                lg.removeHandler(handler)


def collect_warnings(out: io.StringIO, err: io.StringIO, handler: _Capture, caught) -> list[str]:
    lines = []
    for text in (out.getvalue(), err.getvalue()):
        for line in text.splitlines():
            line = _ANSI.sub("", line).strip()
            if line and not line.startswith("usage:") and ": error: " not in line:
                lines.append(line)
    lines += [_ANSI.sub("", m).strip() for m in handler.records]
    lines += [f"{w.category.__name__}: {w.message}" for w in caught
              if not issubclass(w.category, (ResourceWarning, ImportWarning))]
    seen, uniq = set(), []
    for l in lines:
        if l not in seen:
            seen.add(l)
            uniq.append(l)
    return uniq[:50]


def clean(text: str) -> str:
    # Drop colour codes and object addresses ("<function loads at 0x7f...>") so messages are stable.
    return re.sub(r" at 0x[0-9a-f]+>", ">", _ANSI.sub("", text))


def argparse_error(err_text: str) -> str:
    text = clean(err_text)
    m = re.search(r"^(?:\S.*?): error: (.*)", text, re.M | re.S)
    return (m.group(1) if m else text).strip() or "the parser exited without a message"


def flags_in(message: str, known: Iterable[str] = ()) -> list[str]:
    found = []
    m = re.match(r"argument ([^:]+):", message)
    if m:  # "argument --tensor-parallel-size/-tp: invalid int value: 'eight'"
        found += [f for f in m.group(1).split("/") if f.startswith("-")]
    m = re.match(r"unrecognized arguments?: (.*)", message)
    if m:
        found += [t for t in m.group(1).split() if t.startswith("-")]
    m = re.search(r"ambiguous option: (\S+?)(?: could match|=)", message)
    if m:
        found.append(m.group(1))
    found += _FLAG_RE.findall(message)
    found += [k for k in known if k]
    out = []
    for f in found:
        f = f.rstrip(".,;:'\")")
        if f not in out:
            out.append(f)
    return out


def jsonable(v: Any, depth: int = 0) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if v == v and v not in (float("inf"), float("-inf")) else str(v)
    if depth > 6:
        return repr(v)
    if isinstance(v, dict):
        return {str(k): jsonable(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [jsonable(x, depth + 1) for x in v]
    if hasattr(v, "value") and type(v).__class__.__name__ == "EnumMeta":
        return jsonable(v.value, depth + 1)
    return repr(v)


def record_values(obj: Any) -> dict:
    """The fields of a config record: a dataclass (vLLM's EngineArgs) or a msgspec Struct
    (SGLang's ServerArgs)."""
    if dataclasses.is_dataclass(obj):
        names = [f.name for f in dataclasses.fields(obj)]
    else:
        names = list(getattr(type(obj), "__struct_fields__", ()) or
                     [k for k in vars(obj) if not k.startswith("_")])
    out = {}
    for name in names:
        with contextlib.suppress(Exception):
            out[name] = jsonable(getattr(obj, name))
    return out

