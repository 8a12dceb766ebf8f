"""Progress bars for long CLI commands (tqdm on stderr, drawn only when it is a terminal, so
logs and CI output stay clean).

:func:`stages` shows a command's named stages (e.g. features and training, then register)
with the elapsed time, so a long step is visibly alive; commands whose library reports
finer progress (``replay publish``) draw their own bar. A prequential backtest adds one
stage per fold once it knows how many there are (:meth:`Stages.folds`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from tqdm import tqdm


class Stages:
    """Advance with :meth:`next`; the bar's description names the stage under way."""

    def __init__(self, bar: tqdm, names: Sequence[str]) -> None:
        self.bar = bar
        self.names = list(names)
        self.done = 0
        self._show()

    def _show(self) -> None:
        if self.done < len(self.names):
            self.bar.set_description_str(self.names[self.done])

    def next(self) -> None:
        self.done += 1
        self.bar.update(1)
        self._show()

    def add(self, names: Sequence[str]) -> None:
        """More stages, known only once the work started (e.g. a prequential run's folds)."""
        self.names += list(names)
        self.bar.total = len(self.names)
        self.bar.refresh()
        self._show()

    def folds(self, done: int, total: int) -> None:
        """A fold callback (:func:`replay.prequential.run_prequential`): one stage a fold."""
        if done == 0:
            self.add([f"fold {k}/{total}" for k in range(1, total + 1)])
        else:
            self.next()


@contextmanager
def stages(names: Sequence[str], command: str) -> Iterator[Stages]:
    """A bar over ``names``; completes the remaining stages when the block succeeds."""
    with tqdm(total=len(names), file=sys.stderr, unit="stage", leave=True,
              bar_format=f"{command}: {{desc}} {{n_fmt}}/{{total_fmt}} [{{elapsed}}]",
              disable=None, mininterval=1.0) as bar:  # None: only on a terminal
        tracker = Stages(bar, names)
        yield tracker
        while tracker.done < len(tracker.names):
            tracker.next()
