"""Load generation: streamed chat completions at a fixed concurrency, bounded in requests and time.

The `openai` async client drives the endpoint (the same client agents use); load generators
from the field (guidellm, locust) would bring a web UI or a large dependency tree for what is
one loop per worker here. Each worker sends one request at a time until the level's request
budget or its time budget is spent; requests in flight then finish (each bounded by the
request timeout), so a level always stops by itself.

The workload resembles coding-agent traffic: a long prompt whose first part (the system
prompt, tool definitions and repository context an agent resends every turn) is shared by
every request, a unique tail, and a medium-length answer (of varying length around the mean). Token counts are approximate on the
way in (one synthetic word is about one token) and exact on the way out: ``ignore_eos`` makes
vLLM generate exactly ``max_tokens`` tokens, and the stream's usage record counts them.
"""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import httpx
import openai

from infra.bench.workload import Workload

# A deterministic vocabulary of code-like words for synthetic prompts.
_VOCAB = ("def", "return", "self", "value", "config", "request", "handler", "async", "await", "import",
          "class", "None", "list", "dict", "error", "retry", "token", "stream", "buffer", "index",
          "parse", "render", "yield", "assert", "path", "module", "cache", "field", "result", "state")


@dataclass
class RequestResult:
    start: float                       # time.monotonic() when sent
    end: float
    first_token: Optional[float] = None
    output_tokens: int = 0
    error: Optional[str] = None        # the error's class and status, never its text (it may echo headers)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class LevelRun:
    concurrency: int
    started: float
    finished: float
    results: list[RequestResult] = field(default_factory=list)
    # When the last request was sent: until then every worker had a request in flight, so the
    # concurrency was held; afterwards the level drains at a falling concurrency.
    last_sent: Optional[float] = None


def shared_prefix(workload: Workload) -> str:
    """The same for every request of a run (and of every run with the same seed)."""
    rng = random.Random(workload.seed)
    return " ".join(rng.choice(_VOCAB) for _ in range(workload.shared_prefix_tokens))


def unique_tail(workload: Workload, rng: random.Random) -> str:
    return " ".join(rng.choice(_VOCAB) for _ in range(max(1, workload.input_tokens - workload.shared_prefix_tokens)))


def _describe(e: BaseException) -> str:
    status = getattr(e, "status_code", None)
    return f"{type(e).__name__}" + (f" ({status})" if status else "")


async def _one(client: openai.AsyncOpenAI, model: str, max_tokens: int, prefix: str, tail: str,
               timeout: float) -> RequestResult:
    res = RequestResult(start=time.monotonic(), end=0.0)
    try:
        async with asyncio.timeout(timeout):     # the whole request, not only each read
            await _stream(client, model, max_tokens, prefix, tail, res)
    except TimeoutError:
        res.error = "Timeout"
    except (openai.OpenAIError, httpx.HTTPError) as e:
        res.error = _describe(e)
    res.end = time.monotonic()
    return res


async def _stream(client: openai.AsyncOpenAI, model: str, max_tokens: int, prefix: str, tail: str,
                  res: RequestResult) -> None:
    stream = await client.chat.completions.create(
        model=model, stream=True, max_tokens=max_tokens, stream_options={"include_usage": True},
        messages=[{"role": "system", "content": prefix}, {"role": "user", "content": tail}],
        extra_body={"ignore_eos": True})
    chunks, usage = 0, None
    async with stream:       # the response is closed however the request ends (a timeout too)
        async for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage.completion_tokens
            for choice in chunk.choices:
                delta = choice.delta
                if delta.content or getattr(delta, "reasoning_content", None):
                    chunks += 1
                    if res.first_token is None:
                        res.first_token = time.monotonic()
    res.output_tokens = usage if usage is not None else chunks


async def run_level(client: openai.AsyncOpenAI, model: str, workload: Workload, concurrency: int,
                    on_result: Callable[[RequestResult], None] = lambda r: None) -> LevelRun:
    budget = workload.requests_for(concurrency)
    rng = random.Random(workload.seed * 1000 + concurrency)
    run = LevelRun(concurrency, time.monotonic(), 0.0)
    deadline = run.started + workload.seconds_per_level
    prefix, sent = shared_prefix(workload), 0

    async def worker() -> None:
        nonlocal sent
        while sent < budget and time.monotonic() < deadline:
            sent += 1
            run.last_sent = time.monotonic()
            r = await _one(client, model, rng.randint(*workload.output_range()), prefix, unique_tail(workload, rng),
                           workload.request_timeout)
            run.results.append(r)
            on_result(r)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.finished = time.monotonic()
    return run


def client_for(base_url: str, api_key: str, workload: Workload, max_concurrency: int) -> openai.AsyncOpenAI:
    """No retries (a retried request would hide an error and distort latency); enough
    connections for the highest level."""
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=max_concurrency + 8,
                                                 max_keepalive_connections=max_concurrency + 8),
                             timeout=httpx.Timeout(workload.request_timeout, connect=10.0))
    return openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, http_client=http)
