"""Deployment targets, one package each. They are found through the registry
(infra/config/providers.py, entry points in pyproject.toml), never imported by the core."""
