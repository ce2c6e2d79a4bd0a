"""`modal.gpuSnapshot`: Modal GPU memory snapshots of a warmed, sleeping vLLM, where they can work.

Modal's memory snapshots (https://modal.com/docs/guide/memory-snapshots) save a container's
memory after the functions marked ``@modal.enter(snap=True)`` ran, and restore new containers
from it. GPU snapshots (``experimental_options={"enable_gpu_snapshot": True}``, alpha) also
save GPU memory. The pattern that works for vLLM (Modal's docs; also
https://github.com/infinitylogesh/vllm-serverless, ~70 s cold starts): start the engine with
``--enable-sleep-mode`` in the snapshotting ``enter``, send one request so that compilation and
CUDA graphs happen, put it to sleep (level 1: weights to CPU memory, KV cache dropped,
https://docs.vllm.ai/en/latest/features/sleep_mode/), let Modal snapshot, and wake it up in
the ``enter`` that runs after each restore.

It works with one GPU only: vLLM's own initialized snapshots support tensor parallel 1 only
(https://docs.vllm.ai/en/latest/features/initialized_snapshots.html), and restoring a Modal GPU
snapshot of a multi-GPU vLLM fails in NCCL (https://github.com/modal-labs/modal-examples/issues/1558,
open). The GLM node (TP 8) is refused with that reason and the cold start to expect instead.

``modal.memorySnapshot`` (CPU memory only) is refused too: the engine is a subprocess that
``serve`` starts after the snapshot point, so a CPU snapshot holds nothing of it.
"""
from __future__ import annotations

from typing import Any

from infra.common.errors import Problem
from infra.spec.model import NodeSpec
from providers.modal.client import SNAPSHOT_CLASS
from providers.modal.options import ModalOptions

NCCL_ISSUE = "https://github.com/modal-labs/modal-examples/issues/1558"
VLLM_SNAPSHOTS = "https://docs.vllm.ai/en/latest/features/initialized_snapshots.html"
# vLLM serves /sleep and /wake_up only in its development mode.
SLEEP_ENV = {"VLLM_SERVER_DEV_MODE": "1"}
SLEEP_FLAG = "--enable-sleep-mode"


def _gpus(spec: NodeSpec) -> int:
    return spec.serving.tensor_parallel_size * spec.serving.pipeline_parallel_size


def snapshot_problems(spec: NodeSpec, opts: ModalOptions) -> list[Problem]:
    problems = []
    if opts.memory_snapshot:
        problems.append(Problem(
            key="modal.memorySnapshot", value=True,
            message="a CPU memory snapshot holds nothing of the engine: vLLM runs as a subprocess that serve() "
                    "starts after the snapshot is taken, so every cold start still loads the weights",
            allowed="false; modal.gpuSnapshot: true for a one-GPU vLLM node"))
    if not opts.gpu_snapshot:
        return problems
    gpus = _gpus(spec)
    if gpus > 1:
        problems.append(Problem(
            key="modal.gpuSnapshot", value=True,
            message=(f"the node runs vLLM on {gpus} GPUs (serving.tensorParallelSize "
                     f"{spec.serving.tensor_parallel_size}); vLLM's initialized snapshots work with tensor "
                     f"parallel 1 only ({VLLM_SNAPSHOTS}) and restoring a Modal GPU snapshot of a multi-GPU "
                     f"vLLM fails in NCCL ({NCCL_ISSUE}). Expect the full cold start instead: provisioning, "
                     f"the weight read from the volume and engine start (`glmserve plan` estimates it); "
                     f"keep the node warm in working hours with scaling.warmSchedule"),
            allowed="false for this node; true only with serving.tensorParallelSize 1"))
    elif spec.engine.name != "vllm":
        problems.append(Problem(key="modal.gpuSnapshot", value=True,
                                message="the snapshot pattern puts the engine to sleep with vLLM's sleep mode",
                                allowed="engine.name vllm"))
    return problems


def snapshot_variables(spec: NodeSpec, opts: ModalOptions, argv: list[str]) -> dict[str, Any]:
    """What the app template needs for the snapshot pattern: the engine in sleep mode (flag and
    the development-mode switch for /sleep and /wake_up), the class that holds it."""
    if not opts.gpu_snapshot:
        return {"gpu_snapshot": False}
    return {"gpu_snapshot": True, "snapshot_class": SNAPSHOT_CLASS, "served_name": spec.model.served_name,
            "argv": [*argv, SLEEP_FLAG], "env": {**spec.engine.env, **SLEEP_ENV}}
