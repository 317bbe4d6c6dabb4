"""Notebook 08's panel: pick a rule, a budget, a layer and a head; see what the rule keeps.

A thin shell (``Panel``) over ``hsr_lab.figures.budgets.view_budget_head``; the selections are
computed once per (rule, budget, layer) and kept, so moving the head only redraws.

    from hsr_lab.widgets.budgets import budget_panel
    budget_panel()          # in a notebook cell
"""

from __future__ import annotations

import functools

import ipywidgets as widgets

from hsr_lab.figures.budgets import view_budget_head
from hsr_lab.widgets.render import Panel

_SLIDER = dict(continuous_update=False, style={"description_width": "initial"})


def budget_panel(quick: bool | None = None, method: str = "top_k", layer: int = 15) -> Panel:
    """Rule, budget (a share of each row's prefix), layer and query head of SmolLM2-135M."""
    from hsr_lab.data.smollm2 import N_HEADS, N_LAYERS
    from hsr_lab.experiments.budgets import LABELS, label_of, setting

    s = setting(quick)
    budgets = list(s.budgets)
    return Panel(
        functools.partial(view_budget_head, quick=quick),
        {"method": widgets.Dropdown(options=[(LABELS[m], m) for m in ("dense", *s.methods)],
                                    value=method, description="rule"),
         "budget": widgets.Dropdown(options=[(label_of(b), b) for b in budgets],
                                    value=budgets[len(budgets) // 2], description="budget"),
         "layer": widgets.IntSlider(layer, min=0, max=N_LAYERS - 1, description="layer",
                                    **_SLIDER),
         "head": widgets.IntSlider(0, min=0, max=N_HEADS - 1, description="query head",
                                   **_SLIDER)},
        "SmolLM2-135M (4-bit weights): what each rule keeps, on the attention map",
    )
