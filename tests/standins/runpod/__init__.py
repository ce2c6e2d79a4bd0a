"""RunPod REST API v2 stand-in. See :mod:`.server` for the behaviour and :mod:`.contract` for validation."""
from .contract import Contract, document_path
from .server import NO_CAPACITY_DETAIL, Fault, RecordedRequest, RunPodStandin

__all__ = ["RunPodStandin", "RecordedRequest", "Fault", "Contract", "document_path", "NO_CAPACITY_DETAIL"]
