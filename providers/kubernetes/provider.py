"""Kubernetes: the node on any GPU cluster, one replica, several, or one engine across nodes.

One template (templates/kubernetes/manifests.yaml.j2) renders every object from the spec:
an optional Namespace, a Secret (HF token, API key), the weight cache (a PVC, or per-pod
claims), the workload, a Service, and optionally an Ingress or a Gateway API HTTPRoute.

* Deployment: one replica on a whole {gpu.count}-GPU node, one PVC, Recreate updates.
* StatefulSet: ``replicas`` > 1 with a ReadWriteOnce cache, each replica its own claim.
* LeaderWorkerSet (sigs.k8s.io/lws): when serving TP x PP exceeds gpu.count, one engine
  spans ``nodes`` pods of gpu.count GPUs each. The leader starts a Ray head and then the
  shared vLLM argv (``--distributed-executor-backend ray``, ``--pipeline-parallel-size``);
  workers join the leader's Ray cluster. See docs/kubernetes.md for why Ray.

Objects are applied by Python dynamic resources (providers/kubernetes/resources.py) with the
official client's server-side apply; `glmserve render --artifact` prints the same objects as
multi-document YAML for ArgoCD or Flux, with the Secret's values redacted.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import shlex
from pathlib import Path
from typing import Any, Optional

import yaml

from infra.common.errors import Problem
from infra.common.secrets import REDACTED
from infra.deploy.target import DeployContext, Endpoint
from infra.engine.render import EngineCommand
from infra.engine.templates import environment
from infra.spec.model import NodeSpec
from providers.base import Credential, Provider
from providers.dynamic import HF_TOKEN_ENV as HF_TOKEN_KEY
from providers.kubernetes.options import MAX_NAME, KubernetesOptions
from providers.kubernetes.schedule import SCALE_RESOURCE, SCHEDULE_KINDS, schedule_manifests

GPU_RESOURCE = "nvidia.com/gpu"
RAY_PORT = 6379


def dns_name(text: str, limit: int = MAX_NAME) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "glmserve"
    if len(name) > limit:
        digest = hashlib.sha256(name.encode()).hexdigest()[:6]
        name = name[: limit - 7].rstrip("-") + "-" + digest
    return name


def kube_literal(value: str) -> str:
    """The kubelet expands `$(NAME)` in a container's command and args from its environment
    (https://kubernetes.io/docs/tasks/inject-data-application/define-interdependent-environment-variables/),
    so a user's `$(VLLM_API_KEY)` would put the key in argv; `$$(` is the documented escape."""
    return value.replace("$(", "$$(")


class KubernetesProvider(Provider):
    name = "kubernetes"
    title = "Kubernetes"
    options_model = KubernetesOptions
    credential_urls = ("gateUrl",)
    credentials = (Credential("KUBECONFIG", "a kubeconfig for the target cluster (or ~/.kube/config, or "
                                            "kubernetes.kubeconfig in the stack)"),)

    # ------------------------------------------------------------------ checks
    def check(self, spec: NodeSpec, opts: KubernetesOptions) -> list[Problem]:
        problems = []
        workload = self.workload(spec)
        if spec.nodes > 1 and workload != "LeaderWorkerSet":
            problems.append(Problem(key="kubernetes.workload", value=opts.workload,
                                    message=f"TP x PP spans {spec.nodes} nodes: only a LeaderWorkerSet runs one engine "
                                            "across nodes", allowed="auto, LeaderWorkerSet"))
        if spec.nodes > 1 and spec.engine.name != "vllm":
            problems.append(Problem(key="engine.name", value=spec.engine.name,
                                    message="multi-node serving is rendered for vLLM (Ray) only", allowed="vllm"))
        if workload == "Deployment" and self.replicas(spec) > 1 and opts.cache_access_mode != "ReadWriteMany":
            problems.append(Problem(key="kubernetes.workload", value="Deployment",
                                    message=f"{self.replicas(spec)} replicas cannot share one {opts.cache_access_mode} "
                                            "cache claim", allowed="auto or StatefulSet (a claim per replica), or "
                                                                   "kubernetes.cacheAccessMode ReadWriteMany"))
        if opts.ingress and opts.gateway:
            problems.append(Problem(key="kubernetes.gateway", message="set ingress or gateway, not both"))
        if not opts.image:
            for cmd in spec.engine.setup_commands:
                if not cmd.startswith("RUN "):
                    problems.append(Problem(
                        key="engine.setupCommands", value=cmd,
                        message="Kubernetes runs the setup commands at container start, which only works for RUN "
                                "commands; build an image with them and set kubernetes.image",
                        allowed="RUN <shell command>"))
        return problems

    def missing_credentials(self, env: dict[str, str], spec: Optional[NodeSpec] = None) -> list[Credential]:
        kubeconfig = self.options(spec).kubeconfig if spec is not None else None
        if kubeconfig and Path(kubeconfig).expanduser().exists():
            return []
        if env.get("KUBECONFIG") or env.get("KUBERNETES_SERVICE_HOST"):
            return []
        if (Path(env.get("HOME") or Path.home()) / ".kube" / "config").exists():
            return []
        return list(self.credentials)

    # ------------------------------------------------------------------ shape
    def workload(self, spec: NodeSpec) -> str:
        opts = self.options(spec)
        if opts.workload != "auto":
            return opts.workload
        if spec.nodes > 1:
            return "LeaderWorkerSet"
        if self.replicas(spec) > 1 and opts.cache_access_mode != "ReadWriteMany":
            return "StatefulSet"
        return "Deployment"

    def replicas(self, spec: NodeSpec) -> int:
        opts = self.options(spec)
        return opts.replicas if opts.replicas is not None else spec.scaling.max_replicas

    def names(self, spec: NodeSpec, stack: str, project: str) -> dict[str, str]:
        opts = self.options(spec)
        name = opts.name or dns_name(f"{project}-{stack}")
        # A LeaderWorkerSet has a name of its own: the LWS controller makes a headless Service
        # named after it (the pods' DNS subdomain, LWS_LEADER_ADDRESS) and would otherwise take
        # glmserve's Service, which selects only the leaders, for it.
        workload = f"{name}-lws" if self.workload(spec) == "LeaderWorkerSet" else name
        return {"name": name, "namespace": opts.namespace or name, "secret": f"{name}-secrets", "workload": workload}

    def cluster(self, spec: NodeSpec) -> dict[str, str]:
        """Which cluster, made explicit at `up`: the kubeconfig, the context (the kubeconfig's
        current one resolved to its name when kubernetes.context is not set) and the API server
        it leads to. The objects record where they were created and refuse another server, so
        switching the current context later is an error, not a second deployment elsewhere."""
        from providers.kubernetes import client as k

        opts = self.options(spec)
        cluster = {"kubeconfig": opts.kubeconfig or "", "context": opts.context or ""}
        try:
            c = k.connect(cluster)
        except k.KubeError:
            return cluster      # said again, with the same message, by the first object's create
        return {**cluster, "context": "" if c.context == k.IN_CLUSTER else c.context, "server": c.host}

    # ------------------------------------------------------------------ rendering
    def _setup_script(self, spec: NodeSpec) -> list[str]:
        if self.options(spec).image:
            return []
        lines = [c[len("RUN "):] for c in spec.engine.setup_commands]
        if spec.engine.pip_packages:
            lines.append("pip install --no-cache-dir " + " ".join(shlex.quote(p) for p in spec.engine.pip_packages))
        return [kube_literal(line) for line in lines]

    def _containers(self, spec: NodeSpec, command: EngineCommand) -> dict[str, dict[str, Any]]:
        # The key never appears in the manifest nor in argv: the engine reads it from its env,
        # or (SGLang) launch_argv writes it from the env into a file at container start. Every
        # value is escaped from the kubelet's own $(VAR) expansion.
        argv = [kube_literal(a) for a in command.launch_argv()]
        setup = self._setup_script(spec)
        if self.workload(spec) != "LeaderWorkerSet":
            if not setup:
                return {"engine": {"name": "engine", "command": argv, "args": [], "serves": True}}
            script = "\n".join(["set -e", *setup, 'exec "$@"'])
            return {"engine": {"name": "engine", "command": ["/bin/sh", "-c", script, "glmserve-engine"],
                               "args": argv, "serves": True}}
        wait_group = (
            "python3 -c 'import os, time, ray\n"
            "ray.init(address=\"auto\", logging_level=\"ERROR\")\n"
            "want = int(os.environ.get(\"LWS_GROUP_SIZE\", \"1\"))\n"
            "while len([n for n in ray.nodes() if n[\"Alive\"]]) < want:\n"
            "    print(f\"waiting for {want} Ray nodes\", flush=True); time.sleep(5)\n'"
        )
        leader = "\n".join([
            "set -e", *setup,
            f"ray start --head --port={RAY_PORT} --disable-usage-stats",
            "# the whole group (LWS_GROUP_SIZE pods) joins before the engine starts",
            wait_group,
            'exec "$@"',
        ])
        worker = "\n".join([
            "set -e", *setup,
            f'until ray health-check --address "$LWS_LEADER_ADDRESS:{RAY_PORT}" >/dev/null 2>&1; do sleep 5; done',
            f'exec ray start --address="$LWS_LEADER_ADDRESS:{RAY_PORT}" --block --disable-usage-stats',
        ])
        return {
            "leader": {"name": "engine", "command": ["/bin/sh", "-c", leader, "glmserve-leader"], "args": argv,
                       "serves": True},
            "worker": {"name": "ray-worker", "command": ["/bin/sh", "-c", worker, "glmserve-worker"], "args": [],
                       "serves": False},
        }

    def _env(self, spec: NodeSpec, command: EngineCommand, secret_name: str) -> list[dict[str, Any]]:
        env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in spec.engine.plain_env.items()]
        env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": k}}}
                for k in spec.engine.secret_env_names]
        hf = spec.secrets.hf_token
        if hf is not None:
            env.append({"name": HF_TOKEN_KEY, "valueFrom": {"secretKeyRef": {
                "name": hf.name or secret_name, "key": HF_TOKEN_KEY}}})
        key = spec.secrets.api_key
        env.append({"name": command.api_key_env, "valueFrom": {"secretKeyRef": {
            "name": key.name if key is not None and key.name else secret_name, "key": command.api_key_env}}})
        return env

    def secret_keys(self, spec: NodeSpec, command: EngineCommand) -> list[str]:
        """The keys of the Secret glmserve creates (values it knows or generates)."""
        keys = []
        if spec.secrets.hf_token is not None and spec.secrets.hf_token.value is not None:
            keys.append(HF_TOKEN_KEY)
        key = spec.secrets.api_key
        if key is None or key.value is not None:
            keys.append(command.api_key_env)
        return keys + spec.engine.secret_env_names

    def deploy_variables(self, spec: NodeSpec, command: EngineCommand, stack: str, project: str) -> dict[str, Any]:
        opts = self.options(spec)
        n = self.names(spec, stack, project)
        name, namespace = n["name"], n["namespace"]
        workload = self.workload(spec)
        labels = {
            "app.kubernetes.io/name": "glmserve",
            "app.kubernetes.io/instance": name,
            "app.kubernetes.io/component": "engine",
            "app.kubernetes.io/managed-by": "glmserve",
            "glmserve.io/stack": dns_name(f"{project}-{stack}", 63),
            **opts.labels,
        }
        selector = {"app.kubernetes.io/name": "glmserve", "app.kubernetes.io/instance": name}
        role_labels = {r: {**labels, "glmserve.io/role": r} for r in ("engine", "leader", "worker")}
        gpus = str(spec.gpu.count)
        requests = {"cpu": opts.cpu, "memory": opts.memory, GPU_RESOURCE: gpus}
        limits = {GPU_RESOURCE: gpus, **({"memory": opts.memory_limit} if opts.memory_limit else {})}
        http = {"path": "/health", "port": "http"}
        startup = spec.timeouts.startup_seconds
        probes = {
            "startup": {"httpGet": http, "periodSeconds": 10, "timeoutSeconds": 5,
                        "failureThreshold": max(1, math.ceil(startup / 10))},
            "readiness": {"httpGet": http, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
            "liveness": {"httpGet": http, "periodSeconds": 30, "timeoutSeconds": 10, "failureThreshold": 5},
        }
        tolerations = ([t.model_dump(by_alias=True, exclude_none=True) for t in opts.tolerations]
                       if opts.tolerations is not None
                       else [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}])
        keys = self.secret_keys(spec, command)
        secret = {"name": n["secret"], "string_data": {k: REDACTED for k in keys}} if keys else None
        access = [opts.cache_access_mode]
        # The claim's name follows its immutable settings: a new storage class or access mode is
        # a new claim the workload moves to, and the old one is deleted after the rollout.
        claim_hash = hashlib.sha256(repr((opts.storage_class, access)).encode()).hexdigest()[:6]
        cache = {
            "claim_name": f"{name}-cache-{claim_hash}" if workload == "Deployment" else None,
            "access_modes": access,
            "storage_class": opts.storage_class,
            "size": f"{spec.cache.size_gib}Gi",
            "mount_path": spec.cache.mount_path,
            "when_deleted": "Retain" if opts.retain_cache else "Delete",
        }
        service_selector = dict(selector)
        if workload == "LeaderWorkerSet":
            service_selector["glmserve.io/role"] = "leader"
        gateway = None
        if opts.gateway:
            ref = {"name": opts.gateway.gateway}
            if opts.gateway.gateway_namespace:
                ref["namespace"] = opts.gateway.gateway_namespace
            if opts.gateway.section_name:
                ref["sectionName"] = opts.gateway.section_name
            gateway = {"parent_refs": [ref], "hostnames": opts.gateway.hostnames, "path": opts.gateway.path}
        return {
            "stack": stack, "project": project,
            "name": name, "workload_name": n["workload"], "namespace": namespace,
            "create_namespace": opts.create_namespace,
            "labels": labels, "selector": selector, "pod_labels": role_labels,
            "pod_annotations": dict(opts.pod_annotations),
            "service_selector": service_selector,
            # None with a warm schedule: its scaler owns the count (providers/kubernetes/schedule.py).
            "workload": workload, "group_size": spec.nodes,
            "replicas": None if spec.scaling.warm_schedule is not None else self.replicas(spec),
            "max_replicas": self.replicas(spec),
            "gpus": spec.gpu.count,
            "progress_deadline_seconds": startup + 600,
            "image": opts.image or spec.engine.image, "image_pull_policy": opts.image_pull_policy,
            "image_pull_secrets": [{"name": s} for s in opts.image_pull_secrets],
            "service_account_name": opts.service_account_name,
            "priority_class_name": opts.priority_class_name,
            "node_selector": dict(opts.node_selector), "tolerations": tolerations,
            "containers": self._containers(spec, command),
            "env": self._env(spec, command, n["secret"]),
            "resources": {"requests": requests, "limits": limits},
            "probes": probes, "port": spec.serving.port,
            "shm_size": f"{opts.shm_size_gib}Gi",
            "secret": secret, "cache": cache,
            "service_type": opts.service_type,
            "ingress": opts.ingress.model_dump() if opts.ingress else None,
            "gateway": gateway,
        }

    def manifests(self, spec: NodeSpec, command: EngineCommand, stack: str, project: str) -> list[dict[str, Any]]:
        """The objects to apply, in dependency order (Secret values are placeholders)."""
        v = self.deploy_variables(spec, command, stack, project)
        docs = [d for d in yaml.safe_load_all(environment().get_template("kubernetes/manifests.yaml.j2").render(**v)) if d]
        workload = next(d for d in docs if d["kind"] in SCALE_RESOURCE)
        return docs + schedule_manifests(spec, self.options(spec), v, workload)

    def artifact(self, spec: NodeSpec, command: EngineCommand, stack: str, project: str) -> str:
        docs = self.manifests(spec, command, stack, project)
        header = (
            f"# glmserve {project}/{stack}: the Kubernetes objects `glmserve up` applies (server-side apply,\n"
            f"# field manager glmserve), ready for ArgoCD or Flux. Secret values are redacted ({REDACTED}):\n"
            "# provide them with your secret manager (Sealed Secrets, External Secrets) or\n"
            "# `kubectl create secret generic ... --from-literal`.\n"
        )
        return header + yaml.safe_dump_all(docs, sort_keys=False, width=120)

    # ------------------------------------------------------------------ resources
    def apply_schedule(self, spec: NodeSpec, stack: str, project: str, replicas: int) -> str:
        how = "the KEDA ScaledObject's cron triggers" if self.options(spec).keda else "the warm-schedule CronJobs"
        return (f"nothing to do: on Kubernetes {how} in the manifests follow the window in the cluster "
                f"({replicas} replica(s) now)")

    def create_resources(self, ctx: DeployContext) -> Endpoint:
        import pulumi

        from providers.kubernetes.resources import KubeObject, Rollout

        spec, opts = ctx.spec, self.options(ctx.spec)
        cluster = self.cluster(spec)
        docs = self.manifests(spec, ctx.command, ctx.stack, ctx.project)
        names = self.names(spec, ctx.stack, ctx.project)
        name, namespace = names["name"], names["namespace"]
        created: dict[str, Any] = {}
        ns_dep: list[Any] = []
        workload = None
        for doc in docs:
            kind = doc["kind"]
            res_name = f"{name}-{kind.lower()}" if kind != "PersistentVolumeClaim" else f"{name}-cache"
            if kind in SCHEDULE_KINDS:      # several of a kind (CronJobs): named after the object
                res_name = f"{doc['metadata']['name']}-{kind.lower()}"
            depends = list(ns_dep)
            extra: dict[str, Any] = {}
            ro = {}
            if kind == "Secret":
                values = {}
                if HF_TOKEN_KEY in doc.get("stringData", {}):
                    values[HF_TOKEN_KEY] = ctx.hf_token
                if ctx.command.api_key_env in doc.get("stringData", {}):
                    values[ctx.command.api_key_env] = ctx.api_key
                values.update(ctx.secret_env)
                doc = {k: v for k, v in doc.items() if k != "stringData"}
                extra["secret_data"] = pulumi.Output.secret(pulumi.Output.all(**values))
            if kind in ("PersistentVolumeClaim", "Namespace") and opts.retain_cache:
                # Deleting the namespace would delete the claim in it: keep both.
                ro["retain_on_delete"] = True
            if kind in ("Deployment", "StatefulSet", "LeaderWorkerSet"):
                depends += [v for k, v in created.items() if k in ("Secret", "PersistentVolumeClaim")]
            if kind in ("Ingress", "HTTPRoute"):
                depends += [created["Service"]]
            res = KubeObject(kind)(res_name, manifest=doc, cluster=cluster, owner=ctx.owner,
                                   delete_timeout_seconds=max(600, spec.timeouts.startup_seconds // 6),
                                   opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=depends, **ro),
                                   **extra)
            created[kind] = res
            if kind == "Namespace":
                ns_dep = [res]
            if kind in ("Deployment", "StatefulSet", "LeaderWorkerSet"):
                workload = (doc, res)
        service_url = f"http://{name}.{namespace}.svc.cluster.local:{spec.serving.port}"
        outputs: dict[str, Any] = {
            "namespace": namespace,
            "workload": f"{workload[0]['kind']}/{names['workload']}",
            "replicas": self.replicas(spec),
            "nodesPerReplica": spec.nodes,
            "serviceUrl": service_url,
        }
        url: Any = service_url
        if opts.ingress:
            scheme = "https" if opts.ingress.tls_secret_name else "http"
            url = f"{scheme}://{opts.ingress.host}{opts.ingress.path.rstrip('/')}"
        ready = None
        if opts.wait:
            doc, res = workload
            selector = ",".join(f"{k}={v}" for k, v in self.deploy_variables(
                spec, ctx.command, ctx.stack, ctx.project)["selector"].items())
            rollout = Rollout(f"{name}-rollout", workload={"apiVersion": doc["apiVersion"], "kind": doc["kind"],
                                                           "metadata": {"name": names["workload"],
                                                                        "namespace": namespace}},
                              selector=selector, cluster=cluster, generation=res.generation, uid=res.uid,
                              timeout_seconds=spec.timeouts.startup_seconds,
                              poll_seconds=opts.rollout_poll_seconds,
                              opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=[res]))
            ready = rollout.ready
            outputs["rollout"] = rollout.status
        if not opts.gate_url:
            # The Service and Ingress addresses are usually not reachable from where `up` runs:
            # the rollout's readiness probes stand in for the gate.
            return Endpoint(url=url, outputs=outputs)
        # The gate runs once the rollout is done, again whenever the workload changes.
        revision = pulumi.Output.all(created[workload[0]["kind"]].generation, ready).apply(lambda a: str(a[0]))
        return Endpoint(url=opts.gate_url, revision=revision, outputs=outputs)


PROVIDER = KubernetesProvider()
