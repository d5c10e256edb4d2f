"""Every installed classic, butterfly, sisl and mpe2 env, and Atari pong, played
through two full episodes with random legal actions, the contract checked at
every step (docs/contract.md). PettingZoo envs run both as AEC and, where the
registry has one, as parallel envs; mpe2 envs both ways too."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import mpe2.all_modules
import numpy as np
import pettingzoo
import pytest
from gymnasium import spaces

import wrappers

FAMILIES = ("classic/", "butterfly/", "sisl/")

# Keyword arguments that keep episodes short, and that make seats die
# mid-episode where the env allows it (KAZ, multiwalker), so dead seats are
# exercised. Chess, connect four, tic-tac-toe, hanabi and the hold'em games end
# by their own rules within a few hundred turns of random play.
KWARGS: dict[str, dict[str, Any]] = {
    "classic/go-v5": {"board_size": 5},
    "classic/rps-v2": {"max_cycles": 10},
    "butterfly/cooperative_pong-v6": {"max_cycles": 60},
    "butterfly/knights_archers_zombies-v11": {"max_cycles": 300, "spawn_delay": 2},
    "butterfly/pistonball-v6": {"max_cycles": 15},
    "sisl/multiwalker-v9": {"max_cycles": 300, "terminate_on_fall": False, "remove_on_fall": True},
    "sisl/pursuit-v5": {"max_cycles": 40},
    "atari/pong-v3": {"max_cycles": 60},
}
MPE_KWARGS = {"max_cycles": 10}
SLOW = {"classic/chess-v6", "butterfly/pistonball-v6", "atari/pong-v3"}
# Board games whose every episode starts from the same position.
FIXED_START = {
    "classic/chess-v6",
    "classic/connect_four-v3",
    "classic/go-v5",
    "classic/tictactoe-v3",
}
# Envs where some seat must die before the episode ends with these kwargs and seed.
DEATHS = {"butterfly/knights_archers_zombies-v11", "sisl/multiwalker-v9"}
# Envs whose action masks must forbid some move during these two episodes (two
# random connect-four games rarely fill a column: test_bad_input covers its mask).
MASKED = {
    "classic/chess-v6",
    "classic/go-v5",
    "classic/hanabi-v5",
    "classic/leduc_holdem-v4",
    "classic/texas_holdem-v4",
    "classic/texas_holdem_no_limit-v6",
    "classic/tictactoe-v3",
}


def _cases() -> list[Any]:
    cases = []
    for env_id in sorted(set(pettingzoo.aec_registry) | set(pettingzoo.parallel_registry)):
        if not env_id.startswith(FAMILIES):
            continue
        marks = [pytest.mark.slow] if env_id in SLOW else []
        for mode in ("aec", "parallel"):
            if env_id in getattr(pettingzoo, f"{mode}_registry"):
                cases.append(pytest.param(mode, env_id, marks=marks, id=f"{mode}-{env_id}"))
    for name, module in sorted(mpe2.all_modules.mpe_environments.items()):
        cases.append(pytest.param("aec", module, id=f"aec-{name}"))
        cases.append(pytest.param("parallel", module, id=f"parallel-{name}"))
    cases.append(pytest.param("parallel", "atari/pong-v3", marks=pytest.mark.slow, id="atari/pong"))
    return cases


def _build(mode: str, env: Any) -> Any:
    if not isinstance(env, str):  # an mpe2 module
        fn = env.env if mode == "aec" else env.parallel_env
        return wrappers.multiagent(fn, env_kwargs=MPE_KWARGS)
    kwargs = KWARGS.get(env, {})
    if mode == "parallel":  # the registry id itself: parallel is what the wrapper picks
        wrapped = wrappers.multiagent(env, env_kwargs=kwargs)
        assert isinstance(wrapped, wrappers.ParallelMultiAgentEnv)
        return wrapped
    return wrappers.multiagent(pettingzoo.make("aec", env, **kwargs))


@dataclass
class Tracker:
    """What the test knows about the current episode, seat by seat."""

    n: int
    alive: list[bool] = field(init=False)
    returns: list[float] = field(init=False)
    decisions: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.new_episode()

    def new_episode(self) -> None:
        self.alive = [True] * self.n
        self.returns = [0.0] * self.n
        self.decisions = [0] * self.n


def _check_obs(env: Any, i: int, obs: Any) -> None:
    space = env.observation_spaces[i]
    assert isinstance(obs, np.ndarray), f"seat {i}: observation is {type(obs).__name__}"
    assert obs.shape == space.shape and obs.dtype == space.dtype, (
        f"seat {i}: observation {obs.shape} {obs.dtype} does not fit {space}"
    )


def _check_seats(env: Any, obs: list, infos: list[dict], turn_based: bool) -> list[bool]:
    """Invariants of every returned step: masks, active seats, zeros when inactive."""
    active = [info["is_active"] for info in infos]
    assert all(type(a) is bool for a in active)
    if turn_based:
        assert sum(active) == 1, f"turn-based: expected one active seat, got {active}"
    else:
        assert any(active)
    for i, (o, info) in enumerate(zip(obs, infos, strict=True)):
        _check_obs(env, i, o)
        if not active[i]:
            assert not o.any(), f"seat {i} is inactive but observes non-zeros"
        if isinstance(env.action_spaces[i], spaces.Discrete):
            mask = info["action_mask"]
            assert mask.dtype == bool and mask.shape == (env.action_spaces[i].n,)
            assert mask.any()
            if not active[i]:
                assert mask.all(), f"seat {i} is inactive but its mask forbids actions"
    return active


def _play(
    env: Any, env_id: str, turn_based: bool, random_legal: Any, episodes: int, max_steps: int
) -> dict:
    rng = np.random.default_rng(0)
    n = env.num_agents
    obs, infos = env.reset(seed=0)
    assert len(obs) == len(infos) == n
    first_obs = [o.copy() for o in obs]
    first_active = _check_seats(env, obs, infos, turn_based)
    if not turn_based:
        assert all(first_active), "every seat starts active in a parallel env"
    track = Tracker(n)
    done = steps = deaths = restricted = 0
    handed_out: list[tuple[np.ndarray, np.ndarray]] = []
    while done < episodes:
        assert steps < max_steps, f"{episodes} episodes not done in {max_steps} steps"
        active = [info["is_active"] for info in infos]
        restricted += any(
            active[i] and not infos[i].get("action_mask", np.ones(1, bool)).all() for i in range(n)
        )
        # Inactive seats have all-True masks, so they send random actions that
        # may be illegal for the env: the wrapper must ignore them.
        actions = random_legal(env, infos, rng)
        obs, rewards, terminated, truncated, infos = env.step(actions)
        steps += 1
        for values in (obs, rewards, terminated, truncated, infos):
            assert isinstance(values, list) and len(values) == n
        assert all(type(r) is float for r in rewards)
        assert all(type(f) is bool for f in terminated + truncated)
        # Arrays handed out earlier must not change under the caller's feet.
        for given, copy in handed_out:
            np.testing.assert_array_equal(given, copy)
        handed_out = [(o, o.copy()) for o in obs]
        ended_now = [terminated[i] or truncated[i] for i in range(n)]
        for i in range(n):
            track.decisions[i] += active[i]
            track.returns[i] += rewards[i]
            assert not (terminated[i] and truncated[i])
            if ended_now[i]:
                assert track.alive[i], f"seat {i} ended twice in one episode"
                track.alive[i] = False
                _check_obs(env, i, infos[i]["final_obs"])
                handed_out.append((infos[i]["final_obs"], infos[i]["final_obs"].copy()))
                episode = infos[i]["episode"]
                assert episode["return"] == pytest.approx(track.returns[i])
                assert episode["length"] == track.decisions[i]
            else:
                assert "final_obs" not in infos[i] and "episode" not in infos[i]
        assert env.episode_ended == (not any(track.alive))
        if not any(track.alive):
            # Auto-reset: this step already shows the next episode's first turn.
            done += 1
            track.new_episode()
            now_active = _check_seats(env, obs, infos, turn_based)
            assert sum(now_active) == sum(first_active)
            if not turn_based:
                assert all(now_active)
            if env_id in FIXED_START:
                assert now_active == first_active
                for o, first in zip(obs, first_obs, strict=True):
                    np.testing.assert_array_equal(o, first)
            continue
        now_active = _check_seats(env, obs, infos, turn_based)
        for i in range(n):
            if rewards[i]:
                assert ended_now[i] or now_active[i], (
                    f"seat {i} got reward {rewards[i]} while neither deciding nor ending"
                )
            if not track.alive[i]:
                assert not now_active[i], f"dead seat {i} is active"
                if not ended_now[i]:
                    assert rewards[i] == 0.0 and not terminated[i] and not truncated[i]
                    deaths += 1
            if now_active[i]:
                assert track.alive[i]
    return {"steps": steps, "dead_seat_steps": deaths, "restricted_steps": restricted}


@pytest.mark.parametrize(("mode", "env"), _cases())
def test_two_episodes_keep_the_contract(mode: str, env: Any, random_legal: Any) -> None:
    env_id = env if isinstance(env, str) else ""
    wrapped = _build(mode, env)
    turn_based = mode == "aec"
    n = wrapped.num_agents
    assert n == len(wrapped.possible_agents) == len(wrapped.roles)
    assert len(wrapped.observation_spaces) == len(wrapped.action_spaces) == n
    stats = _play(wrapped, env_id, turn_based, random_legal, episodes=2, max_steps=20_000)
    if env_id in DEATHS:
        assert stats["dead_seat_steps"] > 0, "expected a seat to die before the episode ended"
    if env_id in MASKED:
        assert stats["restricted_steps"] > 0, "expected the action mask to forbid some move"
    wrapped.close()
