"""``Plan`` and ``Decision`` (``hsr.plan``) refuse what they cannot mean, naming the field.

A misspelt kernel used to be taken silently: ``Decision("Tree", ...)`` in a plan built a scan
where the caller asked for the tree. Every field is checked on creation instead.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hsr_lab import HSR
from hsr_lab.hsr import Plan, plan

SITUATION = Plan.situation("query", np.dtype(np.float64), 5000)


@pytest.mark.parametrize(("make", "error", "field"), [
    (lambda: plan.Decision("Tree", "a typo"), ValueError, "Decision.kernel"),
    (lambda: plan.Decision("", "empty"), ValueError, "Decision.kernel"),
    (lambda: plan.Decision(1, "not a name"), TypeError, "Decision.kernel"),
    (lambda: plan.Decision("tree", 3), TypeError, "Decision.why"),
    (lambda: plan.Decision("tree", "x", [0.1]), TypeError, "Decision.seconds"),
    (lambda: plan.Decision("tree", "x", {"tree": "1 ms"}), TypeError, "Decision.seconds"),
    (lambda: plan.Decision("tree", "x", {"tree": True}), TypeError, "Decision.seconds"),
    (lambda: plan.Decision("tree", "x", {1: 0.1}), TypeError, "Decision.seconds"),
    (lambda: plan.Decision("tree", "x", {"tree": -1.0}), ValueError, r"Decision.seconds\['tree'\]"),
    (lambda: plan.Decision("tree", "x", {"tree": math.nan}), ValueError, "Decision.seconds"),
    (lambda: plan.Decision("tree", "x", {"tree": math.inf}), ValueError, "Decision.seconds"),
    (lambda: Plan([("query", plan.Decision("tree", "x"))]), TypeError, "Plan.decisions"),
    (lambda: Plan({SITUATION: "tree"}), TypeError, r"Plan.decisions\['query"),
    (lambda: Plan({"bogus": plan.Decision("tree", "x")}), ValueError, "Plan.decisions keys"),
    (lambda: Plan({3: plan.Decision("tree", "x")}), ValueError, "Plan.decisions keys"),
    (lambda: Plan({SITUATION: plan.Decision("dense", "x")}), ValueError,
     r"Plan.decisions\[.*\]\.kernel"),
    (lambda: Plan(race="no"), TypeError, "Plan.race"),
    (lambda: Plan(race=1), TypeError, "Plan.race"),
])
def test_plan_and_decision_refuse_invalid_fields_naming_them(make, error, field):
    with pytest.raises(error, match=rf"^{field}"):
        make()


def test_a_misspelt_kernel_never_reaches_a_structure():
    """The defect: ``Decision("Tree")`` was taken for "not the tree", so the block was a scan."""
    keys = np.random.default_rng(0).standard_normal((5000, 2))
    with pytest.raises(ValueError, match=r"^Decision\.kernel"):
        HSR(keys, plan=Plan({SITUATION: plan.Decision("Tree", "typo")}))


def test_valid_plans_and_decisions_are_taken_as_given():
    """Every kernel, race timings, numpy booleans, and a plan's own decisions round-trip; the
    decision keeps its own copy of the timings."""
    seconds = {"tree": 0.001, "scan": np.float64(0.002), "dense": 0}
    decision = plan.Decision("tree", "raced", seconds)
    seconds["tree"] = -1.0
    assert decision.seconds["tree"] == 0.001
    for kernel in plan.KERNELS:
        assert plan.Decision(kernel, "why").kernel == kernel
    batch = Plan.situation("batch", np.dtype(np.float32), 2**20, 3)
    given = Plan({SITUATION: decision, batch: plan.Decision("scan", "given")}, race=np.bool_(False))
    assert given.race is False and given.fixed().decisions == given.decisions
    keys = np.random.default_rng(1).standard_normal((5000, 2))
    hsr = HSR(keys, plan=Plan({SITUATION: plan.Decision("scan", "given")}))
    assert hsr.plan.decisions[SITUATION].kernel == "scan"
    assert HSR(keys, plan=hsr.plan.fixed()).plan.decisions == hsr.plan.decisions
