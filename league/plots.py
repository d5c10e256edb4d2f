"""Pictures of a run directory: ratings, payoff, learning curves and the ladder as PNG files.

`plot_run` reads the CSV files a run keeps up to date at each checkpoint
(history.csv, payoff.csv, leaderboard.csv and, when ladder evaluations ran,
ladder.csv) and draws one PNG for each that has something to show, so it can be
called on a finished run or on one still training.

Figures are built with matplotlib's object API on the Agg canvas, not pyplot:
plotting never opens a window, leaves the user's backend as it was, and keeps
no figure alive once its PNG is written.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from league._io import atomic_write_bytes
from league.errors import RunDirError
from league.ladder import LADDER_FILE
from league.records import LEADERBOARD_FILE, PAYOFF_FILE
from league.training.metrics import HISTORY_FILE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Up to this many policies the payoff heatmap writes each win rate in its cell.
PAYOFF_VALUES_MAX = 12
# Bigger leagues show only this many policies, best rated first, so labels stay readable.
PAYOFF_TOP = 20
DPI = 100


def plot_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Draw ratings.png, payoff.png, returns.png and ladder.png for the run in `run_dir`
    into `out_dir` (default: the run directory) and return their paths.

    A plot with nothing to show yet (no rated games, no finished episodes, no
    ladder evaluation) is skipped, so a run that has only its first checkpoint
    gives an empty list. Needs matplotlib (``pip install matplotlib``).
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise ImportError("plot_run needs matplotlib: pip install matplotlib") from e
    run = Path(run_dir)
    files = (HISTORY_FILE, PAYOFF_FILE, LEADERBOARD_FILE, LADDER_FILE)
    if not any((run / name).is_file() for name in files):
        raise RunDirError(
            f"{str(run)!r} holds none of {', '.join(files)}; pass the directory a run "
            "trains into (runs/<name>)"
        )
    out = Path(out_dir) if out_dir is not None else run
    out.mkdir(parents=True, exist_ok=True)

    title = run.resolve().name
    history = _read(run / HISTORY_FILE)
    board = _read(run / LEADERBOARD_FILE)
    payoff = _read(run / PAYOFF_FILE, index_col="policy")
    ladder = _read(run / LADDER_FILE)
    plots: list[tuple[str, Callable[[], Figure | None]]] = [
        ("ratings.png", lambda: _ratings(history, title)),
        ("payoff.png", lambda: _payoff(payoff, board, title)),
        ("returns.png", lambda: _returns(history, title)),
        ("ladder.png", lambda: _ladder(ladder, title)),
    ]
    paths = []
    for name, draw in plots:
        fig = draw()
        if fig is not None:
            paths.append(_save(fig, out / name))
    return paths


def _read(path: Path, index_col: str | None = None) -> pd.DataFrame | None:
    """The CSV as a frame, or None when it is missing or has no rows."""
    if not path.is_file():
        return None
    try:
        # Ids such as "1" or "2.0" are legal policy ids: keep them strings.
        frame = pd.read_csv(path, index_col=index_col, dtype={"policy": str})
    except pd.errors.EmptyDataError:
        return None
    return None if frame.empty else frame


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    # Written whole and swapped in, like every run file: a viewer refreshing the
    # PNG while a run trains never reads half of one.
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _ratings(history: pd.DataFrame | None, title: str) -> Figure | None:
    """ML Elo over env steps: learners with their bootstrap band, fixed policies dashed,
    snapshots as faint grey lines."""
    if history is None:
        return None
    rated = history.dropna(subset=["rating"]).sort_values("env_steps", kind="stable")
    if rated.empty:
        return None
    fig = _figure(8, 4.5)
    ax = fig.add_subplot()
    snapshots = rated[rated["kind"] == "snapshot"].groupby("policy")
    for i, (_, rows) in enumerate(snapshots):
        label = "snapshots" if i == 0 else None
        ax.plot(rows["env_steps"], rows["rating"], color="grey", lw=0.7, alpha=0.35, label=label)
    for pid, rows in rated[rated["kind"] == "learner"].groupby("policy"):
        (line,) = ax.plot(rows["env_steps"], rows["rating"], marker=".", lw=1.8, label=pid)
        ax.fill_between(
            rows["env_steps"], rows["err_lo"], rows["err_hi"], color=line.get_color(), alpha=0.15
        )
    for pid, rows in rated[rated["kind"] == "fixed"].groupby("policy"):
        ax.plot(rows["env_steps"], rows["rating"], ls="--", lw=1.0, label=f"{pid} (fixed)")
    ax.set_xlabel("env steps")
    ax.set_ylabel("ML Elo (shaded: bootstrap interval)")
    ax.set_title(f"{title}: ratings")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=1 + len(ax.get_legend_handles_labels()[1]) // 12)
    return fig


def _payoff(payoff: pd.DataFrame | None, board: pd.DataFrame | None, title: str) -> Figure | None:
    """Decayed win rate of each policy (row) against each opponent (column)."""
    if payoff is None:
        return None
    # Before any game every cell is the 0.5 placeholder: nothing to show.
    if board is not None and board["games"].sum() == 0:
        return None
    ids = list(payoff.index)
    if len(ids) > PAYOFF_TOP:
        ranked = board.sort_values("rank")["policy"] if board is not None else ids
        ids = [pid for pid in ranked if pid in payoff.index][:PAYOFF_TOP]
    matrix = payoff.loc[ids, ids].to_numpy(dtype=float)
    side = 2.5 + 0.45 * len(ids)
    fig = _figure(side + 1.5, side)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="RdBu", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(ids)), ids, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(ids)), ids)
    ax.set_xlabel("opponent")
    ax.set_ylabel("policy")
    if len(ids) <= PAYOFF_VALUES_MAX:
        for (row, col), value in np.ndenumerate(matrix):
            # White text only where the cell colour is dark.
            color = "white" if abs(value - 0.5) > 0.3 else "black"
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=8, color=color)
    shown = "" if len(ids) == len(payoff) else f", top {len(ids)} of {len(payoff)} by rating"
    ax.set_title(f"{title}: payoff{shown}")
    fig.colorbar(image, ax=ax, label="win rate, draws ½ (decayed; 0.5 below min_games)")
    return fig


def _returns(history: pd.DataFrame | None, title: str) -> Figure | None:
    """Mean episode return of each learner between checkpoints, over env steps."""
    if history is None:
        return None
    learners = history[history["kind"] == "learner"].dropna(subset=["episode_return"])
    if learners.empty:
        return None
    fig = _figure(8, 4.5)
    ax = fig.add_subplot()
    for pid, rows in learners.sort_values("env_steps", kind="stable").groupby("policy"):
        ax.plot(rows["env_steps"], rows["episode_return"], marker=".", label=pid)
    ax.set_xlabel("env steps")
    ax.set_ylabel("mean episode return")
    ax.set_title(f"{title}: learning curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=1 + learners["policy"].nunique() // 12)
    return fig


def _ladder(ladder: pd.DataFrame | None, title: str) -> Figure | None:
    """Per rung, each evaluated policy's win rate with its Wilson interval, and its
    score (draws count half) dotted, over env steps."""
    if ladder is None:
        return None
    rungs = list(dict.fromkeys(ladder["rung"]))  # weakest first, as the ladder plays them
    policies = list(dict.fromkeys(ladder["policy"]))
    fig = _figure(3.5 * len(rungs) + 1, 4)
    axes = fig.subplots(1, len(rungs), sharey=True, squeeze=False)[0]
    for ax, rung in zip(axes, rungs, strict=True):
        for i, pid in enumerate(policies):
            rows = ladder[(ladder["rung"] == rung) & (ladder["policy"] == pid)]
            if rows.empty:
                continue
            rows = rows.sort_values("env_steps", kind="stable")
            # Clipped at 0: the CSV rounds rate and bounds to 4 decimals.
            below = (rows["win_rate"] - rows["win_lo"]).clip(lower=0)
            above = (rows["win_hi"] - rows["win_rate"]).clip(lower=0)
            color = f"C{i % 10}"
            ax.errorbar(
                rows["env_steps"],
                rows["win_rate"],
                yerr=[below, above],
                color=color,
                marker="o",
                capsize=3,
                label=f"{pid} win rate",
            )
            ax.plot(rows["env_steps"], rows["score"], color=color, ls=":", label=f"{pid} score")
        ax.set_title(f"vs {rung}")
        ax.set_xlabel("env steps")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("win rate (Wilson interval), score dotted")
    axes[0].legend(fontsize="small")
    fig.suptitle(f"{title}: reference ladder")
    return fig
