"""The RunPod REST v2 contract: RunPod's own OpenAPI 3.1 document, checked with openapi-core.

Every request the stand-in receives and every response it sends goes through here. The
document is found at ``$GLMSERVE_RUNPOD_OPENAPI`` or ``<repo>/../shared/data/runpod/openapi-v2.json``
(the layout of the work tree and of CI), or ``<repo>/shared/...``.

openapi-core validates with a JSON Schema 2020-12 (OAS 3.1) validator, so the document's
``unevaluatedProperties: false`` on ``CreatePodRequest`` / ``UpdatePodRequest`` /
``CreateGpuConfig`` really rejects unknown keys. jsonschema reports unevaluated-property
failures for *known* keys too when a sibling key failed (a failing subschema does not count as
"evaluated"); :func:`schema_error_messages` drops those echoes and phrases the rest like
RunPod's example (``"$: additional properties 'bogus' not allowed"``).
"""
from __future__ import annotations

import functools
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from openapi_core import Config, OpenAPI
from openapi_core.deserializing.media_types.util import json_loads, plain_loads
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.request.exceptions import (
    MissingRequestBodyError,
    ParameterValidationError,
    RequestBodyValidationError,
    SecurityValidationError,
)

__all__ = ["document_path", "load_document", "Contract", "RequestCheck", "schema_error_messages"]

HOST_URL = "https://api.runpod.io"
_API_LOCK = threading.Lock()   # the document's server; requests are matched as if sent there


def document_path() -> Path:
    env = os.environ.get("GLMSERVE_RUNPOD_OPENAPI")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3]
    candidates = [repo.parent / "shared" / "data" / "runpod" / "openapi-v2.json",
                  repo / "shared" / "data" / "runpod" / "openapi-v2.json",
                  Path("/work/shared/data/runpod/openapi-v2.json")]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError("RunPod OpenAPI document not found; looked at "
                            + ", ".join(map(str, candidates)) + " (set GLMSERVE_RUNPOD_OPENAPI)")


@functools.lru_cache(maxsize=None)
def load_document(path: Optional[str] = None) -> dict:
    with open(path or document_path(), encoding="utf-8") as f:
        return json.load(f)


@functools.lru_cache(maxsize=None)
def _openapi(path: Optional[str] = None) -> OpenAPI:
    config = Config(extra_media_type_deserializers={
        "application/problem+json": json_loads,
        "text/event-stream": plain_loads,
    })
    return OpenAPI.from_dict(load_document(path), config=config)


# ---------------------------------------------------------------------------------- messages
def _json_path(parts: Iterable[Any]) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _resolve(doc: dict, schema: Any) -> Any:
    seen = 0
    while isinstance(schema, Mapping) and "$ref" in schema and seen < 32:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            return schema
        node: Any = doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        schema = node
        seen += 1
    return schema


def _known_properties(doc: dict, schema: Any, depth: int = 0) -> set[str]:
    schema = _resolve(doc, schema)
    if not isinstance(schema, Mapping) or depth > 16:
        return set()
    names = set(schema.get("properties", {}) or {})
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, []) or []:
            names |= _known_properties(doc, sub, depth + 1)
    for key in ("if", "then", "else", "dependentSchemas"):
        sub = schema.get(key)
        if isinstance(sub, Mapping):
            if key == "dependentSchemas":
                for s in sub.values():
                    names |= _known_properties(doc, s, depth + 1)
            else:
                names |= _known_properties(doc, sub, depth + 1)
    return names


def schema_error_messages(doc: dict, errors: Iterable[Any], prefix: str = "$") -> list[str]:
    """Turn jsonschema ``ValidationError`` objects into ``"$.path: message"`` strings."""
    out: list[str] = []
    for e in errors:
        path = _json_path(e.absolute_path)
        if prefix != "$":
            path = prefix + path[1:]
        if e.validator in ("unevaluatedProperties", "additionalProperties") and isinstance(e.instance, Mapping):
            if e.validator == "unevaluatedProperties":
                known = _known_properties(doc, e.schema)
                extra = sorted(k for k in e.instance if k not in known)
            else:
                schema = _resolve(doc, e.schema)
                known = set(schema.get("properties", {}) or {})
                extra = sorted(k for k in e.instance if k not in known)
            if not extra:
                continue   # echo of a failure reported elsewhere
            out.append(f"{path}: additional properties {', '.join(repr(k) for k in extra)} not allowed")
            continue
        out.append(f"{path}: {e.message}")
    # keep order, drop duplicates
    return list(dict.fromkeys(out))


def _cause_chain(e: BaseException) -> list[BaseException]:
    chain, c = [], e.__cause__
    while c is not None and len(chain) < 8:
        chain.append(c)
        c = c.__cause__
    return chain


def _schema_errors_of(e: BaseException) -> list[Any]:
    for c in _cause_chain(e):
        if getattr(c, "schema_errors", None):
            return list(c.schema_errors)
    return []


# ---------------------------------------------------------------------------------- checks
@dataclass
class RequestCheck:
    ok: bool
    status: int = 200
    title: str = ""
    detail: str = ""
    errors: list[str] = field(default_factory=list)
    allow: Optional[str] = None           # for 405
    path_pattern: Optional[str] = None    # e.g. /v2/pods/{id}
    path_params: dict[str, str] = field(default_factory=dict)


class Contract:
    def __init__(self, path: Optional[str] = None):
        self._path = path
        self.doc = load_document(path)
        self.api = _openapi(path)
        self._lock = _API_LOCK          # openapi-core's validators are not documented as thread-safe

    # path templates, longest literal first, for our own routing / 405 answers
    @functools.cached_property
    def _templates(self) -> list[tuple[str, list[str]]]:
        items = []
        for tmpl, item in self.doc["paths"].items():
            methods = [m.upper() for m in item if m in ("get", "put", "post", "delete", "patch", "head", "options")]
            items.append((tmpl, methods))
        return items

    def match(self, path: str) -> tuple[Optional[str], dict[str, str]]:
        """Return (path template, path params) for a concrete path, literal segments first."""
        segs = path.rstrip("/").split("/") if path != "/" else [""]
        best: tuple[int, Optional[str], dict[str, str]] = (-1, None, {})
        for tmpl, _ in self._templates:
            tsegs = tmpl.split("/")
            if len(tsegs) != len(segs):
                continue
            params, literal = {}, 0
            for t, s in zip(tsegs, segs):
                if t.startswith("{") and t.endswith("}"):
                    if not s:
                        break
                    params[t[1:-1]] = s
                elif t == s:
                    literal += 1
                else:
                    break
            else:
                if literal > best[0]:
                    best = (literal, tmpl, params)
        return best[1], best[2]

    def methods(self, template: str) -> list[str]:
        return dict(self._templates).get(template, [])

    def check_request(self, method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str],
                      body: bytes, content_type: str) -> RequestCheck:
        template, params = self.match(path)
        if template is None:
            return RequestCheck(False, 404, "Not Found", f"no route for {method} {path}")
        if method.upper() not in self.methods(template):
            return RequestCheck(False, 405, "Method Not Allowed",
                                "The requested method is not allowed for this path.",
                                allow=", ".join(self.methods(template)), path_pattern=template)
        req = MockRequest(HOST_URL, method, path, path_pattern=template,
                          args=_multi(query), view_args=params, headers=dict(headers),
                          data=body, content_type=content_type or "")
        errors: list[str] = []
        status, title, detail = 0, "", ""
        with self._lock:
            found = list(self.api.iter_request_errors(req))
        for err in found:
            if isinstance(err, (PathNotFound,)):
                return RequestCheck(False, 404, "Not Found", str(err))
            if isinstance(err, OperationNotFound):
                return RequestCheck(False, 405, "Method Not Allowed", str(err), allow=", ".join(self.methods(template)))
            if isinstance(err, SecurityValidationError):
                continue   # authentication is checked by the stand-in itself (401)
            if isinstance(err, ParameterValidationError):
                where = f"{err.location}.{err.name}"
                msgs = schema_error_messages(self.doc, _schema_errors_of(err), prefix=where)
                if not msgs:
                    cause = _cause_chain(err)
                    msgs = [f"{where}: {cause[0] if cause else err}"]
                errors += msgs
                status = status or 422
                continue
            if isinstance(err, MissingRequestBodyError):
                errors.append("$: request body is required")
                status = status or 422
                continue
            if isinstance(err, RequestBodyValidationError):
                causes = _cause_chain(err)
                names = {type(c).__name__ for c in causes}
                if "MediaTypeDeserializeError" in names:
                    return RequestCheck(False, 400, "Bad Request", "request body is not valid JSON")
                if "MediaTypeNotFound" in names:
                    return RequestCheck(False, 415, "Unsupported Media Type",
                                        f"content type {content_type!r} not supported; send application/json")
                msgs = schema_error_messages(self.doc, _schema_errors_of(err))
                errors += msgs or [f"$: {causes[0] if causes else err}"]
                status = status or 422
                continue
            errors.append(str(err))
            status = status or 422
        if errors:
            return RequestCheck(False, status, "Unprocessable Entity", "Request validation failed.",
                                errors=errors, path_pattern=template, path_params=params)
        return RequestCheck(True, path_pattern=template, path_params=params)

    def response_errors(self, method: str, path: str, path_pattern: Optional[str], query: Mapping[str, list[str]],
                        status: int, headers: Mapping[str, str], body: bytes, content_type: str) -> list[str]:
        template, _ = self.match(path)
        if template is None or method.upper() not in self.methods(template):
            return []   # no contract for paths/methods the document does not have
        req = MockRequest(HOST_URL, method, path, path_pattern=path_pattern or template, args=_multi(query),
                          headers={"Authorization": "Bearer x"}, content_type="application/json")
        resp = MockResponse(body, status, headers=dict(headers), content_type=content_type or "")
        out = []
        with self._lock:
            found = list(self.api.iter_response_errors(req, resp))
        for err in found:
            msgs = schema_error_messages(self.doc, _schema_errors_of(err))
            causes = _cause_chain(err)
            out += msgs or [f"{type(err).__name__}: {causes[0] if causes else err}"]
        return out


def _multi(query: Mapping[str, list[str]]) -> Any:
    from werkzeug.datastructures import ImmutableMultiDict

    return ImmutableMultiDict([(k, v) for k, vs in query.items() for v in vs])
