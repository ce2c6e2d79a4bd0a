"""The engine image and the engine version it runs must not disagree silently: the renderer
and the engine check trust ``engine.version`` (docs/engine-check.md)."""
from __future__ import annotations

import re

from infra.common.errors import Problem
from infra.common.versions import version_tuple

ENGINES = ("vllm", "sglang")


def image_version_problems(spec) -> list[Problem]:
    """Tie engine.image to engine.version.

    - a tag of the form vX.Y.Z (or X.Y.Z, optionally followed by -suffix such as -cu130)
      must name engine.version;
    - a digest-pinned image (name@sha256:...) cannot be read for a version, so the version
      is what engine.version states explicitly; name:vX.Y.Z@sha256:... is checked by its tag;
    - a floating tag (latest, nightly, ...) or no tag and no digest cannot be tied at all.
    """
    image, version, engine = spec.engine.image, spec.engine.version, spec.engine.name
    ref, _, digest = image.partition("@")
    last = ref.rsplit("/", 1)[-1]
    name, _, tag = last.partition(":")
    problems = []
    allowed = f"{ref.rsplit(':', 1)[0] if tag else ref}:v{version}, or a digest (...@sha256:<64 hex>) with engine.version stating {version}"
    if digest and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        problems.append(Problem(key="engine.image", value=image, message="the digest is not sha256:<64 hex digits>",
                                allowed=allowed))
    other = [e for e in ENGINES if e != engine and e in name.lower()]
    if other:
        problems.append(Problem(key="engine.image", value=image,
                                message=f"the image looks like a {other[0]} image but engine.name is {engine}",
                                allowed=f"an image that runs {engine} {version}"))
    if tag:
        m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+.][A-Za-z0-9._+-]*)?", tag)
        if m:
            tag_version = tuple(int(x) for x in m.groups() if x is not None)
            if version_tuple(version) != version_tuple(".".join(map(str, tag_version))):
                problems.append(Problem(
                    key="engine.image", value=image,
                    message=(f"the image tag {tag} names {engine} {'.'.join(map(str, tag_version))} but engine.version "
                             f"is {version}; change them together"),
                    allowed=allowed))
        elif not digest:
            problems.append(Problem(
                key="engine.image", value=image,
                message=f"the floating tag '{tag}' cannot be tied to engine.version {version}",
                allowed=allowed))
    elif not digest:
        problems.append(Problem(key="engine.image", value=image,
                                message=f"no tag (means :latest) cannot be tied to engine.version {version}",
                                allowed=allowed))
    return problems
