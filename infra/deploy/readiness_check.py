"""The readiness gate every provider runs after deploying: health, then the model list,
then (optionally) one chat completion.

It lives here, not in a provider, because every target ends in the same OpenAI-compatible
endpoint and users expect the same answer to "is it up?" from each.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Optional

import httpx

from infra.common.http import poll
from infra.common.secrets import redact


class ReadinessError(Exception):
    def __init__(self, step: str, detail: str):
        self.step = step
        self.detail = redact(detail)
        super().__init__(f"readiness gate failed at '{step}': {self.detail}")


@dataclass(frozen=True)
class Gate:
    base_url: str                 # the server root, e.g. https://x.modal.run
    api_key: Optional[str]
    model_name: str
    timeout_seconds: float
    poll_seconds: float = 10.0
    request_timeout: float = 30.0
    smoke_test: bool = False
    tool_call_check: bool = False


def _describe(resp: httpx.Response) -> str:
    body = resp.text.strip().replace("\n", " ")
    return f"HTTP {resp.status_code}" + (f" {body[:300]}" if body else "")


def wait_ready(gate: Gate, log: Callable[[str], None] = print,
               transport: httpx.BaseTransport | None = None) -> None:
    """Poll until the endpoint serves the model, or raise ReadinessError."""
    headers = {"Authorization": f"Bearer {gate.api_key}"} if gate.api_key else {}
    base = gate.base_url.rstrip("/")
    reported: list = [None, -1e9]      # answer, time: progress is logged on change or once a minute
    with httpx.Client(timeout=gate.request_timeout, transport=transport, follow_redirects=True) as http:
        # 1. /health until 200. A cold 704 GiB load takes minutes; the proxy in front may
        # answer 5xx or drop the connection meanwhile, so every failure here means "not yet".
        def health() -> tuple[bool, str]:
            try:
                resp = http.get(f"{base}/health")
                return resp.status_code == 200, _describe(resp)
            except httpx.HTTPError as e:
                return False, f"{type(e).__name__}: {e}"

        def progress(answer: tuple[bool, str], elapsed: float) -> None:
            ok, last = answer
            if ok:
                log(f"{base}/health is 200 after {elapsed:.0f}s")
            elif last != reported[0] or elapsed - reported[1] >= 60:
                log(f"waiting for {base}/health: {elapsed:.0f}s elapsed, last answer: {last}")
                reported[:] = [last, elapsed]

        (_, last), ok = poll(health, until=lambda a: a[0], interval=gate.poll_seconds,
                             timeout=gate.timeout_seconds, on_value=progress)
        if not ok:
            raise ReadinessError(
                "health", f"GET {base}/health not 200 within the startup timeout "
                          f"({gate.timeout_seconds:.0f}s); last answer: {last}")

        # 2. The model list, with the key: proves auth and that the right model is served.
        try:
            resp = http.get(f"{base}/v1/models", headers=headers)
        except httpx.HTTPError as e:
            raise ReadinessError("models", f"GET {base}/v1/models failed: {type(e).__name__}: {e}") from None
        if resp.status_code in (401, 403) and gate.api_key is None:
            # The key lives only in a provider-side named secret: auth is enforced, which is
            # all that can be checked from here.
            log(f"{base}/v1/models requires a key (held in a named secret); model list not checked")
            return
        if resp.status_code in (401, 403):
            raise ReadinessError("models", f"GET {base}/v1/models rejected the API key: {_describe(resp)}")
        if resp.status_code != 200:
            raise ReadinessError("models", f"GET {base}/v1/models: {_describe(resp)}")
        try:
            ids = [m["id"] for m in resp.json().get("data", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ReadinessError("models", f"GET {base}/v1/models: not an OpenAI model list: {_describe(resp)}") from None
        if gate.model_name not in ids:
            raise ReadinessError("models", f"served models {ids} do not include {gate.model_name!r}")
        log(f"{base}/v1/models lists {gate.model_name}")

        # 3. Optional: one tiny completion, for stacks that want proof of generation.
        if gate.smoke_test:
            body = {"model": gate.model_name, "max_tokens": 8,
                    "messages": [{"role": "user", "content": "Say OK."}]}
            try:
                resp = http.post(f"{base}/v1/chat/completions", headers=headers, json=body,
                                 timeout=max(gate.request_timeout, 120.0))
            except httpx.HTTPError as e:
                raise ReadinessError("smoke", f"POST {base}/v1/chat/completions failed: {type(e).__name__}: {e}") from None
            if resp.status_code != 200:
                raise ReadinessError("smoke", f"POST {base}/v1/chat/completions: {_describe(resp)}")
            log("smoke chat completion answered")

        # 4. Optional: one tool call, for nodes that agents use.
        if gate.tool_call_check:
            check_tool_call(http, base, headers, gate)
            log("tool call answered as a well-formed tool_calls entry")


# A tool the model cannot answer without: the check needs a call, not an opinion. The choice
# stays "auto": a named or "required" tool choice goes through guided decoding, not through the
# engine's tool-call parser, which is what breaks (e.g. with MTP speculative decoding).
TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TOOL_PROMPT = "What is the weather in Paris right now? Call the get_weather tool; do not answer in text."


def check_tool_call(http: httpx.Client, base: str, headers: dict, gate: Gate) -> None:
    body = {"model": gate.model_name, "max_tokens": 1024, "tools": [TOOL], "tool_choice": "auto",
            "messages": [{"role": "user", "content": TOOL_PROMPT}]}
    url = f"{base}/v1/chat/completions"
    try:
        resp = http.post(url, headers=headers, json=body, timeout=max(gate.request_timeout, 120.0))
    except httpx.HTTPError as e:
        raise ReadinessError("tool-call", f"POST {url} failed: {type(e).__name__}: {e}") from None
    if resp.status_code != 200:
        raise ReadinessError("tool-call", f"POST {url} with a tool: {_describe(resp)} (is tool calling enabled: "
                                          "engine.toolCallParser and engine.autoToolChoice?)")
    try:
        message = resp.json()["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ReadinessError("tool-call", f"POST {url}: not an OpenAI chat completion: {_describe(resp)}") from None
    calls = message.get("tool_calls") or []
    if not calls:
        text = (message.get("content") or "").strip().replace("\n", " ")
        raise ReadinessError("tool-call", "the tool call came back as plain text, not as tool_calls (the engine's "
                                          "tool-call parser does not match the model, or is broken in this engine "
                                          f"version, e.g. together with MTP speculative decoding): {text[:200]!r}")
    fn = calls[0].get("function") or {}
    try:
        args = json.loads(fn.get("arguments") or "")
    except (ValueError, TypeError):
        args = None
    if fn.get("name") != "get_weather" or not isinstance(args, dict) or not isinstance(args.get("city"), str):
        raise ReadinessError("tool-call", f"malformed tool call: name {fn.get('name')!r}, arguments "
                                          f"{str(fn.get('arguments'))[:200]!r} (want get_weather with a JSON "
                                          "object holding 'city')")
