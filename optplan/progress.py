"""Progress bars: one style across the CLI (tqdm on stderr, with the total and a unit).

Every loop that can run longer than a few seconds goes through :func:`progress`: the
frontier, tornado and service-frontier sweeps, the funnel and retention bootstraps, the
simulation's weeks. ``show=False`` (the library default in tests, ``--quiet``) returns the
iterable untouched. The bars vanish when done (``leave=False``); what a step produced is
then said in one line by the command.
"""

from __future__ import annotations

from collections.abc import Iterable


def progress(items: Iterable, desc: str, unit: str, total: int | None = None, show: bool = True):
    """``items`` with a progress bar ``desc: n/total unit`` on stderr when ``show``."""
    if not show:
        return items
    from tqdm import tqdm

    if items is None:  # a bar to update by hand (bar.update(1)), e.g. from an optimiser's callback
        return tqdm(desc=desc, unit=unit, leave=False, total=total, dynamic_ncols=True)

    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    return tqdm(items, desc=desc, unit=unit, leave=False, total=total, dynamic_ncols=True)
