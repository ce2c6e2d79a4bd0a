"""The pod's lifecycle over RunPod's REST API v2: create (or adopt), bring to the desired state,
update, and the checks that decide whether a pod is this stack instance's and whether it is gone.

Lifecycle, and the choices behind it:

* **Create** first validates everything that could fail after the pod exists (the proxy URL
  template), then looks for pods with the stack's name (GET /v2/pods has no name filter, so it
  lists and filters). One that carries this stack instance's owner id is the leftover of a
  killed `up` and is adopted, never duplicated; one with another or no owner id stops `up`
  untouched (providers/runpod/ownership.py). The "look up, then POST" step is what is retried,
  so a POST whose answer was lost is adopted on the next try instead of sent twice. Then it
  waits for RUNNING; if that fails the pod is terminated before the error is raised, because a
  pod that is not in state would bill (~$700/day for 8x H200) unseen.
* **Update** PATCHes what the API can patch (image, args, env, ports, disk, mount path/size,
  name) and stops/starts the pod for `runpod.state`. GPU type/count, cloud, the mount kind and
  the network volume cannot be patched: they force a replace.
* **Replace is delete-before-replace.** Capacity: the new pod usually needs the very GPUs the
  old one holds (a network volume pins it to one data centre), so create-before-delete would
  need 16 free H200s in one place. Cost: the new pod's cold start (30-60 min) would bill two
  8x H200 pods for nothing. And the name is the adoption key, so two pods may not share it.
* **Read** (refresh) drops a pod from state only on positive evidence that it is gone (see
  ownership.py); a pod stopped out of band shows as EXITED (the next `up` starts it again).
* **Delete** terminates only a pod that carries this stack's owner id.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import pulumi

from infra.common.http import HttpError, poll

from providers.runpod.client import (
    LIVE,
    Availability,
    Op,
    RunPodClient,
    RunPodError,
    check_availability,
    explain,
    no_availability_message,
    proxy_template_problem,
)
from providers.runpod.ownership import (
    foreign_message,
    pod_owner,
)
from providers.runpod.podbody import compatible, drift, gpu_op, patch_body, render_pod_body, variables_from_props

TERMINAL = ("EXITED", "ERROR", "TERMINATED")


def _log(msg: str) -> None:
    pulumi.log.info(msg)


def _warn(msg: str) -> None:
    pulumi.log.warn(msg)


# ============================================================================ lifecycle

def preflight(client: RunPodClient, props: dict[str, Any], log: Callable[[str], None] = _log,
              warn: Callable[[str], None] = _warn) -> Optional[Availability]:
    """Stock and price for the requested count, before creating: warn, or fail if asked to."""
    try:
        a = check_availability(client, props["gpuId"], int(props["gpuCount"]), props["cloud"])
    except HttpError as e:
        warn(f"could not read RunPod's GPU catalog ({e}); creating the pod anyway")
        return None
    log(a.describe())
    if a.level == "NONE":
        fail = bool(props.get("failOnNoAvailability"))
        if fail:
            raise RunPodError(no_availability_message(a, True))
        warn(no_availability_message(a, False))
    return a


def wait_running(client: RunPodClient, pod_id: str, timeout: float, interval: float,
                 log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Poll GET /v2/pods/{id} until RUNNING. `runtime.ports` is not required to list the HTTP
    port (RunPod's proxy serves it without a public mapping); the readiness gate checks it."""
    seen: list[str] = []

    def on_value(pod: Optional[dict], elapsed: float) -> None:
        status = pod.get("status") if pod else "GONE"
        if not seen or seen[-1] != status:
            seen.append(status)
            log(f"pod {pod_id}: {status} after {elapsed:.0f}s")

    pod, done = poll(lambda: client.get_pod(pod_id),
                     until=lambda p: p is None or p.get("status") in ("RUNNING", *TERMINAL),
                     interval=interval, timeout=timeout, on_value=on_value)
    if pod is None:
        raise RunPodError(f"pod {pod_id} disappeared while starting (terminated out of band?)")
    status = pod.get("status")
    if not done:
        raise RunPodError(f"pod {pod_id} is not RUNNING after {timeout:.0f}s (status {status}; "
                          f"timeouts.startupSeconds)")
    if status != "RUNNING":
        raise RunPodError(f"pod {pod_id} went to {status} while starting; see its logs "
                          f"(GET /v2/pods/{pod_id}/logs, or the RunPod console)")
    return pod


def ensure_state(client: RunPodClient, pod_id: str, action: str, op: Op) -> dict[str, Any]:
    """Start or stop a pod, idempotently: look at the pod, act only if needed; retried as a whole
    (a repeated action would be answered 409 once the first one took effect)."""
    def attempt() -> dict[str, Any]:
        pod = client.get_pod(pod_id)
        if pod is None:
            raise RunPodError(f"{op.what}: pod {pod_id} no longer exists (terminated out of band). "
                              f"Next: run `glmserve refresh`, then up recreates it.")
        status = pod.get("status")
        if (action == "stop" and status not in LIVE) or (action == "start" and status in LIVE):
            return pod
        answer = client.pod_action_once(pod_id, action)
        return answer if answer else (client.get_pod(pod_id) or pod)

    try:
        return client.policy.call(attempt, log=client.log, what=op.what)
    except HttpError as e:
        if action == "start" and e.status == 400:
            raise RunPodError(f"{op.what}: RunPod cannot start the stopped pod (HTTP 400: {e.detail}). A stopped "
                              f"pod resumes on its own machine, which has no free {op.gpu_id} now. Next: run up "
                              f"again later, or replace the pod on another machine (`pulumi up --replace <pod urn>`; "
                              f"a persistent volume is lost, a network volume is kept).") from None
        raise explain(e, op) from None


def terminate_quietly(client: RunPodClient, pod_id: str) -> Optional[str]:
    """Terminate; None when done, else why it failed (for the error message)."""
    try:
        client.delete_pod(pod_id)
        return None
    except HttpError as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - reported to the user with the original error
        return f"{type(e).__name__}: {e}"


def create_pod(client: RunPodClient, props: dict[str, Any], log: Callable[[str], None] = _log,
               warn: Callable[[str], None] = _warn) -> tuple[dict[str, Any], Optional[Availability], bool]:
    """Create (or adopt) the pod and bring it to the desired state; (pod, availability, adopted)."""
    name, owner = props["name"], props.get("owner")
    check_before_create(props)
    body = render_pod_body(variables_from_props(props))
    op = gpu_op(props, f"creating pod {name!r}", "Nothing billable was left behind.")

    availability: Optional[Availability] = None
    try:
        existing = client.pods_named(name)
    except HttpError as e:
        raise explain(e, op) from None
    refuse_foreign(existing, name, owner)
    if not existing:
        availability = preflight(client, props, log, warn)

    adopted: list[bool] = []

    def attempt() -> dict[str, Any]:
        adopted.clear()
        found = client.pods_named(name)
        refuse_foreign(found, name, owner)
        found = [p for p in found if pod_owner(p) == owner]
        keep = None
        for pod in found:
            why = compatible(pod, body)
            if keep is None and not why:
                keep = pod
                continue
            # This stack instance's own pod (a killed run, or an earlier configuration), not
            # in state: nobody else would ever stop its bill.
            warn(f"terminating pod {pod['id']} named {name!r}: " +
                 (f"it differs from the spec ({', '.join(why)})" if why else "a duplicate of the adopted pod"))
            client.delete_pod(pod["id"])
        if keep is not None:
            adopted.append(True)
            log(f"adopting pod {keep['id']} named {name!r} (created by an earlier, interrupted run)")
            return keep
        return client.create_pod_once(body)

    try:
        pod = client.policy.call(attempt, log=client.log, what=op.what)
    except HttpError as e:
        err = explain(e, op)
        if e.retryable:
            # The last POST may have been handled even though its answer was lost.
            leftover = _sweep(client, name, owner)
            if leftover:
                raise RunPodError(f"{err} However pod(s) {', '.join(leftover)} named {name!r} may still exist and "
                                  f"bill. Next: run up again (it adopts the pod by name) or terminate them in the "
                                  f"RunPod console.") from None
        raise err from None

    pod_id = pod["id"]
    if not adopted:
        log(f"created pod {pod_id} named {name!r} ({body['gpu']['count']} x {body['gpu']['id']}, {body['cloud']})")
    try:
        if adopted:
            fix = drift(pod, body)
            if fix:
                client.patch_pod(pod_id, fix)
        pod = settle(client, pod_id, props, op, log, may_start=bool(adopted))
    except Exception as e:  # noqa: BLE001 - whatever failed, the pod must not outlive the error
        cause = str(explain(e, op) if isinstance(e, HttpError) else e).removesuffix(op.after).rstrip()
        if not cause.startswith(op.what):
            cause = f"{op.what}: {cause}"
        failed = terminate_quietly(client, pod_id)
        if failed is None:
            raise RunPodError(f"{cause} Pod {pod_id} was terminated, so nothing bills; fix the cause and run "
                              f"up again.") from None
        raise RunPodError(f"{cause} Terminating pod {pod_id} failed too ({failed}): it may still bill. Next: run "
                          f"up again (it adopts the pod by name), or terminate it in the RunPod console.") from None
    return pod, availability, bool(adopted)


def _sweep(client: RunPodClient, name: str, owner: Optional[str]) -> list[str]:
    """After a failed create: terminate any pod of ours the lost POSTs created; ids that could not be."""
    try:
        found = [p for p in client.pods_named(name) if pod_owner(p) == owner]
    except Exception:  # noqa: BLE001 - we cannot know; say so
        return [f"(unknown: listing pods failed; look for {name!r})"]
    return [p["id"] for p in found if terminate_quietly(client, p["id"]) is not None]


def refuse_foreign(pods: list[dict], name: str, owner: Optional[str]) -> None:
    foreign = [p for p in pods if pod_owner(p) != owner]
    if foreign and owner:
        raise RunPodError(f"creating pod {name!r}: " + foreign_message(
            "pod(s)", [p["id"] for p in foreign], name, [pod_owner(p) for p in foreign], owner, "runpod.podName"))


def check_before_create(props: dict[str, Any]) -> None:
    """What could fail once the pod exists fails here, before anything is created."""
    template = props["proxyUrlTemplate"]
    problem = proxy_template_problem(template)
    if problem:
        raise RunPodError(f"creating pod {props['name']!r}: the proxy URL template {template!r} "
                          f"(runpod.proxyUrlTemplate or RUNPOD_PROXY_URL_TEMPLATE) {problem}. Nothing was created.")


def read_pod(client: RunPodClient, pod_id: str, props: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The pod, or None only on positive evidence that it is gone from its account."""
    return client.read_in_account("pod", pod_id, props.get("account"), f"reading pod {pod_id} ({props.get('name')!r})")


def delete_pod(client: RunPodClient, pod_id: str, props: dict[str, Any]) -> bool:
    """Terminate the pod if it is this stack instance's; False if it was already gone."""
    what = f"terminating pod {pod_id} ({props.get('name')!r})"
    after = "The pod is still in state and may bill: run destroy again."
    pod = read_pod(client, pod_id, props)
    if pod is None:
        return False
    owner, theirs = props.get("owner"), pod_owner(pod)
    if owner and theirs != owner:
        raise RunPodError(f"{what}: the pod carries owner id {theirs or 'none'}, not this stack's {owner}; glmserve "
                          f"does not terminate it. It is kept in state. Next: check which stack owns pod {pod_id}.")
    try:
        return client.delete_pod(pod_id)
    except HttpError as e:
        raise explain(e, Op(what, after=after)) from None


def settle(client: RunPodClient, pod_id: str, props: dict[str, Any], op: Op,
           log: Callable[[str], None] = _log, may_start: bool = True) -> dict[str, Any]:
    """Bring a pod to ``props.state``: RUNNING (started if needed) or stopped. A pod that was
    just created and fails on its own is not started again (``may_start=False``)."""
    timeout, interval = float(props["startupSeconds"]), float(props["pollSeconds"])
    if props.get("state") == "stopped":
        pod = ensure_state(client, pod_id, "stop", op)
        log(f"pod {pod_id} is stopped (runpod.state: stopped): GPUs released, its volume kept")
        return client.get_pod(pod_id) or pod
    pod = client.get_pod(pod_id)
    if may_start and pod is not None and pod.get("status") in ("EXITED", "ERROR"):
        ensure_state(client, pod_id, "start", op)
    pod = wait_running(client, pod_id, timeout, interval, log)
    log(f"pod {pod_id} is RUNNING in {pod.get('dataCenterId')}, cost ${float(pod.get('cost') or 0):.2f}/hour")
    return pod


def update_pod(client: RunPodClient, pod_id: str, olds: dict[str, Any], news: dict[str, Any],
               log: Callable[[str], None] = _log) -> tuple[dict[str, Any], int]:
    """PATCH what changed, then start/stop as asked; (pod, generation). A failure keeps the pod
    in state (destroy removes it) and says so."""
    op = gpu_op(news, f"updating pod {pod_id} ({news['name']!r})",
                "The pod is kept in state: fix the cause and run up again, or destroy it.")
    generation = int(olds.get("generation") or 1)
    try:
        pod = read_pod(client, pod_id, olds)       # same account, else it refuses
        if pod is None:
            raise RunPodError(f"{op.what}: the pod no longer exists (terminated out of band). Next: run "
                              f"`glmserve refresh --stack <stack>`; the next up creates a new one.")
        patch = patch_body(variables_from_props(olds), variables_from_props(news))
        if patch:
            client.patch_pod(pod_id, patch)
            generation += 1
            log(f"patched pod {pod_id}: {', '.join(sorted(patch))}")
        was_live = pod.get("status") in LIVE
        if news.get("state") == "running" and not was_live:
            generation += 1
        if news.get("state") == "running" and not patch and was_live and pod.get("status") == "RUNNING":
            return pod, generation
        return settle(client, pod_id, news, op, log), generation
    except HttpError as e:
        raise explain(e, op) from None
    except RunPodError as e:
        msg = str(e)
        if not msg.startswith(op.what):
            msg = f"{op.what}: {msg}"
        if op.after not in msg:
            msg = f"{msg} {op.after}"
        raise RunPodError(msg, e.status) from None

