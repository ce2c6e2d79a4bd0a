"""One HTTP retry policy for every provider's REST calls, on httpx + tenacity.

What is retried, and why:

* connection errors and timeouts (``httpx.TransportError``): the request may never have
  reached the server, or its answer was lost;
* ``429 Too Many Requests``: waiting what ``Retry-After`` says (capped), else backing off;
* ``5xx``: the API (or a gateway in front of it) failed; it may succeed on a second try.

Everything else is an answer, raised as :class:`HttpError` for the caller to explain.

Retries are bounded twice: by a number of attempts and by a total deadline. Waits grow
exponentially with jitter between ``initial_wait`` and ``max_wait``.

A request that is **not idempotent** (a POST that creates something) is sent once: a reset
after the server handled it would otherwise create a second object. Callers make the whole
step idempotent instead ("look for the object by its name; create it only if absent") and
retry *that* with :meth:`RetryPolicy.call`.

The knobs can be tightened for tests through the environment (``GLMSERVE_HTTP_ATTEMPTS``,
``GLMSERVE_HTTP_BACKOFF_INITIAL``, ``GLMSERVE_HTTP_BACKOFF_MAX``, ``GLMSERVE_HTTP_RETRY_AFTER_MAX``,
``GLMSERVE_HTTP_DEADLINE``, ``GLMSERVE_HTTP_TIMEOUT``); see :meth:`RetryPolicy.from_env`.
"""
from __future__ import annotations

import email.utils
import os
import time
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Iterable, Optional, TypeVar

import httpx
import tenacity

from infra.common.secrets import redact

T = TypeVar("T")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class HttpError(Exception):
    """A request that failed for good: an error answer, or no answer at all (``status`` None)."""

    def __init__(self, method: str, url: str, status: Optional[int], detail: str, *,
                 title: str = "", errors: Optional[list[str]] = None, retry_after: Optional[float] = None,
                 headers: Optional[dict[str, str]] = None, transport: bool = False):
        self.method = method
        self.url = url
        self.status = status
        self.detail = redact(detail)
        self.title = title
        self.errors = [redact(e) for e in (errors or [])]
        self.retry_after = retry_after
        self.headers = dict(headers or {})
        self.transport = transport
        self.attempts = 1
        super().__init__(self.summary())

    @property
    def retryable(self) -> bool:
        return self.transport or self.status == 429 or (self.status is not None and self.status >= 500)

    def summary(self) -> str:
        what = f"HTTP {self.status}" if self.status is not None else "no answer"
        return f"{self.method} {self.url}: {what}: {self.detail}"

    def __str__(self) -> str:
        tries = f" (after {self.attempts} attempts)" if self.attempts > 1 else ""
        return self.summary() + tries


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_from_response(resp: httpx.Response) -> HttpError:
    """An HttpError from an error answer; understands ``application/problem+json`` (RFC 9457)."""
    title, detail, errors = "", "", []
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        title = str(body.get("title") or "")
        detail = str(body.get("detail") or body.get("message") or body.get("error") or "")
        raw = body.get("errors")
        if isinstance(raw, list):
            errors = [str(e) for e in raw]
    if not detail:
        text = " ".join(resp.text.split())
        if "<html" in text.lower():
            text = f"an HTML page from a gateway ({resp.reason_phrase})"
        detail = text[:300] or resp.reason_phrase or "no detail"
    return HttpError(resp.request.method, str(resp.request.url), resp.status_code, detail, title=title,
                     errors=errors, retry_after=parse_retry_after(resp.headers.get("retry-after")),
                     headers=dict(resp.headers))


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        return default


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6                 # tries in all, the first included
    initial_wait: float = 1.0         # first back-off (seconds), doubled each retry, with jitter
    max_wait: float = 30.0            # longest back-off between two tries
    max_retry_after: float = 120.0    # longest Retry-After honoured; longer waits are capped
    deadline: float = 600.0           # no new try starts after this many seconds in all
    timeout: float = 60.0             # one request's read/write timeout (connect: min(timeout, 15))

    ENV = {
        "attempts": "GLMSERVE_HTTP_ATTEMPTS",
        "initial_wait": "GLMSERVE_HTTP_BACKOFF_INITIAL",
        "max_wait": "GLMSERVE_HTTP_BACKOFF_MAX",
        "max_retry_after": "GLMSERVE_HTTP_RETRY_AFTER_MAX",
        "deadline": "GLMSERVE_HTTP_DEADLINE",
        "timeout": "GLMSERVE_HTTP_TIMEOUT",
    }

    @classmethod
    def from_env(cls, **overrides: Any) -> "RetryPolicy":
        base = cls(**overrides)
        values = {}
        for f in fields(cls):
            env = cls.ENV.get(f.name)
            if env and os.environ.get(env):
                v = _env_float(env, getattr(base, f.name))
                values[f.name] = int(v) if f.name == "attempts" else v
        return replace(base, **values)

    def httpx_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, connect=min(self.timeout, 15.0))

    # ------------------------------------------------------------------ tenacity
    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self.max_retry_after)
        backoff = tenacity.wait_exponential(multiplier=self.initial_wait, max=self.max_wait) + \
            tenacity.wait_random(0, self.initial_wait)
        return min(self.max_wait, backoff(state))

    def retrying(self, retry_if: Optional[Callable[[BaseException], bool]] = None,
                 log: Optional[Callable[[str], None]] = None, what: str = "",
                 sleep: Optional[Callable[[float], None]] = None) -> tenacity.Retrying:
        predicate = retry_if or (lambda e: isinstance(e, HttpError) and e.retryable)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if log is None:
                return
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0
            log(redact(f"{what or 'request'}: {exc}; retrying in {wait:.1f}s "
                       f"(attempt {state.attempt_number + 1} of {self.attempts})"))

        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(1, self.attempts)) | tenacity.stop_after_delay(self.deadline),
            wait=self._wait,
            retry=tenacity.retry_if_exception(predicate),
            before_sleep=before_sleep,
            reraise=True,
            **({"sleep": sleep} if sleep is not None else {}),
        )

    def call(self, fn: Callable[..., T], *args: Any, retry_if: Optional[Callable[[BaseException], bool]] = None,
             log: Optional[Callable[[str], None]] = None, what: str = "",
             sleep: Optional[Callable[[float], None]] = None, **kwargs: Any) -> T:
        """Run ``fn`` under this policy; the last exception is re-raised with ``attempts`` set."""
        r = self.retrying(retry_if, log, what, sleep)
        try:
            return r(fn, *args, **kwargs)
        except HttpError as e:
            e.attempts = max(e.attempts, int(r.statistics.get("attempt_number", 1)))
            raise


def poll(fn: Callable[[], T], *, until: Callable[[T], bool], interval: float, timeout: float,
         on_value: Optional[Callable[[T, float], None]] = None,
         clock: Callable[[], float] = time.monotonic) -> tuple[T, bool]:
    """Call ``fn`` every ``interval`` seconds until ``until(value)`` or ``timeout``.

    Returns ``(last value, done)``. Exceptions from ``fn`` propagate (give ``fn`` its own
    retries). Built on tenacity too, so there is one waiting mechanism in the code base.
    """
    start = clock()

    def step() -> T:
        value = fn()
        if on_value is not None:
            on_value(value, clock() - start)
        return value

    r = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda v: not until(v)),
        wait=tenacity.wait_fixed(max(0.0, interval)),
        stop=tenacity.stop_after_delay(max(0.0, timeout)),
        retry_error_callback=lambda state: state.outcome.result(),
    )
    value = r(step)
    return value, until(value)


class RestClient:
    """A JSON REST client: one httpx.Client, bearer auth, and the retry policy above."""

    def __init__(self, base_url: str, token: Optional[str], *, policy: Optional[RetryPolicy] = None,
                 log: Optional[Callable[[str], None]] = None, user_agent: str = "glmserve",
                 transport: Optional[httpx.BaseTransport] = None, sleep: Optional[Callable[[float], None]] = None):
        self.policy = policy or RetryPolicy.from_env()
        self.log = log
        self.sleep = sleep
        headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers,
                                  timeout=self.policy.httpx_timeout(), transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RestClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def send_once(self, method: str, path: str, *, json: Any = None, params: Any = None,
                  ok: Iterable[int] = (200, 201, 202, 204)) -> httpx.Response:
        """One attempt; an error answer or a transport failure raises HttpError."""
        url = str(self._http.base_url).rstrip("/") + path
        try:
            resp = self._http.request(method, path, json=json, params=params)
        except httpx.TransportError as e:
            raise HttpError(method, url, None, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__,
                            transport=True) from None
        if resp.status_code not in tuple(ok):
            raise error_from_response(resp)
        return resp

    def request(self, method: str, path: str, *, json: Any = None, params: Any = None,
                ok: Iterable[int] = (200, 201, 202, 204), idempotent: Optional[bool] = None,
                retry_if: Optional[Callable[[BaseException], bool]] = None) -> httpx.Response:
        """Send with retries when the request is idempotent (by method unless said otherwise)."""
        method = method.upper()
        idempotent = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        ok = tuple(ok)
        if not idempotent:
            return self.send_once(method, path, json=json, params=params, ok=ok)
        return self.policy.call(self.send_once, method, path, json=json, params=params, ok=ok,
                                retry_if=retry_if, log=self.log, what=f"{method} {path}", sleep=self.sleep)


__all__ = ["HttpError", "RetryPolicy", "RestClient", "poll", "parse_retry_after", "error_from_response"]
