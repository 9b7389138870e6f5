"""One protocol for everything that changes what a model computes for the length of a ``with`` block.

An :class:`Intervention` has ``applied(lm)``, a context manager that applies it on entry and undoes it on
exit, exceptions included. The package's three kinds all are one:

* a MEMIT or PMET weight edit, :class:`memat.memit.MemitDelta` (``delta.applied(lm)`` adds the weight
  deltas and restores the original weights bit for bit);
* MEMAT head corrections, :class:`memat.corrections.HeadCorrections` (forward hooks adding ``omega`` to
  the heads' outputs);
* ITI shifts, :meth:`memat.iti.ItiDirections.corrections` (HeadCorrections holding ``alpha * sigma * theta``).

:func:`applied_all` applies several in order and undoes them in reverse order; ``evaluate_cases(...,
interventions=[delta, corrections])`` (:func:`memat.evaluate.evaluate_cases`) scores under them::

    with applied_all(lm, [delta, corrections]):
        ...
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .models import LoadedModel

__all__ = ["Intervention", "applied_all"]


@runtime_checkable
class Intervention(Protocol):
    """Anything with ``applied(lm)`` returning a context manager that applies it to ``lm`` on entry and
    undoes it on exit (also when the block raises). ``isinstance(x, Intervention)`` checks that ``x`` has
    an ``applied`` attribute (a runtime-checkable protocol checks names, not signatures)."""

    def applied(self, lm: LoadedModel) -> contextlib.AbstractContextManager: ...


def _check(interventions) -> list:
    if isinstance(interventions, Intervention) or interventions is None:
        interventions = [] if interventions is None else [interventions]
    items = [x for x in interventions if x is not None]
    bad = [f"#{i} ({type(x).__name__})" for i, x in enumerate(items) if not isinstance(x, Intervention)]
    if bad:
        raise TypeError(f"not interventions (no applied(lm) method): {', '.join(bad)}")
    return items


@contextlib.contextmanager
def applied_all(lm: LoadedModel, interventions: Iterable[Intervention | None] | Intervention | None) -> Iterator[list]:
    """Apply ``interventions`` to ``lm`` in the order given, undo them in reverse order on exit.

    ``None`` entries are skipped (a single intervention or None may be passed instead of a list). Every
    entry is checked before anything is applied; if applying one fails, the ones already applied are
    undone, and an exception inside the block undoes them all, so the model's weights are bit-identical
    and no hook of theirs is left afterwards. Yields the list of what each ``applied`` returned."""
    items = _check(interventions)
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(x.applied(lm)) for x in items]
