"""The reference ladder: fixed opponents that say how strong a policy is in absolute terms.

Ratings inside a league are relative (a league of weak players can rate itself
high); a ladder of fixed rungs of known strength is not. The rungs of an env
are the random policy, the reference bots of `league.bots` (tic-tac-toe:
perfect play; connect four: one-move lookahead, negamax depth 2 and 4), and any
rung a user registers with `register_rung`. `evaluate_ladder` plays a policy
against every rung, exactly half the games in each seat, greedy by default,
with Wilson intervals. `LadderEvaluation` does that during training, off the
training clock, and writes `ladder.csv` and TensorBoard scalars.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from league._io import append_csv_rows
from league.bots import reference_bots
from league.evaluate import EvalResult, play_games
from league.policies import RandomPolicy
from league.training.observers import Observer

if TYPE_CHECKING:
    from league.training.trainer import Trainer

LADDER_FILE = "ladder.csv"
LADDER_COLUMNS = (
    "time",
    "env_steps",
    "policy",
    "rung",
    "games",
    "wins",
    "draws",
    "losses",
    "score",
    "win_rate",
    "win_lo",
    "win_hi",
)

# env name (as the wrappers report it) -> rung name -> a function that builds the rung.
_REGISTERED: dict[str, dict[str, Callable[[], Any]]] = {}
# Random plies at the start of every ladder game, per env: a greedy policy against
# a deterministic bot would otherwise replay one game per seat. Connect four: two
# random moves each (2,401 openings). Tic-tac-toe needs none: its perfect player
# breaks ties at random and stays perfect, where random openings could hand one
# side a lost position.
OPENING_PLIES = {"connect_four_v3": 4}


def register_rung(env_name: str, name: str, make: Callable[[], Any]) -> None:
    """Add a rung to the ladder of `env_name` (e.g. "connect_four_v3"): `make()` returns
    a fixed policy (``act(obs_batch, mask_batch)``), such as a bot of your own."""
    _REGISTERED.setdefault(env_name, {})[name] = make


def unregister_rung(env_name: str, name: str) -> None:
    """Take a rung added with `register_rung` off the ladder."""
    _REGISTERED.get(env_name, {}).pop(name, None)


def ladder_rungs(
    env_name: str, action_space: Any, observation_space: Any = None, seed: int = 0
) -> dict:
    """Rung name -> fixed policy, weakest first: random, the built-in bots, then yours."""
    random = RandomPolicy(action_space, seed=seed, observation_space=observation_space)
    rungs: dict[str, Any] = {"random": random}
    rungs.update(reference_bots(env_name, seed))
    rungs.update({name: make() for name, make in _REGISTERED.get(env_name, {}).items()})
    return rungs


def evaluate_ladder(
    env_fn: Any,
    policies: dict[str, Any],
    rungs: dict[str, Any],
    games: int = 100,
    *,
    seed: int = 0,
    num_envs: int = 16,
    env_kwargs: dict[str, Any] | None = None,
    pad: bool = False,
    opening_plies: int | None = None,
) -> list[EvalResult]:
    """Every policy (name -> `PolicyHandle` or fixed policy) against every rung, from
    random openings of `opening_plies` (default: the env's, OPENING_PLIES)."""
    if opening_plies is None:
        opening_plies = OPENING_PLIES.get(_env_name(env_fn, env_kwargs), 0)
    return [
        play_games(
            env_fn,
            policy,
            rung,
            games=games,
            num_envs=num_envs,
            seed=seed,
            policy_name=name,
            opponent_name=rung_name,
            env_kwargs=env_kwargs,
            pad=pad,
            opening_plies=opening_plies,
        )
        for name, policy in policies.items()
        for rung_name, rung in rungs.items()
    ]


def _env_name(env_fn: Any, env_kwargs: dict[str, Any] | None) -> str:
    import wrappers

    env = wrappers.multiagent(env_fn, env_kwargs=env_kwargs)
    try:
        return env.name
    finally:
        env.close()


def ladder_row(result: EvalResult, env_steps: int) -> list[Any]:
    lo, hi = result.interval()
    return [
        round(time.time(), 3),
        env_steps,
        result.policy,
        result.opponent,
        result.games,
        result.wins,
        result.draws,
        result.losses,
        round(result.score, 4),
        round(result.win_rate, 4),
        round(lo, 4),
        round(hi, 4),
    ]


class LadderEvaluation(Observer):
    """Every `seconds` of training (and when the run ends), the `top` learners by
    rating play `games` games, greedy, against every rung. The time it takes is
    not counted against the run's `max_seconds`."""

    def __init__(self, rungs: dict[str, Any], seconds: float, games: int, top: int) -> None:
        self.rungs = rungs
        self.seconds = seconds
        self.games = games
        self.top = top
        self.rows: list[list[Any]] = []
        self.due = 0.0

    def on_start(self, trainer: Trainer) -> None:
        self.due = time.monotonic() + self.seconds

    def on_iteration(self, trainer: Trainer) -> None:
        if time.monotonic() >= self.due:
            with trainer.loop.off_the_clock():
                self.evaluate(trainer)
            self.due = time.monotonic() + self.seconds

    def on_stop(self, trainer: Trainer, reason: str) -> None:
        # Short runs (tests, demos) skip it; so does a run that stopped on an error.
        if reason != "error" and trainer.state.elapsed >= self.seconds:
            self.evaluate(trainer)
        self.flush(trainer)

    def on_checkpoint(self, trainer: Trainer) -> None:
        self.flush(trainer)

    def evaluate(self, trainer: Trainer) -> list[EvalResult]:
        board = trainer.league.leaderboard()
        top = board[board["kind"] == "learner"]["policy"].head(self.top).tolist()
        policies = {pid: trainer.policy_handle(pid, deterministic=True) for pid in top}
        config = trainer.config
        results = evaluate_ladder(
            trainer.env_fn,
            policies,
            self.rungs,
            self.games,
            seed=config.seed + trainer.state.iteration,
            env_kwargs=config.env_kwargs or None,
            pad=config.pad,
        )
        for result in results:
            self.rows.append(ladder_row(result, trainer.state.env_steps))
            trainer.scalar(f"{result.policy}/ladder_{result.opponent}", result.score)
        return results

    def flush(self, trainer: Trainer) -> None:
        if self.rows:
            append_csv_rows(Path(trainer.run_dir.path) / LADDER_FILE, LADDER_COLUMNS, self.rows)
            self.rows.clear()
