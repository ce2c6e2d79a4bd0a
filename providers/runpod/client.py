"""RunPod's REST API v2, as RunPod's OpenAPI document (github.com/runpod/docs,
api-reference-v2/openapi.json; its machine-readable part is tests/data/runpod/openapi-v2.contract.json)
describes it: pods, network volumes and the GPU catalog. Not REST v1, not GraphQL.

Transport and retries come from infra.http (one policy for every provider). This module adds
what is RunPod's own: the endpoints, the `application/problem+json` errors turned into a
message with RunPod's `detail` and a next step, and the "no name filter" pod listing.
"""
from __future__ import annotations

import os
import string
from dataclasses import dataclass
from typing import Any, Callable, Optional
from urllib.parse import quote

from infra.common.http import HttpError, RestClient, RetryPolicy
from infra.common.secrets import redact
from infra.spec.shapes import credential_url
from providers.runpod.ownership import Account, AccountMismatch, check_url, key_fingerprint, unseen_with_other_key

# The document's `servers` entry; paths carry the /v2 prefix.
DEFAULT_API_URL = "https://api.runpod.io"
DEFAULT_PROXY_URL_TEMPLATE = "https://{pod_id}-{port}.proxy.runpod.net"
API_KEY_ENV = "RUNPOD_API_KEY"
API_URL_ENV = "RUNPOD_API_URL"
PROXY_ENV = "RUNPOD_PROXY_URL_TEMPLATE"

LIVE = ("PROVISIONING", "STARTING", "RUNNING")


def api_url(option: Optional[str] = None) -> str:
    """The API root: option runpod.apiUrl, else env RUNPOD_API_URL, else the document's server.
    The API key goes there, so the environment's value has the option's shape too."""
    url = (option or os.environ.get(API_URL_ENV) or DEFAULT_API_URL).rstrip("/")
    try:
        credential_url(url)
    except ValueError as e:
        raise RunPodError(f"{API_URL_ENV} {url!r} {e}") from None
    return url[: -len("/v2")] if url.endswith("/v2") else url


def proxy_url_template(option: Optional[str] = None) -> str:
    return option or os.environ.get(PROXY_ENV) or DEFAULT_PROXY_URL_TEMPLATE


def proxy_url(template: str, pod_id: str, port: int) -> str:
    return template.format(pod_id=pod_id, port=port, podId=pod_id)


# The fields proxy_url fills in: plain names only (no attribute or index access).
PROXY_FIELDS = ("pod_id", "podId", "port")


def proxy_template_problem(template: str) -> Optional[str]:
    """Why ``template`` cannot be filled in by proxy_url (None: it can), checked before a pod is
    created so that building its URL can never fail once the pod bills."""
    example = "e.g. https://{pod_id}-{port}.proxy.runpod.net"
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as e:
        return f"is not a valid template ({e}); {example}"
    unknown = sorted(f for f in fields if f not in PROXY_FIELDS)
    if unknown:
        return (f"has unknown field(s) {', '.join('{' + f + '}' for f in unknown)}; allowed: {{pod_id}} and "
                f"{{port}}, {example}")
    if "pod_id" not in fields and "podId" not in fields:
        return f"must contain {{pod_id}} (and usually {{port}}), {example}"
    try:
        proxy_url(template, "podid", 8000)
    except (ValueError, TypeError) as e:             # a format spec that does not fit, e.g. {port:q}
        return f"cannot be filled in ({e}); {example}"
    return None


class RunPodError(Exception):
    """A RunPod failure explained: what glmserve was doing, RunPod's detail, the next step."""

    def __init__(self, message: str, status: Optional[int] = None):
        self.status = status
        super().__init__(redact(message))


@dataclass(frozen=True)
class Op:
    """What a request was for, so that an error can say it in the user's terms."""

    what: str                                   # e.g. "creating pod 'glmserve-runpod-prod'"
    gpu_id: Optional[str] = None
    gpu_count: Optional[int] = None
    cloud: Optional[str] = None
    data_center: Optional[str] = None           # the network volume pins the pod here
    after: str = ""                             # appended: what was (not) left behind


NO_CAPACITY_MARKERS = ("no longer any instances", "no instances", "not enough free gpu", "capacity",
                       "no available", "out of stock")


def is_no_capacity(err: HttpError) -> bool:
    return err.status == 400 and any(m in err.detail.lower() for m in NO_CAPACITY_MARKERS)


def explain(err: HttpError, op: Op) -> RunPodError:
    """Turn an HTTP failure into one message: RunPod's detail plus what to do next."""
    status, detail = err.status, err.detail
    got = f"HTTP {status}: {detail}" if status is not None else f"no answer: {detail}"
    tries = f" after {err.attempts} attempts" if err.attempts > 1 else ""
    tail = f" {op.after}" if op.after else ""
    gpu = (f"{op.gpu_count} x {op.gpu_id} in {op.cloud} cloud"
           if op.gpu_id and op.gpu_count and op.cloud else "the requested GPUs")
    if status == 400 and is_no_capacity(err):
        other = "COMMUNITY" if op.cloud == "SECURE" else "SECURE"
        steps = ["try other data centres (runpod.dataCenterIds; leave it empty to let RunPod choose)"]
        if op.data_center:
            steps = [f"the network volume pins the pod to {op.data_center}: create it elsewhere "
                     f"(runpod.volumeDataCenter, the volume is replaced) or use runpod.volume: persistent"]
        if other == "COMMUNITY":
            steps.append("try the other cloud (runpod.cloud: COMMUNITY, with runpod.volume: persistent)")
        else:
            steps.append("try the other cloud (runpod.cloud: SECURE)")
        steps.append("or retry later")
        return RunPodError(f"{op.what}: RunPod has no capacity for {gpu} ({got}). Next: " + "; ".join(steps)
                           + f". Stock: GET /v2/catalog/gpus/{op.gpu_id}?include=AVAILABILITY&product=POD"
                             f"&count={op.gpu_count}&cloud={op.cloud}.{tail}", status)
    if status == 402:
        return RunPodError(f"{op.what}: RunPod says the account balance is too low for {gpu} ({got}). "
                           f"Next: add credit in the RunPod console (Billing), then run up again.{tail}", status)
    if status == 422:
        fields = "; ".join(err.errors) if err.errors else "none given"
        return RunPodError(f"{op.what}: RunPod rejected the request body ({got}; field errors: {fields}). "
                           f"This is a bug in glmserve (the body comes from templates/runpod/pod.json.j2): "
                           f"please report it with the output of `glmserve render --stack <stack> --artifact`.{tail}",
                           status)
    if status in (401, 403):
        return RunPodError(f"{op.what}: RunPod refused the API key ({got}). Next: check {API_KEY_ENV} "
                           f"(a key with read/write access to pods and network volumes).{tail}", status)
    if status == 429:
        wait = f"; Retry-After {err.retry_after:.0f}s" if err.retry_after is not None else ""
        return RunPodError(f"{op.what}: RunPod kept rate-limiting the requests{tries} ({got}{wait}). "
                           f"Next: wait a minute and run again.{tail}", status)
    if status is None or status >= 500:
        return RunPodError(f"{op.what}: the RunPod API failed{tries} ({got}). Next: check "
                           f"https://uptime.runpod.io and run the command again.{tail}", status)
    if status == 409:
        return RunPodError(f"{op.what}: RunPod refused the action in the pod's current state ({got}). "
                           f"Next: run `glmserve refresh` and then up again.{tail}", status)
    if status == 404:
        return RunPodError(f"{op.what}: RunPod says not found ({got}). Next: run `glmserve refresh` so that "
                           f"state matches RunPod, then up again.{tail}", status)
    return RunPodError(f"{op.what}: RunPod refused the request ({got}).{tail}", status)


class RunPodClient:
    """Thin, typed-by-convention wrapper over the v2 endpoints glmserve uses."""

    def __init__(self, base_url: Optional[str] = None, api_key: Optional[str] = None, *,
                 policy: Optional[RetryPolicy] = None, log: Optional[Callable[[str], None]] = None,
                 transport: Any = None):
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if not key:
            raise RunPodError(f"{API_KEY_ENV} is not set: glmserve needs a RunPod API key to reach "
                              f"the REST API (RunPod console > Settings > API Keys).")
        self.base_url = api_url(base_url)
        # Where resources made through this client live (providers/runpod/ownership.py).
        self.account = Account(self.base_url, key_fingerprint(key))
        self.log = log
        self.rest = RestClient(self.base_url, key, policy=policy, log=log, transport=transport,
                               user_agent="glmserve-runpod")
        self.policy = self.rest.policy

    def close(self) -> None:
        self.rest.close()

    def __enter__(self) -> "RunPodClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @staticmethod
    def _id(value: str) -> str:
        return quote(value, safe="")

    # ------------------------------------------------------------------ pods
    def list_pods(self) -> list[dict]:
        return list(self.rest.request("GET", "/v2/pods").json().get("pods") or [])

    def pods_named(self, name: str) -> list[dict]:
        """GET /v2/pods has no name filter: list, then filter here. Terminated pods excluded."""
        return [p for p in self.list_pods() if p.get("name") == name and p.get("status") != "TERMINATED"]

    def get_pod(self, pod_id: str) -> Optional[dict]:
        try:
            pod = self.rest.request("GET", f"/v2/pods/{self._id(pod_id)}").json()
        except HttpError as e:
            if e.status == 404:
                return None
            raise
        return None if pod.get("status") == "TERMINATED" else pod

    def create_pod_once(self, body: dict) -> dict:
        """POST /v2/pods, one attempt (not idempotent: the caller adopts by name and retries)."""
        return self.rest.request("POST", "/v2/pods", json=body, idempotent=False).json()

    def patch_pod(self, pod_id: str, body: dict) -> dict:
        # PATCH sets fields to given values: sending it twice is harmless, so it is retried.
        return self.rest.request("PATCH", f"/v2/pods/{self._id(pod_id)}", json=body, idempotent=True).json()

    def pod_action_once(self, pod_id: str, action: str) -> Optional[dict]:
        resp = self.rest.request("POST", f"/v2/pods/{self._id(pod_id)}/action", json={"action": action},
                                 idempotent=False)
        return resp.json() if resp.status_code != 204 and resp.content else None

    def delete_pod(self, pod_id: str) -> bool:
        """Terminate; True if it was there. Idempotent: 404 means already gone."""
        try:
            self.rest.request("DELETE", f"/v2/pods/{self._id(pod_id)}")
        except HttpError as e:
            if e.status == 404:
                return False
            raise
        return True

    # ------------------------------------------------------------------ network volumes
    def list_volumes(self) -> list[dict]:
        return list(self.rest.request("GET", "/v2/network-volumes").json().get("networkVolumes") or [])

    def volumes_named(self, name: str) -> list[dict]:
        return [v for v in self.list_volumes() if v.get("name") == name]

    def get_volume(self, volume_id: str) -> Optional[dict]:
        try:
            return self.rest.request("GET", f"/v2/network-volumes/{self._id(volume_id)}").json()
        except HttpError as e:
            if e.status == 404:
                return None
            raise

    def create_volume_once(self, body: dict) -> dict:
        return self.rest.request("POST", "/v2/network-volumes", json=body, idempotent=False).json()

    def patch_volume(self, volume_id: str, body: dict) -> dict:
        return self.rest.request("PATCH", f"/v2/network-volumes/{self._id(volume_id)}", json=body,
                                 idempotent=True).json()

    def delete_volume(self, volume_id: str) -> bool:
        def retry_if(e: BaseException) -> bool:
            # Right after its pod is terminated a volume may still count as attached.
            return isinstance(e, HttpError) and (e.retryable or (e.status == 400 and "attached" in e.detail))
        try:
            self.rest.request("DELETE", f"/v2/network-volumes/{self._id(volume_id)}", retry_if=retry_if)
        except HttpError as e:
            if e.status == 404:
                return False
            raise
        return True

    # ------------------------------------------------------------------ catalog
    def read_in_account(self, kind: str, id_: str, stored_account: Any, what: str) -> Optional[dict]:
        """A pod or volume (``kind``) by id, or None only on positive evidence that it is gone
        from the account it was created in: the same URL and key answer 404 for it while that
        account's list succeeds without it. Anything less raises and keeps it in state."""
        get, listing = (self.get_pod, self.list_pods) if kind == "pod" else (self.get_volume, self.list_volumes)
        stored = Account.from_state(stored_account)
        try:
            check_url(stored, self.account, what)
            found = get(id_)
            if found is not None:
                return found
            unseen_with_other_key(stored, self.account, what)
            if any(r.get("id") == id_ for r in listing()):
                raise RunPodError(f"{what}: RunPod answers 404 for the {kind} but still lists it; it is kept in "
                                  "state. Next: run refresh again later.")
            return None
        except AccountMismatch as e:
            raise RunPodError(str(e)) from None
        except HttpError as e:
            raise explain(e, Op(what, after=f"The {kind} is kept in state.")) from None

    def gpu_availability(self, gpu_id: str, count: int, cloud: str) -> dict:
        """GET /v2/catalog/gpus/{id}?include=AVAILABILITY&product=POD&count=N&cloud=C."""
        params = {"include": "AVAILABILITY", "product": "POD", "count": str(count), "cloud": cloud}
        return self.rest.request("GET", f"/v2/catalog/gpus/{self._id(gpu_id)}", params=params).json()


@dataclass(frozen=True)
class Availability:
    gpu_id: str
    count: int
    cloud: str
    level: str                                   # NONE | LOW | MEDIUM | HIGH | UNKNOWN
    price_per_gpu_hour: Optional[float]
    data_centers: tuple[tuple[str, str], ...]    # (id, level), best first

    @property
    def price_per_hour(self) -> Optional[float]:
        return None if self.price_per_gpu_hour is None else round(self.price_per_gpu_hour * self.count, 4)

    def describe(self) -> str:
        where = ", ".join(f"{d} {lvl}" for d, lvl in self.data_centers) or "no data centre"
        price = (f"list price ${self.price_per_gpu_hour:.2f}/GPU-hour = ${self.price_per_hour:.2f}/hour"
                 if self.price_per_gpu_hour is not None else "no list price")
        return (f"RunPod stock for {self.count} x {self.gpu_id} in {self.cloud} cloud: {self.level} "
                f"({where}); {price}")


LEVELS = ("NONE", "LOW", "MEDIUM", "HIGH")


def availability_from(entry: dict, gpu_id: str, count: int, cloud: str) -> Availability:
    level = str(entry.get("availability") or "UNKNOWN")
    price = (entry.get("price") or {}).get(cloud.lower())
    dcs = [(str(d.get("id")), str(d.get("availability"))) for d in entry.get("dataCenters") or []]
    dcs.sort(key=lambda d: -(LEVELS.index(d[1]) if d[1] in LEVELS else -1))
    return Availability(gpu_id, count, cloud, level, float(price) if price is not None else None, tuple(dcs))


def check_availability(client: RunPodClient, gpu_id: str, count: int, cloud: str) -> Availability:
    return availability_from(client.gpu_availability(gpu_id, count, cloud), gpu_id, count, cloud)


def no_availability_message(a: Availability, fail: bool) -> str:
    other = "COMMUNITY" if a.cloud == "SECURE" else "SECURE"
    verb = "refusing to create the pod (runpod.failOnNoAvailability is true)" if fail else \
        "creating the pod may fail with 'no capacity'"
    return (f"RunPod reports no stock (availability NONE) for {a.count} x {a.gpu_id} in {a.cloud} cloud: {verb}. "
            f"Next: try later, other data centres (runpod.dataCenterIds), the other cloud (runpod.cloud: {other}), "
            f"or fewer GPUs.")
