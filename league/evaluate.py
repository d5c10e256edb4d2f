"""Head-to-head evaluation: games between two policies, seats alternated, with a CI.

Evaluation games are played apart from training (no rating or payoff update),
so a learner is never graded on the data it trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

import wrappers
from league.collect import batch_act
from league.errors import ConfigError


@dataclass
class EvalResult:
    """Outcome of `games` games of `policy` against `opponent`, from `policy`'s side."""

    policy: str
    opponent: str
    games: int
    wins: int
    draws: int
    losses: int
    # (wins, draws, losses) with `policy` in each seat, in the env's seat order (the first
    # to move first in a turn-based game): how much of a score is the first move's.
    by_seat: tuple[tuple[int, int, int], ...] = ()

    @property
    def score(self) -> float:
        """(W + D/2) / G."""
        return (self.wins + 0.5 * self.draws) / max(self.games, 1)

    @property
    def win_rate(self) -> float:
        return self.wins / max(self.games, 1)

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """Wilson score interval of the win rate (95% by default)."""
        return wilson(self.wins, self.games, z)

    def seats_text(self) -> str:
        """W/D/L in each seat, e.g. "seat 0: 100/0/0, seat 1: 97/1/2" ("" if unknown)."""
        return ", ".join(f"seat {i}: {'/'.join(map(str, n))}" for i, n in enumerate(self.by_seat))

    def __str__(self) -> str:
        lo, hi = self.interval()
        seats = f" (W/D/L {self.seats_text()})" if self.by_seat else ""
        return (
            f"{self.policy} vs {self.opponent}: {self.games} games, W {self.wins} "
            f"D {self.draws} L {self.losses}{seats}, win rate {self.win_rate:.3f} "
            f"(95% CI {lo:.3f}-{hi:.3f}), score {self.score:.3f}"
        )


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def play_games(
    env_fn: Any,
    policy: Any,
    opponent: Any,
    games: int = 200,
    *,
    num_envs: int = 16,
    seed: int = 0,
    policy_name: str = "policy",
    opponent_name: str = "opponent",
    env_kwargs: dict[str, Any] | None = None,
    pad: bool = False,
    opening_plies: int = 0,
) -> EvalResult:
    """Play `games` games; `policy` takes each seat in turn, `opponent` every other seat.

    Game k puts `policy` in seat k mod (number of seats), so with an even number
    of games in a two-player game exactly half are played from each seat,
    whichever envs finish first. The first `opening_plies` env steps of every
    game are uniformly random legal moves (seeded by `seed`), for both sides:
    two deterministic players (a greedy policy, a search bot) would otherwise
    replay the same game, and a confidence interval over copies of one game
    says nothing. Each policy is a `PolicyHandle`
    (``run.policy(id)``) or any object whose ``act(obs_batch, mask_batch)`` acts
    for a batch; the env's seats must all share one role (two-player board
    games, rps, ...).
    """
    vec = wrappers.vector(
        env_fn, num_envs=max(1, min(num_envs, games)), env_kwargs=env_kwargs, pad=pad
    )
    try:
        if len(vec.role_names) != 1 or vec.num_agents < 2:
            raise ConfigError(
                f"env {vec.name!r} has {_seats(vec)}; head-to-head evaluation needs two or "
                "more seats that all share one role (rank other envs' policies on the "
                "leaderboard)"
            )
        role = vec.role_names[0]
        num_seats = vec.num_agents
        rng = np.random.default_rng(seed)
        ply = np.zeros(vec.num_envs, dtype=np.int64)  # env steps into the current game
        vec.reset(seed=seed)
        game = np.full(vec.num_envs, -1)  # the game each env plays; -1: none left to start
        started = 0
        for e in range(vec.num_envs):
            game[e], started = (started, started + 1) if started < games else (-1, started)
        outcomes = np.zeros((num_seats, 3), dtype=np.int64)  # W, D, L with policy in seat i
        returns = np.zeros((vec.num_envs, num_seats))
        while (game >= 0).any():
            running = np.flatnonzero(game >= 0)
            focal = np.zeros((vec.num_envs, num_seats), dtype=bool)
            focal[running, game[running] % num_seats] = True
            playing = vec.active & (game >= 0)[:, None]
            opening = (ply < opening_plies)[:, None]
            for chooser, seats in ((policy, focal), (opponent, ~focal)):
                e, s = np.nonzero(playing & seats & ~opening)
                if len(e):
                    obs = vec.obs[role][e, s]
                    masks = vec.action_masks[role]
                    vec.actions[role][e, s] = _actions(
                        chooser, obs, None if masks is None else masks[e, s]
                    )
            e, s = np.nonzero(playing & opening)
            if len(e):
                masks = vec.action_masks[role]
                vec.actions[role][e, s] = _random_actions(
                    vec.action_spaces[0], len(e), None if masks is None else masks[e, s], rng
                )
            vec.send(None, running)
            vec.recv()
            ply[running] += 1
            done = vec.terminated | vec.truncated
            returns[done] = vec.episode_return[done]
            for e in np.flatnonzero(vec.episode_done & (game >= 0)):
                seat = game[e] % num_seats
                mine = returns[e, seat]
                best_other = np.max(np.delete(returns[e], seat))
                outcomes[seat, 0 if mine > best_other else 2 if mine < best_other else 1] += 1
                returns[e] = 0.0
                ply[e] = 0
                game[e], started = (started, started + 1) if started < games else (-1, started)
    finally:
        vec.close()
    wins, draws, losses = (int(n) for n in outcomes.sum(axis=0))
    by_seat = tuple(tuple(int(n) for n in row) for row in outcomes)
    return EvalResult(
        policy_name, opponent_name, wins + draws + losses, wins, draws, losses, by_seat
    )


def _seats(vec: Any) -> str:
    if vec.num_agents < 2:
        return "one seat"
    return f"seats of several roles {vec.role_names}"


def _random_actions(
    space: Any, rows: int, masks: np.ndarray | None, rng: np.random.Generator
) -> np.ndarray:
    from league.policies import RandomPolicy

    policy = RandomPolicy(space, seed=int(rng.integers(2**31)))
    if masks is not None:
        return policy.act(None, masks)
    return np.stack([policy.act(None) for _ in range(rows)])


def _actions(policy: Any, obs: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if hasattr(policy, "act_batch"):  # a PolicyHandle
        return policy.act_batch(obs, mask)
    return batch_act(policy)(obs, mask)[0]
