"""What a run reports while it trains: TensorBoard scalars, the progress bar and
history.csv (ratings and returns over time, which `league plot` draws), as observers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from league._io import append_csv_rows
from league.training.observers import Observer

if TYPE_CHECKING:
    from league.training.trainer import Trainer


class TensorBoard(Observer):
    """Scalars under ``<run_dir>/tb``, x axis = env steps of the run.

    Per policy: the algorithm's update stats, ``episode_return``, and at each
    checkpoint ``rating``, ``trueskill_mu`` and ``score``; async learners add
    ``lag_min``, ``lag_avg``, ``lag_max`` and ``dropped_stale_total``; observers add
    theirs through `Trainer.scalar` (PBT: ``pbt_exploit``, ``hp_<name>``; the ladder:
    ``ladder_<rung>``; role resets: ``reset``). Run-wide: ``train/env_steps_per_s``,
    ``train/dropped_episodes`` and, with ``anneal_lr``, ``train/lr_scale``.
    """

    def __init__(self, log_dir: str, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir, purge_step=purge_step or None)
        self.step = purge_step or 0

    def scalar(self, tag: str, value: float) -> None:
        self.writer.add_scalar(tag, float(value), self.step)

    def on_update(
        self, trainer: Trainer, policy_id: str, samples: int, stats: dict[str, float]
    ) -> None:
        self.step = trainer.state.env_steps
        for key, value in stats.items():
            self.scalar(f"{policy_id}/{key}", value)

    def on_iteration(self, trainer: Trainer) -> None:
        self.step = trainer.state.env_steps
        info = trainer.last_iteration
        self.scalar("train/env_steps_per_s", info.env_steps_per_s)
        for pid, returns in info.returns.items():
            self.scalar(f"{pid}/episode_return", float(np.mean(returns)))

    def on_checkpoint(self, trainer: Trainer) -> None:
        self.step = trainer.state.env_steps
        board = trainer.league.leaderboard()
        for row in board.itertuples():
            self.scalar(f"{row.policy}/rating", row.rating)
            self.scalar(f"{row.policy}/trueskill_mu", row.trueskill_mu)
            self.scalar(f"{row.policy}/score", row.score)
        for pid, lag in trainer.lags().items():
            self.scalar(f"{pid}/lag_min", lag.lag_min)
            self.scalar(f"{pid}/lag_avg", lag.lag_avg)
            self.scalar(f"{pid}/lag_max", lag.lag_max)
            self.scalar(f"{pid}/dropped_stale_total", lag.dropped)
        self.writer.flush()

    def on_stop(self, trainer: Trainer, reason: str) -> None:
        self.writer.close()


class ProgressBar(Observer):
    """A live line: env steps, steps/s, async policy lag, the leader and its rating."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.leader = ""

    def on_start(self, trainer: Trainer) -> None:
        from tqdm.auto import tqdm

        class Bar(tqdm):
            # No monitor thread: it outlives the bar, and a thread alive when the
            # next run in this process starts its env workers keeps them from forking.
            monitor_interval = 0

        total = trainer.config.total_steps or None
        self.bar = Bar(
            total=total,
            initial=trainer.state.env_steps,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
        )

    def on_iteration(self, trainer: Trainer) -> None:
        info = trainer.last_iteration
        status = f"{info.env_steps_per_s:,.0f} steps/s"
        lags = [lag for lag in trainer.lags().values() if lag.trained]
        if lags:
            status += (
                f" lag {min(g.lag_min for g in lags)}/"
                f"{sum(g.lag_avg for g in lags) / len(lags):.1f}/{max(g.lag_max for g in lags)}"
            )
        self.bar.update(trainer.state.env_steps - self.bar.n)
        self.bar.set_postfix_str(f"{status} {self.leader}".strip())

    def on_checkpoint(self, trainer: Trainer) -> None:
        board = trainer.league.leaderboard()
        if not board.empty:
            top = board.iloc[0]
            self.leader = f"leader {top['policy']} ({top['rating']:.0f})"

    def on_stop(self, trainer: Trainer, reason: str) -> None:
        if self.bar is not None:
            self.bar.close()


HISTORY_FILE = "history.csv"
HISTORY_COLUMNS = (
    "env_steps",
    "seconds",
    "policy",
    "kind",
    "rating",
    "err_lo",
    "err_hi",
    "games",
    "episode_return",
    "episodes",
)


class History(Observer):
    """At every checkpoint, one row per policy in `history.csv`: its ML Elo with error
    bars and games so far, and its mean episode return since the last checkpoint."""

    def __init__(self) -> None:
        self.returns: dict[str, list[float]] = {}

    def on_iteration(self, trainer: Trainer) -> None:
        for pid, returns in trainer.last_iteration.returns.items():
            self.returns.setdefault(pid, []).extend(returns)

    def on_checkpoint(self, trainer: Trainer) -> None:
        board = trainer.league.leaderboard()
        path = Path(trainer.run_dir.path) / HISTORY_FILE
        rows = []
        for row in board.itertuples():
            returns = self.returns.get(row.policy, [])
            rows.append(
                [
                    trainer.state.env_steps,
                    round(trainer.state.elapsed, 2),
                    row.policy,
                    row.kind,
                    _round(row.rating),
                    _round(row.err_lo),
                    _round(row.err_hi),
                    row.games,
                    _round(float(np.mean(returns))) if returns else "",
                    len(returns),
                ]
            )
        self.returns.clear()
        append_csv_rows(path, HISTORY_COLUMNS, rows)


def _round(value: float) -> float | str:
    return (
        ""
        if value is None or (isinstance(value, float) and math.isnan(value))
        else round(float(value), 3)
    )


class Plots(Observer):
    """At the end of a run that trained `min_seconds` or more, `league.plots.plot_run`
    draws its ratings, payoff, returns and ladder as PNGs in the run directory."""

    def __init__(self, min_seconds: float = 60.0) -> None:
        self.min_seconds = min_seconds

    def on_stop(self, trainer: Trainer, reason: str) -> None:
        if reason == "error" or trainer.state.elapsed < self.min_seconds:
            return
        from league.plots import plot_run

        paths = plot_run(trainer.run_dir.path)
        if paths:
            print(f"league: plots in {trainer.run_dir}: {', '.join(p.name for p in paths)}")
