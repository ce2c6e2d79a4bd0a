"""Engine stand-in: plays a vLLM OpenAI-compatible server on 127.0.0.1.

Routes (all also reachable under a per-pod prefix, see below):

* ``GET /health``: 503 until the scripted start-up delay has passed, then 200 (empty body, like
  vLLM). No auth, like vLLM (its API-key check only covers ``/v1``).
* ``GET /v1/models``: ``{"object": "list", "data": [{"id", "object": "model", "created",
  "owned_by": "vllm", "root", "parent", "max_model_len"}]}``.
* ``POST /v1/chat/completions`` (optionally ``"stream": true``, SSE) and ``POST /v1/completions``.
* ``GET /version``.
* ``GET /metrics``: Prometheus text in vLLM's metric names (no auth, like vLLM), see *Load* below.

Load (for `glmserve bench`): a streamed request whose body asks for ``ignore_eos`` (as vLLM
takes it) streams exactly ``max_tokens`` tokens. Timing is scripted: the first token comes
``first_token_delay`` seconds after the request, then each stream gets ``tokens_per_second``
while at most ``capacity`` streams are past their first token; beyond that the engine's total
rate (``capacity x tokens_per_second``) is shared, so the total output rate saturates once
``capacity`` streams decode at once (``capacity=None``: no limit). ``fail_every=N`` answers
every N-th completion request with a 500 (deterministic faults). ``/metrics`` reports the
active streams as ``vllm:num_requests_running`` (up to ``capacity``) and
``vllm:num_requests_waiting`` (beyond it), ``vllm:kv_cache_usage_perc`` as running/capacity,
and the speculative-decoding counters with an acceptance of ``spec_acceptance``.

When an API key is configured, ``/v1/*`` needs ``Authorization: Bearer <key>``; otherwise 401
``{"error": "Unauthorized"}`` (vLLM's own body), which the ``openai`` client raises as
``openai.AuthenticationError``. Before the engine is healthy every route answers 503.

Modes (``mode=``, changeable at run time with :meth:`EngineStandin.set_mode`):

* ``healthy``: healthy once ``startup_delay`` seconds have passed since the start clock.
* ``never_healthy``: ``/health`` stays 503 forever (and ``/v1`` answers 503).
* ``crash``: every request fails: ``crash_style="500"`` (default) answers 500,
  ``crash_style="reset"`` closes the connection without a response. For a real
  "connection refused", stop the stand-in (:meth:`EngineStandin.stop`).
* ``wrong_model``: healthy, but ``/v1/models`` lists ``wrong_model_name`` instead of the served
  model (and chat requests for the served name get vLLM's 404).

Tool calls: a chat request with ``tools`` (and ``tool_choice`` not ``"none"``) is answered with
one ``tool_calls`` entry for the first tool (or the named one), its arguments a JSON object
with a value for every required parameter, ``finish_reason: "tool_calls"``, as vLLM answers
when its tool-call parser is running. The fault ``tool_parser="broken"`` answers the way a
broken or mismatched parser does: the model's raw tool-call markup as plain text in
``content`` (GLM's ``<tool_call>name<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>``
form, https://docs.vllm.ai/en/latest/api/vllm/parser/glm47_moe/), ``tool_calls`` empty.

Several pods, one engine (the design chosen for RunPod's proxy): RunPod exposes a pod's port as
``https://{podId}-{port}.proxy.runpod.net``. The stand-in routes on a *path prefix* instead:
``{url}/pods/{podId}-{port}/...`` (``{url}/pods/{podId}/...`` works too), and also on a Host
header of the real form ``{podId}-{port}.proxy.<anything>``. :attr:`EngineStandin.proxy_url_template`
is ``"{url}/pods/{pod_id}-{port}"``, the local twin of ``"https://{pod_id}-{port}.proxy.runpod.net"``.
Each pod has its own start clock and may override any setting (``configure(pod_id=..., ...)``).
A *gate* (``set_gate(fn)``, installed by the RunPod stand-in) tells, per pod, when its container
started (``time.monotonic()`` value) or ``None`` if it is not running; the proxy then answers 502
like RunPod's proxy does for a pod that is down, and the start-up delay is counted from the
container start. Without a gate a pod's clock starts the first time the pod is addressed.
"""
from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from ._http import BackgroundHTTPServer, Exchange, HttpStandin, Reply, ResetConnection, json_reply

__all__ = ["EngineStandin", "EngineRequest", "MODES", "DEFAULT_MODEL"]

DEFAULT_MODEL = "zai-org/GLM-5.2-FP8"
MODES = ("healthy", "never_healthy", "crash", "wrong_model")
TOOL_PARSERS = ("working", "broken")
_SETTINGS = ("mode", "startup_delay", "api_key", "served_model_name", "wrong_model_name",
             "crash_style", "max_model_len", "completion_text", "tool_parser", "first_token_delay", "tokens_per_second",
             "capacity", "fail_every", "spec_acceptance")
# Draft tokens proposed per emitted token in the spec-decoding counters (any fixed ratio does).
_DRAFTS_PER_TOKEN = 2

_POD_PATH = re.compile(r"^/pods/([A-Za-z0-9_]+?)(?:-(\d+))?(/.*)?$")
_POD_HOST = re.compile(r"^([A-Za-z0-9_]+)-(\d+)\.proxy\.", re.I)


@dataclass
class EngineRequest:
    method: str
    path: str                      # path as seen by the engine (per-pod prefix removed)
    pod_id: Optional[str]          # None when addressed directly, not through a pod prefix
    headers: dict[str, str]        # lower-case names; the Authorization value is redacted
    json: Any = None
    status: Optional[int] = None   # None when the connection was reset
    time: float = field(default_factory=time.time)


class EngineStandin(HttpStandin):
    def __init__(
        self,
        served_model_name: str = DEFAULT_MODEL,
        *,
        api_key: Optional[str] = None,
        startup_delay: float = 0.0,
        mode: str = "healthy",
        crash_style: str = "500",
        wrong_model_name: str = "wrong-org/not-the-served-model",
        max_model_len: int = 202752,
        completion_text: str = "Hello from the glmserve engine stand-in.",
        tool_parser: str = "working",
        first_token_delay: float = 0.0,
        tokens_per_second: Optional[float] = None,
        capacity: Optional[int] = None,
        fail_every: int = 0,
        spec_acceptance: float = 0.7,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self._lock = threading.RLock()
        self._defaults: dict[str, Any] = {}
        self._overrides: dict[str, dict[str, Any]] = {}
        self._clocks: dict[Optional[str], float] = {}
        self._gate: Optional[Callable[[str], Optional[float]]] = None
        self._requests: list[EngineRequest] = []
        self._active = 0                  # streams between the request and their last token
        self._decoding = 0                # streams past their first token
        self._completions = 0             # completion requests seen (for fail_every)
        self._emitted = 0                 # output tokens streamed (for the spec-decoding counters)
        self.configure(mode=mode, startup_delay=startup_delay, api_key=api_key,
                       served_model_name=served_model_name, wrong_model_name=wrong_model_name,
                       crash_style=crash_style, max_model_len=max_model_len,
                       completion_text=completion_text, tool_parser=tool_parser,
                       first_token_delay=first_token_delay,
                       tokens_per_second=tokens_per_second, capacity=capacity, fail_every=fail_every,
                       spec_acceptance=spec_acceptance)
        self._http = BackgroundHTTPServer(self._app, host, port)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "EngineStandin":
        """Serve; the OpenAI base URL is ``url + "/v1"``."""
        super().start()
        with self._lock:
            self._clocks[None] = time.monotonic()
        return self

    # ------------------------------------------------------------------ configuration
    def configure(self, pod_id: Optional[str] = None, **settings: Any) -> None:
        """Change settings for the whole engine (``pod_id=None``) or for one pod only."""
        unknown = set(settings) - set(_SETTINGS)
        if unknown:
            raise TypeError(f"unknown engine setting(s): {sorted(unknown)}; known: {_SETTINGS}")
        if "mode" in settings and settings["mode"] not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if "crash_style" in settings and settings["crash_style"] not in ("500", "reset"):
            raise ValueError("crash_style must be '500' or 'reset'")
        if "tool_parser" in settings and settings["tool_parser"] not in TOOL_PARSERS:
            raise ValueError(f"tool_parser must be one of {TOOL_PARSERS}")
        with self._lock:
            (self._defaults if pod_id is None else self._overrides.setdefault(pod_id, {})).update(settings)

    def set_mode(self, mode: str, pod_id: Optional[str] = None) -> None:
        self.configure(pod_id, mode=mode)

    def reset_clock(self, pod_id: Optional[str] = None) -> None:
        """Restart the start-up timer (as if the engine process had just been launched)."""
        with self._lock:
            self._clocks[pod_id] = time.monotonic()

    def settings(self, pod_id: Optional[str] = None) -> dict[str, Any]:
        with self._lock:
            return {**self._defaults, **(self._overrides.get(pod_id, {}) if pod_id else {})}

    def set_gate(self, gate: Optional[Callable[[str], Optional[float]]]) -> None:
        """``gate(pod_id) -> container start time (time.monotonic) or None if not running``."""
        with self._lock:
            self._gate = gate

    def proxy_url(self, pod_id: str, port: int = 8000) -> str:
        return f"{self.url}/pods/{pod_id}-{port}"

    @property
    def proxy_url_template(self) -> str:
        """``"{url}/pods/{pod_id}-{port}"`` (placeholders left for ``str.format``)."""
        return self.url + "/pods/{pod_id}-{port}"

    # ------------------------------------------------------------------ inspection
    def requests(self, path: Optional[str] = None, pod_id: Any = ...) -> list[EngineRequest]:
        with self._lock:
            out = list(self._requests)
        if path is not None:
            out = [r for r in out if r.path == path]
        if pod_id is not ...:
            out = [r for r in out if r.pod_id == pod_id]
        return out

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def is_healthy(self, pod_id: Optional[str] = None) -> bool:
        return self._state(pod_id, self.settings(pod_id)) == "ready"

    # ------------------------------------------------------------------ internals
    def _state(self, pod_id: Optional[str], cfg: dict[str, Any]) -> str:
        """'down' (proxy 502) | 'crash' | 'starting' | 'ready'."""
        now = time.monotonic()
        with self._lock:
            gate = self._gate
        if pod_id is not None and gate is not None:
            started = gate(pod_id)          # called without our lock held
            if started is None:
                return "down"
        else:
            with self._lock:
                started = self._clocks.setdefault(pod_id, now)
        if cfg["mode"] == "crash":
            return "crash"
        if cfg["mode"] == "never_healthy":
            return "starting"
        return "ready" if now - started >= float(cfg["startup_delay"]) else "starting"

    def _app(self, ex: Exchange) -> Reply:
        pod_id, path = None, ex.path
        m = _POD_PATH.match(ex.path)
        if m:
            pod_id, path = m.group(1), m.group(3) or "/"
        else:
            hm = _POD_HOST.match(ex.headers.get("host", ""))
            if hm:
                pod_id = hm.group(1)
        headers = {k: ("<redacted>" if k == "authorization" else v) for k, v in ex.headers.items()}
        try:
            body = ex.json()
        except ValueError:
            body = ex.body.decode("utf-8", "replace")
        rec = EngineRequest(ex.method, path, pod_id, headers, body)
        with self._lock:
            self._requests.append(rec)
        cfg = self.settings(pod_id)
        state = self._state(pod_id, cfg)
        if state == "crash" and cfg["crash_style"] == "reset":
            raise ResetConnection()
        reply = self._route(ex, path, pod_id, cfg, state, body)
        rec.status = reply.status
        return reply

    def _route(self, ex: Exchange, path: str, pod_id: Optional[str], cfg: dict, state: str, body: Any) -> Reply:
        if state == "down":
            return Reply(502, b"<html><body><h1>502 Bad Gateway</h1>pod is not running</body></html>",
                         "text/html; charset=utf-8")
        if state == "crash":
            return json_reply(500, {"error": {"message": "EngineDeadError: engine core died",
                                              "type": "InternalServerError", "param": None, "code": 500}})
        if state == "starting":
            if path == "/health":
                return Reply(503, b"", "application/json")
            return json_reply(503, {"error": {"message": "engine is starting", "type": "ServiceUnavailableError",
                                              "param": None, "code": 503}})
        if path == "/health" and ex.method in ("GET", "HEAD"):
            return Reply(200, b"", "application/json")
        if path == "/metrics" and ex.method == "GET":
            return Reply(200, self._metrics(cfg).encode(), "text/plain; version=0.0.4; charset=utf-8")
        if path == "/version" and ex.method == "GET":
            return json_reply(200, {"version": "0.0.0+glmserve-standin"})
        if path.startswith("/v1/"):
            key = cfg["api_key"]
            if key is not None and ex.headers.get("authorization", "") != f"Bearer {key}":
                return json_reply(401, {"error": "Unauthorized"})
            if path == "/v1/models" and ex.method == "GET":
                return self._models(cfg)
            if path in ("/v1/chat/completions", "/v1/completions") and ex.method == "POST":
                with self._lock:
                    self._completions += 1
                    faulty = cfg["fail_every"] and self._completions % int(cfg["fail_every"]) == 0
                if faulty:
                    return self._error(500, "scripted fault", "InternalServerError")
                return self._completion(cfg, body, chat=path == "/v1/chat/completions", stopping=ex.stopping)
        return json_reply(404, {"detail": "Not Found"})

    @staticmethod
    def _listed_model(cfg: dict) -> str:
        return cfg["wrong_model_name"] if cfg["mode"] == "wrong_model" else cfg["served_model_name"]

    def _models(self, cfg: dict) -> Reply:
        name = self._listed_model(cfg)
        return json_reply(200, {"object": "list", "data": [{
            "id": name, "object": "model", "created": int(time.time()), "owned_by": "vllm",
            "root": name, "parent": None, "max_model_len": cfg["max_model_len"], "permission": [],
        }]})

    @staticmethod
    def _error(status: int, message: str, type_: str, param: Optional[str] = None) -> Reply:
        return json_reply(status, {"error": {"message": message, "type": type_, "param": param, "code": status}})

    def _metrics(self, cfg: dict) -> str:
        """vLLM's names (https://docs.vllm.ai/en/stable/usage/metrics/), one model label."""
        with self._lock:
            active, emitted = self._active, self._emitted
        cap = cfg["capacity"]
        running = active if cap is None else min(active, int(cap))
        label = f'{{model_name="{cfg["served_model_name"]}"}}'
        drafts = emitted * _DRAFTS_PER_TOKEN
        rows = [("vllm:num_requests_running", "gauge", running),
                ("vllm:num_requests_waiting", "gauge", active - running),
                ("vllm:kv_cache_usage_perc", "gauge", running / cap if cap else 0.0),
                ("vllm:generation_tokens", "counter", emitted),
                ("vllm:spec_decode_num_draft_tokens", "counter", drafts),
                ("vllm:spec_decode_num_accepted_tokens", "counter", drafts * float(cfg["spec_acceptance"]))]
        out = []
        for name, kind, value in rows:
            sample = name + "_total" if kind == "counter" else name
            out += [f"# HELP {name} glmserve engine stand-in", f"# TYPE {name} {kind}", f"{sample}{label} {value}"]
        return "\n".join(out) + "\n"

    def _completion(self, cfg: dict, body: Any, chat: bool, stopping: Optional[threading.Event] = None) -> Reply:
        if not isinstance(body, dict):
            return self._error(400, "request body must be a JSON object", "BadRequestError")
        model = body.get("model")
        if model != self._listed_model(cfg):
            return self._error(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
        if chat:
            msgs = body.get("messages")
            if not isinstance(msgs, list) or not msgs:
                return self._error(400, "messages must be a non-empty list", "BadRequestError", "messages")
            prompt_text = " ".join(str(m.get("content", "")) for m in msgs if isinstance(m, dict))
        else:
            prompt = body.get("prompt")
            if prompt is None:
                return self._error(400, "prompt is required", "BadRequestError", "prompt")
            prompt_text = prompt if isinstance(prompt, str) else json.dumps(prompt)
        words = str(cfg["completion_text"]).split()
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        finish = "stop"
        if isinstance(max_tokens, int) and body.get("ignore_eos") and max_tokens > 0:
            # vLLM's ignore_eos: generate until max_tokens.
            words, finish = [words[i % len(words)] for i in range(max_tokens)], "length"
        elif isinstance(max_tokens, int) and 0 < max_tokens < len(words):
            words, finish = words[:max_tokens], "length"
        text = " ".join(words)
        usage = {"prompt_tokens": max(1, len(prompt_text.split())), "completion_tokens": len(words)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        created = int(time.time())
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        if body.get("stream"):
            return Reply(200, content_type="text/event-stream; charset=utf-8",
                         headers={"Cache-Control": "no-cache"},
                         stream=self._paced(cfg, stopping or threading.Event(), self._stream(
                             rid, created, model, words, finish, usage, chat,
                             bool((body.get("stream_options") or {}).get("include_usage")))))
        tool = self._called_tool(body) if chat else None
        if tool is not None:
            name, arguments = tool
            if cfg["tool_parser"] == "broken":
                markup = "".join(f"<arg_key>{k}</arg_key><arg_value>{v}</arg_value>" for k, v in arguments.items())
                message = {"role": "assistant", "content": f"<tool_call>{name}{markup}</tool_call>",
                           "tool_calls": [], "reasoning_content": None}
            else:
                message = {"role": "assistant", "content": None, "reasoning_content": None, "tool_calls": [{
                    "id": "chatcmpl-tool-" + uuid.uuid4().hex, "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)}}]}
                finish = "tool_calls"
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish, "stop_reason": None}
            obj = "chat.completion"
        elif chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text, "tool_calls": [],
                                              "reasoning_content": None},
                      "logprobs": None, "finish_reason": finish, "stop_reason": None}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": None}
            obj = "text_completion"
        return json_reply(200, {"id": rid, "object": obj, "created": created, "model": model,
                                "choices": [choice], "usage": usage})

    def _paced(self, cfg: dict, stopping: threading.Event, events: Iterator[tuple[bool, bytes]]) -> Iterator[bytes]:
        """The events of a stream at the scripted pace: the first token after
        ``first_token_delay``, then each token after 1/rate, where the rate is
        ``tokens_per_second`` shared out once more than ``capacity`` streams are active."""
        tps, cap = cfg["tokens_per_second"], cfg["capacity"]
        first, due = True, time.monotonic() + float(cfg["first_token_delay"])
        with self._lock:
            self._active += 1
        try:
            for is_token, chunk in events:
                if is_token:
                    if not first and tps:
                        # Each token is due 1/rate after the previous one was due, so the time
                        # spent writing and parsing does not slow the scripted rate down. Only
                        # streams past their first token share the decode rate.
                        with self._lock:
                            share = max(1.0, self._decoding / int(cap)) if cap else 1.0
                        due += share / float(tps)
                    wait = due - time.monotonic()
                    if wait > 0 and stopping.wait(wait):
                        return
                    with self._lock:
                        self._emitted += 1
                        if first:
                            self._decoding += 1
                    first = False
                yield chunk
        finally:
            with self._lock:
                self._active -= 1
                if not first:
                    self._decoding -= 1

    @staticmethod
    def _called_tool(body: dict) -> Optional[tuple[str, dict]]:
        """The tool a model would call for this request: (name, arguments), or None."""
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and isinstance(t.get("function"), dict)]
        choice = body.get("tool_choice", "auto")
        if not tools or choice == "none":
            return None
        fn = tools[0]["function"]
        if isinstance(choice, dict):
            wanted = (choice.get("function") or {}).get("name")
            fn = next((t["function"] for t in tools if t["function"].get("name") == wanted), fn)
        params = fn.get("parameters") or {}
        props = params.get("properties") or {}
        samples = {"string": "Paris", "integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}
        arguments = {k: samples.get((props.get(k) or {}).get("type"), "Paris") for k in params.get("required") or []}
        return str(fn.get("name")), arguments

    @staticmethod
    def _stream(rid: str, created: int, model: str, words: list[str], finish: str, usage: dict,
                chat: bool, include_usage: bool) -> Iterator[tuple[bool, bytes]]:
        """(carries a token, SSE event) pairs."""
        obj = "chat.completion.chunk" if chat else "text_completion"

        def event(choices: list, extra: Optional[dict] = None) -> bytes:
            payload = {"id": rid, "object": obj, "created": created, "model": model, "choices": choices}
            payload.update(extra or {})
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        if chat:
            yield False, event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                 "finish_reason": None}])
        for i, w in enumerate(words):
            piece = w if i == 0 else " " + w
            if chat:
                yield True, event([{"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}])
            else:
                yield True, event([{"index": 0, "text": piece, "logprobs": None, "finish_reason": None}])
        last = ({"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish} if chat
                else {"index": 0, "text": "", "logprobs": None, "finish_reason": finish})
        yield False, event([last])
        if include_usage:
            yield False, event([], {"usage": usage})
        yield False, b"data: [DONE]\n\n"
