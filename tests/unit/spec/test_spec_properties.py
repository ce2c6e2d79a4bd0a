"""Property-based: random, mostly malformed stack input never produces a traceback or a
partial deployment; it is either a valid spec or a GlmserveError naming a key."""
from __future__ import annotations

import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.common.errors import GlmserveError
from infra.engine.render import render
from infra.spec.model import NodeSpec
from infra.spec.build import build_spec

from tests.helpers import ROOT

NODE = yaml.safe_load((ROOT / "stacks" / "node.yaml").read_text())

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**7, 10**7), st.floats(allow_nan=True),
                    st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=12), inner, max_size=3)),
                      max_leaves=8)
known_keys = {s: list(NODE.get(s, {}) or {}) for s in NODE}
section = st.sampled_from(sorted(known_keys) + ["provider", "bogus", "secrets", "modal"])


@st.composite
def overrides(draw):
    out = {}
    for _ in range(draw(st.integers(1, 4))):
        sec = draw(section)
        keys = known_keys.get(sec) or ["x"]
        if draw(st.booleans()):
            out[sec] = {draw(st.sampled_from(keys + ["typo"])): draw(values)}
        else:
            out[sec] = draw(values)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides())
def test_random_input_is_a_spec_or_a_clear_error(ov):
    try:
        spec = build_spec(copy.deepcopy(NODE), ov, "stacks/node.yaml", "stacks/Pulumi.t.yaml")
    except GlmserveError as e:
        assert e.problems, "an error must name at least one problem"
        for p in e.problems:
            assert p.key and p.message
        return
    assert isinstance(spec, NodeSpec)
    try:
        cmd = render(spec)
    except GlmserveError as e:
        assert e.problems
        return
    assert all(isinstance(a, str) for a in cmd.argv)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=15), values, max_size=4))
def test_random_top_level_keys_never_crash(ov):
    try:
        build_spec(copy.deepcopy(NODE), ov, "stacks/node.yaml", "stacks/Pulumi.t.yaml")
    except GlmserveError:
        pass
