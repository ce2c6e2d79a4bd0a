"""The shared jinja2 environment over ``templates/``: the engine argv templates and every
provider's own folder (``templates/<provider>/``)."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.utils import htmlsafe_json_dumps

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

# JSON writes a character beyond U+FFFF as two escaped UTF-16 halves ("\ud83d\ude00"). A JSON
# reader joins them again, a YAML reader does not: it yields two lone surrogates, which no
# encoder accepts later (the rendered YAML templates are read back with yaml.safe_load). The
# pair is written as the character itself instead, which JSON and YAML both read back
# unchanged. An escaped backslash before "u" is text, not an escape: hence the even run.
_SURROGATE_PAIR = re.compile(r"(?<!\\)((?:\\\\)*)\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})")


def _join_pair(m: re.Match) -> str:
    high, low = int(m.group(2), 16), int(m.group(3), 16)
    return m.group(1) + chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


def tojson(value: Any) -> str:
    """jinja's own tojson (ASCII JSON, sorted keys, HTML-sensitive characters escaped), with
    characters beyond U+FFFF written as themselves so that a YAML reader gets the same
    string back."""
    return _SURROGATE_PAIR.sub(_join_pair, str(htmlsafe_json_dumps(value, sort_keys=True)))


@lru_cache(maxsize=None)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["tojson"] = tojson
    # Python literals for generated modules: repr() of str/list/dict is valid, escaped source.
    env.filters["pylist"] = lambda v: repr(list(v))
    env.filters["pydict"] = lambda v: repr(dict(v))
    env.filters["pyargs"] = lambda v: ", ".join(repr(x) for x in v)
    return env
