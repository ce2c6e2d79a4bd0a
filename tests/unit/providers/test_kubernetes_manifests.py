"""The kubernetes provider's manifests, offline: rendered from the template for the shipped
stacks and their variants, validated against Kubernetes 1.37's own schemas
(`kubernetes-validate`, strict: unknown fields are errors) and, for the LeaderWorkerSet, the
CRD's openAPIV3Schema from the sigs.k8s.io/lws module; plus the shapes the issue asks for
(GPUs, /dev/shm, probes, shared argv, multi-node launch) and the planner's view."""
from __future__ import annotations

import copy
import json
import math

import pytest
import yaml

from tests.helpers import ROOT, run_glmserve
from infra.common.errors import GlmserveError
from infra.engine.render import render
from infra.spec.build import build_spec
from infra.spec.load import spec_for_stack
from infra.config import providers

kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (requirements/k8s-test.txt)")

K8S = "1.37"
NODE = yaml.safe_load((ROOT / "stacks" / "node.yaml").read_text())
PROVIDER = providers.get("kubernetes")
CORE_KINDS = {"Namespace", "Secret", "PersistentVolumeClaim", "Deployment", "StatefulSet", "Service", "Ingress"}


def stack_overrides(stack: str) -> dict:
    doc = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {k.split(":", 1)[1]: v for k, v in doc.items()}


def spec_of(stack: str = "k8s-prod", **sections):
    over = copy.deepcopy(stack_overrides(stack))
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(over.get(section), dict):
            over[section] = {**over[section], **values}
        else:
            over[section] = values
    return build_spec(copy.deepcopy(NODE), over, "stacks/node.yaml", f"stacks/Pulumi.{stack}.yaml")


def docs_of(spec, stack="k8s-prod"):
    return PROVIDER.manifests(spec, render(spec), stack, "glmserve")


def by_kind(docs) -> dict:
    return {d["kind"]: d for d in docs}


@pytest.fixture(scope="module")
def lws_schema():
    from tests.standins.kubernetes.cluster import lws_crd_path

    path = lws_crd_path()
    if path is None:
        pytest.skip("the LeaderWorkerSet CRD is not cached and `go mod download sigs.k8s.io/lws` failed; "
                    "run scripts/install-k8s-test-cluster")
    crd = yaml.safe_load(path.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return version["schema"]["openAPIV3Schema"]


def validate_all(docs, lws_schema=None) -> None:
    import jsonschema

    for d in docs:
        if d["kind"] in CORE_KINDS:
            kv.validate(d, K8S, strict=True)
        elif d["kind"] == "LeaderWorkerSet":
            assert lws_schema is not None
            jsonschema.validate(d, lws_schema, cls=jsonschema.Draft7Validator)
            # The pod templates inside, against the core PodTemplate schema (strict).
            tmpl = d["spec"]["leaderWorkerTemplate"]
            for role in ("leaderTemplate", "workerTemplate"):
                kv.validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "x"},
                             "template": tmpl[role]}, K8S, strict=True)
        elif d["kind"] == "HTTPRoute":
            assert d["apiVersion"] == "gateway.networking.k8s.io/v1"
        else:
            raise AssertionError(f"unexpected kind {d['kind']}")


VARIANTS = {
    "k8s-prod": ("k8s-prod", {}),
    "replicas-statefulset": ("k8s-prod", {"kubernetes": {"replicas": 3, "storageClass": "fast-nvme"}}),
    "replicas-rwx-deployment": ("k8s-prod", {"kubernetes": {"replicas": 2, "cacheAccessMode": "ReadWriteMany"}}),
    "ingress": ("k8s-prod", {"kubernetes": {"ingress": {"host": "glm.example.com", "className": "nginx",
                                                        "tlsSecretName": "glm-tls",
                                                        "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"}}}}),
    "gateway": ("k8s-prod", {"kubernetes": {"gateway": {"gateway": "public", "gatewayNamespace": "gateways",
                                                        "hostnames": ["glm.example.com"]}}}),
    "prebuilt-image": ("k8s-prod", {"kubernetes": {"image": "registry.example.com/glm-vllm:0.33.0",
                                                   "imagePullSecrets": ["regcred"], "createNamespace": False}}),
    "secrets-by-name": ("k8s-prod", {"secrets": {"hfToken": {"name": "hf"}, "apiKey": {"name": "glm-key"}}}),
    "multinode": ("k8s-multinode", {}),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_manifests_validate_offline(variant, lws_schema):
    stack, sections = VARIANTS[variant]
    docs = docs_of(spec_of(stack, **sections), stack)
    validate_all(docs, lws_schema)


def test_a_typo_fails_strict_validation():
    docs = by_kind(docs_of(spec_of()))
    bad = copy.deepcopy(docs["Deployment"])
    bad["spec"]["template"]["spec"]["containers"][0]["startupProb"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, K8S, strict=True)


def test_lws_schema_rejects_a_bad_size(lws_schema):
    import jsonschema

    lws = copy.deepcopy(by_kind(docs_of(spec_of("k8s-multinode"), "k8s-multinode"))["LeaderWorkerSet"])
    lws["spec"]["leaderWorkerTemplate"]["size"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(lws, lws_schema)


def test_single_node_deployment_shape():
    spec = spec_of()
    docs = docs_of(spec)
    kinds = [d["kind"] for d in docs]
    assert kinds == ["Namespace", "Secret", "PersistentVolumeClaim", "Deployment", "Service"]
    dep = by_kind(docs)["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "8" == c["resources"]["requests"]["nvidia.com/gpu"]
    assert c["args"] == render(spec).argv
    assert dep["spec"]["strategy"] == {"type": "Recreate"} and dep["spec"]["replicas"] == 1
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]
    assert {"name": "cache", "mountPath": spec.cache.mount_path} in c["volumeMounts"]
    sp = c["startupProbe"]
    assert sp["periodSeconds"] * sp["failureThreshold"] >= spec.timeouts.startup_seconds
    assert sp["failureThreshold"] == math.ceil(spec.timeouts.startup_seconds / sp["periodSeconds"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H200"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    env = {e["name"]: e for e in c["env"]}
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "glmserve-k8s-prod-secrets"
    assert env["HF_XET_HIGH_PERFORMANCE"] == {"name": "HF_XET_HIGH_PERFORMANCE", "value": "1"}
    # The seed's image fix-ups run before the engine, which gets the argv untouched.
    script = c["command"][2]
    assert "rm -f /usr/local/lib/python3.12/dist-packages/typing_extensions.py" in script
    assert "pip install --no-cache-dir aiohttp 'typing-extensions>=4.15.0'" in script
    pvc = by_kind(docs)["PersistentVolumeClaim"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1000Gi"
    assert next(v for v in pod["volumes"] if v["name"] == "cache")["persistentVolumeClaim"]["claimName"] == \
        pvc["metadata"]["name"]


def test_prebuilt_image_runs_the_argv_directly():
    spec = spec_of(kubernetes={"image": "registry.example.com/glm:1"})
    c = by_kind(docs_of(spec))["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == render(spec).argv and "args" not in c
    assert c["image"] == "registry.example.com/glm:1"


def test_replicas_behind_the_service():
    docs = by_kind(docs_of(spec_of(kubernetes={"replicas": 3, "storageClass": "fast-nvme"})))
    sts = docs["StatefulSet"]
    assert "PersistentVolumeClaim" not in docs, "each replica has its own claim"
    assert sts["spec"]["replicas"] == 3
    vct = sts["spec"]["volumeClaimTemplates"][0]
    assert vct["spec"]["storageClassName"] == "fast-nvme" and vct["metadata"]["name"] == "cache"
    assert docs["Service"]["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    # maxReplicas is the default replica count.
    assert by_kind(docs_of(spec_of(scaling={"maxReplicas": 2})))["StatefulSet"]["spec"]["replicas"] == 2


def test_a_storage_class_change_is_a_new_claim_name():
    a = by_kind(docs_of(spec_of()))["PersistentVolumeClaim"]["metadata"]["name"]
    b = by_kind(docs_of(spec_of(kubernetes={"storageClass": "fast-nvme"})))["PersistentVolumeClaim"]["metadata"]["name"]
    c = by_kind(docs_of(spec_of(cache={"sizeGib": 2000})))["PersistentVolumeClaim"]["metadata"]["name"]
    assert a != b and a == c


def test_multinode_renders_a_leaderworkerset_with_the_ray_launch():
    spec = spec_of("k8s-multinode")
    assert spec.nodes == 2
    docs = by_kind(docs_of(spec, "k8s-multinode"))
    assert "Deployment" not in docs and "PersistentVolumeClaim" not in docs
    lws = docs["LeaderWorkerSet"]
    tmpl = lws["spec"]["leaderWorkerTemplate"]
    assert tmpl["size"] == 2 and tmpl["restartPolicy"] == "RecreateGroupOnPodRestart"
    leader = tmpl["leaderTemplate"]["spec"]["containers"][0]
    worker = tmpl["workerTemplate"]["spec"]["containers"][0]
    argv = render(spec).argv
    assert leader["args"] == argv
    assert ["--tensor-parallel-size", "8", "--pipeline-parallel-size", "2", "--distributed-executor-backend", "ray"] \
        == argv[argv.index("--tensor-parallel-size"):argv.index("--tensor-parallel-size") + 6]
    assert "ray start --head" in leader["command"][2] and "LWS_GROUP_SIZE" in leader["command"][2]
    assert '--address="$LWS_LEADER_ADDRESS:6379"' in worker["command"][2] and "--block" in worker["command"][2]
    assert "ray health-check" in worker["command"][2]
    for c in (leader, worker):
        assert c["resources"]["limits"]["nvidia.com/gpu"] == "8"
        assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]
    assert "startupProbe" in leader and "readinessProbe" in leader and "ports" not in worker
    assert tmpl["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "1600Gi"
    assert docs["Service"]["spec"]["selector"]["glmserve.io/role"] == "leader"
    assert tmpl["leaderTemplate"]["metadata"]["labels"]["glmserve.io/role"] == "leader"
    # The LWS controller names its headless Service (the pods' subdomain) after the
    # LeaderWorkerSet: it must not be the client Service's name.
    assert lws["metadata"]["name"] == "glmserve-k8s-multinode-lws" != docs["Service"]["metadata"]["name"]


def test_planner_understands_pipeline_parallel_and_nodes():
    from infra.planning.plan import plan_for_spec

    spec = spec_of("k8s-multinode")
    plan = plan_for_spec(spec, stack="k8s-multinode")
    j = plan.to_json()
    assert plan.fits, plan.errors()
    assert j["gpu"]["nodes"] == 2 and j["gpu"]["count"] == 8 and j["serving"]["pipeline_parallel_size"] == 2
    lws = by_kind(docs_of(spec, "k8s-multinode"))["LeaderWorkerSet"]
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == j["gpu"]["nodes"]
    # Each stage holds about half the 1403 GiB checkpoint over 8 GPUs: ~88 GiB per GPU, which
    # does not fit one 8-GPU node (~175 GiB per GPU) but does across two.
    assert 80 < j["weights_gib_per_gpu"] < 95
    single = plan_for_spec(spec, overrides={"pp": 1})
    assert not single.fits and single.to_json()["gpu"]["nodes"] == 1
    # The CLI's view is the same.
    proc = run_glmserve("plan", "--stack", "k8s-multinode", "--json")
    cli = json.loads(proc.stdout)
    assert cli["gpu"]["nodes"] == 2 and cli["fits"] is True
    text = run_glmserve("plan", "--stack", "k8s-multinode").stdout
    assert "on 2 nodes of 8x H200, TP 8, PP 2" in text


def test_pipeline_parallel_on_one_node():
    from infra.planning import capacity as cap, model_config, weights
    from infra.spec.profiles import load_profile

    p = load_profile("glm-5.2-fp8")
    arch = model_config.arch_from_profile(p)
    base = dict(arch=arch, profile=p, gpu_type="H200", gpus=8, kv_cache_dtype="fp8", max_model_len=131072,
                gpu_memory_utilization=0.92, enforce_eager=True)
    tp8 = cap.evaluate(cap.CapacityInputs(tp=8, **base))
    tp4pp2 = cap.evaluate(cap.CapacityInputs(tp=4, pp=2, **base))
    assert tp8.fits and tp4pp2.fits and tp4pp2.engines == 1
    # TP 4 shards experts over 4 GPUs, PP 2 halves the layers: about the same weights per GPU.
    assert abs(tp4pp2.weights.per_rank_gib - tp8.weights.per_rank_gib) < 8
    over = cap.evaluate(cap.CapacityInputs(tp=8, pp=2, **base))
    assert any("span 2 nodes" in e for e in over.errors)
    assert weights.pp_partition(78, 4) == [range(0, 19), range(19, 39), range(39, 59), range(59, 78)]


def test_spec_cross_checks_for_multinode():
    assert spec_of("k8s-multinode").nodes == 2 and spec_of().nodes == 1
    with pytest.raises(GlmserveError, match="must be a multiple of gpu.count"):
        spec_of(serving={"tensorParallelSize": 4, "pipelineParallelSize": 3})
    with pytest.raises(GlmserveError, match="does not divide gpu.count"):
        spec_of(serving={"tensorParallelSize": 2, "pipelineParallelSize": 3})


def test_other_providers_refuse_multinode():
    spec = spec_of("k8s-multinode", provider="modal")
    with pytest.raises(GlmserveError, match="spans 2 nodes of 8; the modal provider does not support multi-node"):
        providers.get("modal").validate(spec)


def test_provider_validation_errors_are_clear():
    with pytest.raises(GlmserveError, match="cannot share one ReadWriteOnce cache claim"):
        PROVIDER.validate(spec_of(kubernetes={"replicas": 2, "workload": "Deployment"}))
    with pytest.raises(GlmserveError, match="only a LeaderWorkerSet runs one engine across nodes"):
        PROVIDER.validate(spec_of("k8s-multinode", kubernetes={"workload": "StatefulSet"}))
    with pytest.raises(GlmserveError, match="kubernetes.cpu"):
        PROVIDER.validate(spec_of(kubernetes={"cpu": "lots"}))
    with pytest.raises(GlmserveError, match="kubernetes.nmespace.*unknown key"):
        PROVIDER.validate(spec_of(kubernetes={"nmespace": "x"}))
    with pytest.raises(GlmserveError, match="only works for RUN commands"):
        PROVIDER.validate(spec_of(engine={"setupCommands": ["ENV A=1"]}))


def test_artifact_is_multidocument_yaml_with_secrets_redacted():
    planted = {"apiKey": "sk-ARTIFACT-planted-key-0123456789", "hfToken": "hf_ARTIFACTplantedToken0123456789"}
    spec = spec_of(secrets={k: {"value": v} for k, v in planted.items()})
    text = PROVIDER.artifact(spec, render(spec), "k8s-prod", "glmserve")
    for v in planted.values():
        assert v not in text
    docs = [d for d in yaml.safe_load_all(text) if d]
    secret = by_kind(docs)["Secret"]
    assert secret["stringData"] == {"HF_TOKEN": "[secret]", "VLLM_API_KEY": "[secret]"}
    assert [d["kind"] for d in docs] == [d["kind"] for d in docs_of(spec)]
    # The CLI prints the same, for GitOps.
    proc = run_glmserve("render", "--stack", "k8s-prod", "--artifact", check=True)
    assert [d["kind"] for d in yaml.safe_load_all(proc.stdout) if d] == \
        ["Namespace", "Secret", "PersistentVolumeClaim", "Deployment", "Service"]


def test_secrets_by_name_reference_existing_secrets_and_create_none():
    docs = by_kind(docs_of(spec_of(secrets={"hfToken": {"name": "hf"}, "apiKey": {"name": "glm-key"}})))
    assert "Secret" not in docs
    env = {e["name"]: e for e in docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf", "key": "HF_TOKEN"}
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "glm-key", "key": "VLLM_API_KEY"}


def test_shipped_k8s_stacks_validate():
    for stack in ("k8s-prod", "k8s-multinode"):
        spec = spec_for_stack(stack, ROOT)
        PROVIDER.validate(spec)
        assert spec.provider == "kubernetes"


def test_kubeobject_diff_offline_uses_the_immutable_table(monkeypatch):
    """Without a reachable API server, diff falls back to the documented immutable fields."""
    from providers.kubernetes.resources import KubeObjectProvider

    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    prov = KubeObjectProvider()
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c", "namespace": "n"},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}
    cluster = {"kubeconfig": "/nonexistent/kubeconfig", "context": ""}
    same = prov.diff("id", {"manifest": pvc, "cluster": cluster}, {"manifest": copy.deepcopy(pvc), "cluster": cluster})
    assert same.changes is False
    bigger = copy.deepcopy(pvc)
    bigger["spec"]["resources"]["requests"]["storage"] = "20Gi"
    d = prov.diff("id", {"manifest": pvc, "cluster": cluster}, {"manifest": bigger, "cluster": cluster})
    assert d.changes and not d.replaces
    classed = copy.deepcopy(pvc)
    classed["spec"]["storageClassName"] = "fast"
    d = prov.diff("id", {"manifest": pvc, "cluster": cluster}, {"manifest": classed, "cluster": cluster})
    assert d.replaces == ["manifest"] and d.delete_before_replace
    renamed = copy.deepcopy(pvc)
    renamed["metadata"]["name"] = "c2"
    d = prov.diff("id", {"manifest": pvc, "cluster": cluster}, {"manifest": renamed, "cluster": cluster})
    assert d.replaces == ["manifest"] and not d.delete_before_replace
    # Pulumi hands numbers over as floats: 1.0 is 1.
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"},
           "spec": {"replicas": 1}}
    d = prov.diff("id", {"manifest": {**dep, "spec": {"replicas": 1.0}}, "cluster": cluster},
                  {"manifest": dep, "cluster": cluster})
    assert d.changes is False
