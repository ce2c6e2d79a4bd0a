"""The declared shape of every free-form string in a spec.

A stack file is edited by many hands and by pipelines; each string reaches an engine's argv,
a container's filesystem, a package installer or a cloud API. So each has a shape, checked
before anything renders: a host is an address or a host name; ids and revisions cannot
climb out of a folder or pass for a flag; a mount path is absolute, normal and not a system
folder; a pip entry is a requirement, never an installer option.
"""
from __future__ import annotations

import ipaddress
import posixpath
import re
import urllib.parse
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

# Anything below a space, and DEL: never part of a name, a path or a command.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# A Hugging Face repo name part (huggingface_hub's validate_repo_id: letters, digits, '-', '_',
# '.'; no '--' or '..'; '-' and '.' neither start nor end it; at most 96 characters).
HF_PART = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?$")
# A git ref or commit as Hugging Face takes it for --revision.
REVISION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,254}$")
# Folders of a container image that a weight cache must never be mounted over.
RESERVED_MOUNTS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run", "/sbin", "/sys",
                   "/usr", "/var/run")


def no_control(v: str) -> str:
    if CONTROL.search(v):
        raise ValueError("contains a control character (a newline, tab or similar)")
    return v


def host(v: str) -> str:
    """An IP address or an RFC 1123 host name."""
    try:
        ipaddress.ip_address(v)
        return v
    except ValueError:
        pass
    labels = v.rstrip(".").split(".")
    if len(v) > 253 or not all(HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError("is neither an IP address nor a host name (letters, digits and '-' in dot-separated labels)")
    return v


def model_id(v: str) -> str:
    """A Hugging Face model id, `organisation/name`."""
    parts = v.split("/")
    if len(parts) != 2 or not all(HF_PART.fullmatch(p) and ".." not in p and "--" not in p for p in parts):
        raise ValueError("is not a Hugging Face model id like 'organisation/name' (letters, digits, '-', '_', '.'; "
                         "no '..' or '--'; no leading '-' or '.')")
    return v


def revision(v: str) -> str:
    """A branch, tag or commit: no '..', no path that climbs, no leading '-' (argparse would
    read it as a flag)."""
    if not REVISION.fullmatch(v) or ".." in v or "//" in v or v.endswith(("/", ".lock")):
        raise ValueError("is not a branch, tag or commit (letters, digits, '_', '.', '/', '-'; no '..'; "
                         "not starting with '-')")
    return v


def mount_path(v: str) -> str:
    """An absolute, normalised path that is not the root or a system folder."""
    no_control(v)
    if not v.startswith("/") or posixpath.normpath(v) != v or v.startswith("//"):
        raise ValueError(f"must be an absolute, normalised path (like {posixpath.normpath('/' + v.lstrip('/'))})")
    if v == "/" or any(v == r or v.startswith(r + "/") for r in RESERVED_MOUNTS):
        raise ValueError(f"would hide a system folder of the image; not '/' nor under {', '.join(RESERVED_MOUNTS)}")
    return v


def pip_requirement(v: str) -> str:
    """One requirement as pip takes it on its command line, never an option (`--index-url`)."""
    from packaging.requirements import InvalidRequirement, Requirement

    no_control(v)
    if v.lstrip().startswith("-"):
        raise ValueError("is a pip option, not a requirement; options (indexes, trusted hosts) are not accepted")
    try:
        req = Requirement(v)
    except InvalidRequirement as e:
        raise ValueError(f"is not a requirement ({e})") from None
    if req.url and not req.url.startswith("https://"):
        raise ValueError("a direct reference must be an https:// URL")
    return v


def is_loopback(hostname: str) -> bool:
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def credential_url(v: str) -> str:
    """A URL that glmserve sends a credential to (a cloud API key, the endpoint's API key):
    https, or plain http only to this machine's loopback address, which the value itself names
    (the stand-ins and port-forwards). Never user:password@ in the URL."""
    no_control(v)
    try:
        url = urllib.parse.urlsplit(v)
        hostname = url.hostname
        url.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as e:
        raise ValueError(f"is not a URL ({e})") from None
    if url.scheme not in ("https", "http") or not hostname:
        raise ValueError("must be an https:// URL with a host")
    if url.username is not None or url.password is not None:
        raise ValueError("must not carry a user name or password; credentials come from secrets")
    if url.scheme == "http" and not is_loopback(hostname):
        raise ValueError("would send a credential over plain http to another machine; use https "
                         "(http only to 127.0.0.1, ::1 or localhost)")
    return v


def dockerfile_command(v: str) -> str:
    """One Dockerfile instruction: a newline would start another one."""
    return no_control(v)


Host = Annotated[str, AfterValidator(host)]
ModelId = Annotated[str, AfterValidator(model_id)]
Revision = Annotated[str, AfterValidator(revision)]
MountPath = Annotated[str, AfterValidator(mount_path)]
PipRequirement = Annotated[str, AfterValidator(pip_requirement)]
DockerfileCommand = Annotated[str, AfterValidator(dockerfile_command)]
PlainText = Annotated[str, AfterValidator(no_control)]
CredentialUrl = Annotated[str, AfterValidator(credential_url)]


# --------------------------------------------------------------------------- scalars
# Stack files get values two ways: written in YAML, or by `pulumi config set --path`, which
# stores whole numbers and booleans typed but every other scalar as a string ("1.5"). So a
# number may arrive as a numeric string; but `true` is never the integer 1, 8.0 is never 8,
# and "yes" is never a boolean.

def whole_number(v: object) -> object:
    if isinstance(v, bool):
        raise ValueError("Input should be a valid integer, not true or false")
    if isinstance(v, float):
        raise ValueError("Input should be a valid integer, written without a decimal point")
    if isinstance(v, str) and not re.fullmatch(r"[+-]?[0-9]+", v.strip()):
        raise ValueError("Input should be a valid integer")
    return v


def number(v: object) -> object:
    if isinstance(v, bool):
        raise ValueError("Input should be a valid number, not true or false")
    return v


def boolean(v: object) -> object:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    raise ValueError("Input should be true or false")


WholeNumber = Annotated[int, BeforeValidator(whole_number)]
Number = Annotated[float, BeforeValidator(number)]
Boolean = Annotated[bool, BeforeValidator(boolean)]
