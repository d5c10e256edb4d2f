"""PettingZoo -> Sample Factory 2.1.1 multi-agent contract (written for these benchmarks).

Sample Factory's multi-agent contract (what its non-batched sampler reads):
an env object with `num_agents`, `is_multiagent = True`, one shared
`observation_space` / `action_space`; `reset(seed=...) -> (obs_list, info_list)`;
`step(action_list) -> (obs_list, rew_list, terminated_list, truncated_list,
info_list)`, every list of length `num_agents`; the env resets itself when an
episode ends (the returned observations are then the next episode's first
ones). `infos[i]["is_active"] = False` tells the sampler that seat i's next
step is not to be trained on (its samples get policy id -1, masked out).

Only gymnasium + pettingzoo + numpy are imported here (no Sample Factory), so
`plain_pettingzoo.py --adapter sf` can time these adapters alone.

* `ParallelSeats` wraps a PettingZoo parallel env whose seats share spaces
  (pistonball). Box actions are clipped to the action space (as
  Stable-Baselines3 does), so PettingZoo never warns about them.
* `TurnBasedSeats` makes a turn-based AEC game (tic-tac-toe) simultaneous:
  every step both seats "act", but only the action of the seat to move
  (`agent_selection`) is played; the other seat's action is ignored. The seat
  to move observes the board (PettingZoo's `observation` planes from its own
  perspective, flattened) followed by a 1.0 "to move" flag; the waiting seat
  observes all zeros (flag 0.0). Both seats stay active, so Sample Factory
  trains on both samples of every step, the waiting seat's no-op included
  (what its FPS counts: 2 samples per move). There is no legal-move masking in
  Sample Factory 2.1.1's default model, so an illegal move is settled by a
  rule: `illegal="lose"` (default) applies PettingZoo's own rule (that of
  tic-tac-toe's TerminateIllegalWrapper: the game ends, the mover gets -1,
  the other seat 0; applied here before the env sees the move, as that
  wrapper is buggy in pettingzoo 1.24.3); `illegal="random"` replaces the move with a
  uniformly random legal one.
  Rewards: PettingZoo's step rewards for both seats at the move that ends the
  game (win +1 / loss -1 / draw 0), 0 otherwise; the loser's -1 lands on its
  no-op sample of that step.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class ParallelSeats(gym.Env):
    """A PettingZoo parallel env with homogeneous seats as a Sample Factory multi-agent env."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.seats = list(env.possible_agents)
        self.num_agents = len(self.seats)
        self.is_multiagent = True
        self.observation_space = env.observation_space(self.seats[0])
        self.action_space = env.action_space(self.seats[0])
        for seat in self.seats[1:]:
            if (
                env.observation_space(seat) != self.observation_space
                or env.action_space(seat) != self.action_space
            ):
                raise ValueError(
                    "ParallelSeats needs seats that share observation and action spaces"
                )
        self._box = isinstance(self.action_space, spaces.Box)
        self._zero_obs = np.zeros(self.observation_space.shape, self.observation_space.dtype)

    def _action(self, action: Any) -> Any:
        if self._box:
            a = np.asarray(action, dtype=self.action_space.dtype).reshape(self.action_space.shape)
            return np.clip(a, self.action_space.low, self.action_space.high)
        return int(action)

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[list, list]:
        obs, infos = self.env.reset(seed=seed)
        return [obs[s] for s in self.seats], [dict(infos.get(s, ())) for s in self.seats]

    def step(self, actions: Any) -> tuple[list, list, list, list, list]:
        live = set(self.env.agents)
        act = {s: self._action(actions[i]) for i, s in enumerate(self.seats) if s in live}
        obs, rew, term, trunc, info = self.env.step(act)
        rewards = [float(rew.get(s, 0.0)) for s in self.seats]
        terminated = [bool(term.get(s, False)) for s in self.seats]
        truncated = [bool(trunc.get(s, False)) for s in self.seats]
        infos = [dict(info.get(s, ())) for s in self.seats]
        if not self.env.agents:  # episode over for everybody: auto-reset
            obs, _ = self.env.reset()
            return [obs[s] for s in self.seats], rewards, terminated, truncated, infos
        out = []
        for i, s in enumerate(self.seats):
            if s in obs and s in self.env.agents:
                out.append(obs[s])
            else:  # dead before the episode ends (not in pistonball): zeros, not trained on
                out.append(self._zero_obs)
                infos[i]["is_active"] = False
        return out, rewards, terminated, truncated, infos

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self.env.close()


class TurnBasedSeats(gym.Env):
    """A two-player turn-based AEC game as a simultaneous-move SF env (see the module doc)."""

    def __init__(self, env: Any, illegal: str = "lose", seed: int | None = None) -> None:
        if illegal not in ("lose", "random"):
            raise ValueError(f"illegal must be 'lose' or 'random', got {illegal!r}")
        self.env = env
        self.illegal = illegal
        self.seats = list(env.possible_agents)
        self.index = {s: i for i, s in enumerate(self.seats)}
        self.num_agents = len(self.seats)
        self.is_multiagent = True
        board = env.observation_space(self.seats[0])["observation"]
        self.board_size = int(np.prod(board.shape))
        self.observation_space = spaces.Box(0.0, 1.0, (self.board_size + 1,), np.float32)
        self.action_space = env.action_space(self.seats[0])
        self.rng = np.random.default_rng(seed)
        self.mask: np.ndarray | None = None  # legal moves of the seat to move
        self.illegal_moves = 0
        self.moves = 0
        self.games = 0

    def _observe(self) -> list[np.ndarray]:
        mover = self.env.agent_selection
        out = [np.zeros(self.board_size + 1, np.float32) for _ in self.seats]
        o = self.env.observe(mover)
        row = out[self.index[mover]]
        row[: self.board_size] = np.asarray(o["observation"], np.float32).ravel()
        row[self.board_size] = 1.0
        self.mask = np.asarray(o["action_mask"])
        return out

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[list, list]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.env.reset(seed=seed)
        return self._observe(), [{} for _ in self.seats]

    def step(self, actions: Any) -> tuple[list, list, list, list, list]:
        i = self.index[self.env.agent_selection]
        a = int(actions[i])
        self.moves += 1
        infos = [{} for _ in self.seats]
        if not self.mask[a]:
            self.illegal_moves += 1
            if self.illegal == "lose":  # PettingZoo's TerminateIllegalWrapper rule
                rewards = [0.0] * self.num_agents
                rewards[i] = -1.0
                self.games += 1
                self.env.reset()
                done = [True] * self.num_agents
                return self._observe(), rewards, done, [False] * self.num_agents, infos
            legal = np.flatnonzero(self.mask)
            a = int(legal[self.rng.integers(len(legal))])
        self.env.step(a)
        base = self.env.unwrapped
        rewards = [float(base.rewards[s]) for s in self.seats]
        term = any(base.terminations.values())
        trunc = any(base.truncations.values()) and not term
        if term or trunc:
            self.games += 1
            self.env.reset()
        return self._observe(), rewards, [term] * self.num_agents, [trunc] * self.num_agents, infos

    def close(self) -> None:
        self.env.close()


# ------------------------------------------------------------------ factories


def make_pistonball(opts: dict) -> ParallelSeats:
    from _common import pistonball

    return ParallelSeats(
        pistonball(
            max_cycles=opts["max_cycles"],
            obs=opts["obs"],
            frame_stack=opts["frame_stack"],
            continuous=not opts["discrete"],
        )
    )


def make_tictactoe(opts: dict, seed: int | None = None) -> TurnBasedSeats:
    from _common import quiet

    quiet()
    from pettingzoo.classic import tictactoe_v3

    # The illegal-move rule is applied by TurnBasedSeats itself: an illegal
    # move never reaches the env. (In pettingzoo 1.24.3 TerminateIllegalWrapper
    # leaves a stale agent_selection on the wrapper after an illegal move, so
    # the following games' turns go wrong; fixed in later releases.)
    return TurnBasedSeats(tictactoe_v3.env(), illegal=opts["illegal"], seed=seed)


def sf_env_factory(
    opts: dict, full_env_name: str, cfg: Any = None, env_config: Any = None, render_mode: Any = None
):
    """What `register_env` gets (wrapped in functools.partial with `opts`)."""
    seed = None if env_config is None else int(env_config.get("env_id", 0))
    if opts["env"] == "pistonball":
        return make_pistonball(opts)
    if opts["env"] == "tictactoe":
        return make_tictactoe(opts, seed=seed)
    raise ValueError(f"unknown env {opts['env']!r}")
