"""The shared jinja2 environment over ``templates/``: the engine argv templates and every
provider's own folder (``templates/<provider>/``)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@lru_cache(maxsize=None)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    # Python literals for generated modules: repr() of str/list/dict is valid, escaped source.
    env.filters["pylist"] = lambda v: repr(list(v))
    env.filters["pydict"] = lambda v: repr(dict(v))
    env.filters["pyargs"] = lambda v: ", ".join(repr(x) for x in v)
    return env
