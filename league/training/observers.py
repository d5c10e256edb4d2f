"""Observers: how add-ons hook into training without living in the loop.

The loop only loops. Metrics, the progress bar, PBT, plots and periodic ladder
evaluation are observers (league roles' snapshots and resets are the league's
own, `League.advance`): objects whose methods the trainer
calls on named events (Sample Factory's `AlgoObserver` is the model). Override
the hooks you need; every hook gets the `Trainer`, whose public attributes
(`config`, `league`, `population`, `run_dir`, `state`, `last_iteration`) are
what an observer may read.

Order of events in a run: `on_start`, then per iteration any number of
`on_match`, `on_update` and `on_snapshot` (each snapshot right after the
update that caused it), then `on_iteration`; `on_checkpoint` after every
checkpoint (the first right after `on_start`, one at the end); `on_stop` last,
also when the run stopped on an error (reason "error"; after an expected
error, the family of `league.errors`, it comes after the checkpoint that
keeps what was learnt; after an unexpected one nothing is saved, and the
last checkpoint stands).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from league.matchmaking import MatchResult
    from league.training.trainer import Trainer


class Observer:
    """Hooks called by the trainer; each does nothing unless overridden."""

    def on_start(self, trainer: Trainer) -> None:
        """Everything is built; the run's first checkpoint is written right after."""

    def on_iteration(self, trainer: Trainer) -> None:
        """One iteration (collection, and in sync mode training) ended."""

    def on_update(
        self, trainer: Trainer, policy_id: str, samples: int, stats: dict[str, float]
    ) -> None:
        """Learner `policy_id` finished an update on `samples` samples."""

    def on_match(self, trainer: Trainer, result: MatchResult) -> None:
        """A match ended and the league has taken its result."""

    def on_snapshot(self, trainer: Trainer, snapshot_id: str, learner_id: str) -> None:
        """The league froze learner `learner_id` as `snapshot_id`."""

    def on_checkpoint(self, trainer: Trainer) -> None:
        """A checkpoint was committed to the run directory."""

    def on_stop(self, trainer: Trainer, reason: str) -> None:
        """The run ended: "budget", "learners stopped", "SIGINT", "SIGTERM" or "error"."""


HOOKS = tuple(
    name for name in vars(Observer) if name.startswith("on_") and callable(vars(Observer)[name])
)


class Observers:
    """The observers of a run, called in the order they were added."""

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        self._observers: list[Observer] = []
        for observer in observers:
            self.add(observer)

    def add(self, observer: Observer) -> None:
        if not any(callable(getattr(observer, hook, None)) for hook in HOOKS):
            raise TypeError(
                f"observer {observer!r} has none of the hooks {list(HOOKS)}; subclass "
                "league.training.Observer and override the ones you need"
            )
        self._observers.append(observer)

    def __iter__(self):
        return iter(self._observers)

    def emit(self, hook: str, *args: Any) -> None:
        for observer in self._observers:
            method = getattr(observer, hook, None)
            if method is not None:
                method(*args)
