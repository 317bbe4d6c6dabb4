"""The Examples of hsr_lab's docstrings run, and show what they say.

Every module of the package is imported and its docstring examples (``>>>``) are run with
``doctest``, one test per module, so ``make test`` fails when an example stops being true. The
public API carries a numpydoc ``Examples`` section (``PUBLIC`` lists what must have one).
Examples are kept small: a whole module's run in well under a second or two.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import numpy as np
import pytest

import hsr_lab

MODULES = sorted(info.name for info in pkgutil.walk_packages(hsr_lab.__path__, "hsr_lab.")
                 if info.name != "hsr_lab.__main__")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as err:  # an optional package this module needs is missing
        pytest.skip(f"{name}: {err}")


@pytest.mark.parametrize("name", ["hsr_lab", *MODULES])
def test_the_examples_in_the_docstrings_run(name):
    module = _module(name)
    report: list[str] = []
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    tests = [t for t in finder.find(module, name, extraglobs={"np": np}) if t.examples
             and (t.filename or "").endswith(".py")]
    for test in tests:
        runner.run(test, out=report.append, clear_globs=True)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, "".join(report)
    assert attempted == sum(len(t.examples) for t in tests)


def _public_api() -> dict[str, object]:
    """What must carry an Examples section: the package's face, attention's entry points, the
    thresholds, the figure registry and every public function of ``theory``."""
    import inspect

    from hsr_lab import HSR, Decoder, relu_attention, softmax_attention, theory
    from hsr_lab.attention import row_thresholds, sampled_row_thresholds
    from hsr_lab.attention.batch import hsr_attention
    from hsr_lab.figures import figure

    api = {"HSR": HSR, "HSR.query": HSR.query, "HSR.query_many": HSR.query_many,
           "HSR.add": HSR.add, "HSR.delete": HSR.delete, "relu_attention": relu_attention,
           "softmax_attention": softmax_attention, "hsr_attention": hsr_attention,
           "Decoder": Decoder, "Decoder.attend": Decoder.attend,
           "row_thresholds": row_thresholds, "sampled_row_thresholds": sampled_row_thresholds,
           "figures.figure": figure}
    api |= {f"theory.{name}": fn for name, fn in vars(theory).items()
            if inspect.isfunction(fn) and fn.__module__ == theory.__name__
            and not name.startswith("_")}
    return api


@pytest.mark.parametrize(("name", "obj"), list(_public_api().items()), ids=list(_public_api()))
def test_the_public_api_has_a_numpydoc_examples_section(name, obj):
    import inspect

    doc = inspect.getdoc(obj) or ""
    assert "\nExamples\n--------\n" in doc, f"{name} has no numpydoc Examples section"
    examples = doctest.DocTestParser().get_examples(doc.split("Examples\n", 1)[1])
    assert examples, f"{name}'s Examples section runs nothing"
