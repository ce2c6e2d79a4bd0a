"""Reduce RunPod's published OpenAPI document to the machine-readable contract the RunPod
stand-in validates against (tests/data/runpod/openapi-v2.contract.json): paths, parameters,
request and response schemas, enums and security schemes; no prose (descriptions, summaries,
examples, tags, code samples).

Source: RunPod's REST API v2 OpenAPI 3.1 document, public repository github.com/runpod/docs,
path api-reference-v2/openapi.json, commit a900806e253c4f8c16da27d1a4370e72456da4cb
(2026-08-20). Regenerate with

    python tests/data/runpod/reduce_openapi.py openapi.json > tests/data/runpod/openapi-v2.contract.json
"""
from __future__ import annotations

import json
import sys
from typing import Any

PROSE = {"description", "summary", "example", "examples", "externalDocs", "tags", "x-codeSamples",
         "x-enum-varnames", "title"}
# Maps whose keys are names (a property called "description" is data, not prose).
NAMED = {"properties", "patternProperties", "paths", "schemas", "responses", "parameters", "securitySchemes",
         "content", "headers", "requestBodies", "$defs", "dependentSchemas", "links", "callbacks"}


def reduce(node: Any, names: bool = False, response: bool = False) -> Any:
    if isinstance(node, list):
        return [reduce(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if not names and key in PROSE:
            continue
        out[key] = reduce(value, names=(not names and key in NAMED), response=(names is False and key == "responses"))
    if response:
        # OpenAPI requires a description on every response object: an empty one.
        out = {code: {"description": "", **obj} if isinstance(obj, dict) and "$ref" not in obj else obj
               for code, obj in out.items()}
    return out


def main(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    reduced = reduce(doc)
    reduced["info"] = {"title": "RunPod REST API v2 (machine-readable part)", "version": doc["info"]["version"]}
    json.dump(reduced, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
