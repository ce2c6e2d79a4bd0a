"""vLLM (OpenAI-compatible) engine stand-in. See :mod:`.server` for the behaviour."""
from .server import DEFAULT_MODEL, MODES, EngineRequest, EngineStandin

__all__ = ["EngineStandin", "EngineRequest", "MODES", "DEFAULT_MODEL"]
