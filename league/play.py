"""A person against a trained policy in the terminal: moves typed as numbers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import wrappers
from league.errors import ConfigError


def render_board(obs: np.ndarray, marks: tuple[str, str] = ("X", "O")) -> str:
    """Text board for classic grid games whose observation is (rows, cols, 2) planes.

    Plane 0 holds the pieces of the seat that observes, plane 1 the other's.
    Columns are numbered so moves can be read off (connect four: the column).
    """
    if obs.ndim != 3 or obs.shape[2] < 2:
        return np.array2string(np.asarray(obs), precision=2, max_line_width=120)
    rows, cols = obs.shape[:2]
    lines = []
    for r in range(rows):
        cells = []
        for c in range(cols):
            if obs[r, c, 0]:
                cells.append(marks[0])
            elif obs[r, c, 1]:
                cells.append(marks[1])
            else:
                cells.append(".")
        lines.append(" ".join(cells))
    lines.append(" ".join(str(c) for c in range(cols)))
    return "\n".join(lines)


def play_terminal(
    run: Any,
    policy_id: str,
    human_seat: int = 0,
    read: Callable[[str], str] | None = None,
    write: Callable[[str], None] = print,
    env_fn: Any = None,
) -> int:
    """Play one game; returns 0. `read`/`write` default to the terminal; `env_fn` (default:
    the run's recorded env) builds the env."""
    read = read or input
    env_fn = env_fn if env_fn is not None else run.config.env
    env = wrappers.multiagent(env_fn, env_kwargs=run.config.env_kwargs or None)
    if not 0 <= human_seat < env.num_agents:
        raise ConfigError(f"seat {human_seat} does not exist; seats: {env.possible_agents}")
    opponent = run.policy(policy_id)
    obs, infos = env.reset()
    write(f"You are seat {human_seat} ({env.possible_agents[human_seat]}) against {policy_id}.")
    while True:
        actions: list[Any] = [0] * env.num_agents
        for seat in range(env.num_agents):
            if not infos[seat]["is_active"]:
                continue
            mask = infos[seat].get("action_mask")
            if seat == human_seat:
                write(render_board(obs[seat]))
                actions[seat] = _ask_move(mask, read, write)
            else:
                actions[seat] = opponent.act(obs[seat], mask)
                write(f"{policy_id} plays {actions[seat]}")
        obs, _, _, _, infos = env.step(actions)
        if env.episode_ended:
            final = infos[human_seat].get("final_obs")
            if final is not None:
                write(render_board(final))
            mine = infos[human_seat]["episode"]["return"]
            others = [
                infos[s]["episode"]["return"] for s in range(env.num_agents) if s != human_seat
            ]
            verdict = (
                "You win!" if mine > max(others) else "You lose." if mine < max(others) else "Draw."
            )
            write(verdict)
            env.close()
            return 0


def _ask_move(
    mask: np.ndarray | None, read: Callable[[str], str], write: Callable[[str], None]
) -> int:
    legal = None if mask is None else np.flatnonzero(mask).tolist()
    while True:
        text = read(f"your move {legal if legal is not None else ''}: ").strip()
        try:
            move = int(text)
        except ValueError:
            write(f"{text!r} is not a number")
            continue
        if legal is not None and move not in legal:
            write(f"{move} is not legal here; legal moves: {legal}")
            continue
        return move
