"""Whose a RunPod resource is, and where it lives.

Identity, not names: a pod carries its stack instance's owner id (infra/deploy/identity.py) in
its env (``GLMSERVE_OWNER``); a network volume, whose API object has no free-form field, carries
it as a name suffix (``<name>-<owner>``). glmserve adopts, changes and deletes only what carries
its own id; a same-named resource with another (or no) id stops `up` and is never touched.

Where: RunPod's API has no "who am I" call, so the account a resource was created in is
recorded as the API URL plus a fingerprint of the API key (a salted SHA-256 prefix: it names the
key without revealing it). A resource leaves state only on positive evidence that it is gone:
a 404 for its id from the same URL and key, while listing that account's resources succeeds.
Anything else (another URL, another key that cannot see it, an auth error) keeps it in state and
fails with what to do.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Optional

OWNER_ENV = "GLMSERVE_OWNER"
_SALT = b"glmserve-runpod-account\0"


def key_fingerprint(api_key: str) -> str:
    return hashlib.sha256(_SALT + api_key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Account:
    api_url: str
    key_fingerprint: str

    def as_state(self) -> dict[str, str]:
        return {"apiUrl": self.api_url, "keyFingerprint": self.key_fingerprint}

    @staticmethod
    def from_state(value: Any) -> Optional["Account"]:
        if not isinstance(value, dict) or not value.get("apiUrl"):
            return None       # state written before accounts were recorded
        return Account(str(value["apiUrl"]), str(value.get("keyFingerprint") or ""))


def pod_owner(pod: dict[str, Any]) -> Optional[str]:
    env = pod.get("env")
    return env.get(OWNER_ENV) if isinstance(env, dict) else None


def volume_name(base: str, owner: Optional[str]) -> str:
    return f"{base}-{owner}" if owner else base


def volume_owner(vol: dict[str, Any], base: str) -> Optional[str]:
    """The owner id a volume named ``<base>-<owner>`` carries; None for any other name."""
    from infra.deploy.identity import PREFIX

    name = str(vol.get("name") or "")
    tail = name[len(base) + 1:] if name.startswith(base + "-") else ""
    return tail if tail.startswith(PREFIX) and tail.isalnum() else None


def foreign_volumes(volumes: list[dict], base: str, owner: str) -> list[dict]:
    """Volumes of another stack instance with this stack's volume name (or that exact name,
    which a pre-identity glmserve or a person created)."""
    return [v for v in volumes
            if v.get("name") == base or (volume_owner(v, base) not in (None, owner))]


def foreign_message(kind: str, ids: list[str], name: str, owners: list[Optional[str]], owner: str,
                    option: str) -> str:
    theirs = ", ".join(sorted({o or "none" for o in owners}))
    return (f"RunPod already has {kind} {', '.join(ids)} named {name!r} that this stack instance did not create "
            f"(owner id {theirs}; this stack's is {owner}). glmserve never adopts, changes or deletes another "
            f"owner's resources, so nothing was created or changed. Next: if it belongs to another checkout or "
            f"state backend of this stack, use that one (or `glmserve destroy` there); otherwise choose another "
            f"name ({option}).")


class AccountMismatch(Exception):
    """The current API URL or key is not the one a resource was created with."""


def check_url(stored: Optional[Account], current: Account, what: str) -> None:
    if stored is not None and stored.api_url != current.api_url:
        raise AccountMismatch(
            f"{what}: it was created through the RunPod API at {stored.api_url}, but this run talks to "
            f"{current.api_url}. It is kept in state and nothing was changed. Next: point RUNPOD_API_URL "
            f"(or runpod.apiUrl) back at {stored.api_url}.")


def unseen_with_other_key(stored: Optional[Account], current: Account, what: str) -> None:
    """Called when a resource is not found: with another key that is no evidence it is gone."""
    if stored is not None and stored.key_fingerprint and stored.key_fingerprint != current.key_fingerprint:
        raise AccountMismatch(
            f"{what}: RunPod does not show it to this API key (fingerprint {current.key_fingerprint}), which is "
            f"not the key it was created with (fingerprint {stored.key_fingerprint}): it may live in another "
            f"account and still bill. It is kept in state and nothing was changed. Next: run again with the "
            f"original key (RUNPOD_API_KEY or runpod.apiKey); only if you know it is gone, remove it with "
            f"`pulumi state delete <urn>`.")
