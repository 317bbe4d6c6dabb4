"""Hypothesis profiles: ``default`` for ``make test``, ``long`` (many more examples) for
``make test-long``, chosen with ``HYPOTHESIS_PROFILE``; and the rule the stateful HSR
machines share (``DeletesFromModel``).

A test that sets its own ``max_examples`` keeps it under ``default``; under ``long`` use
``examples(n)`` so that the long run scales every property test alike.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

LONG_FACTOR = 20  # the long profile runs this many times the examples of the default one
settings.register_profile("default", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", deadline=None, max_examples=100 * LONG_FACTOR,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
settings.load_profile(PROFILE)


def examples(n: int) -> int:
    """``n`` examples in the default profile, ``LONG_FACTOR * n`` in the long one."""
    return n * LONG_FACTOR if PROFILE == "long" else n


class DeletesFromModel:
    """Stateful rule for a machine holding ``self.hsr`` (an ``HSR``, or None before the first
    build) and ``self.model`` (id -> point): delete up to five stored ids from both."""

    @precondition(lambda self: self.hsr is not None and self.model)
    @rule(data=st.data())
    def delete(self, data):
        ids = data.draw(st.lists(st.sampled_from(sorted(self.model)), unique=True, max_size=5))
        self.hsr.delete(ids)
        for i in ids:
            del self.model[i]
