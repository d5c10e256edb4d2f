"""`league.check.check_env` on real envs: correct ones pass every check, and each way
an env can break training is reported under its code, naming the seat at fault."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv

import wrappers
from league import check
from league.check import CHECKS, check_env
from league.cli import main

BOX = spaces.Box(-np.inf, np.inf, (2,), np.float32)
ZEROS = np.zeros(2, np.float32)
TWO_SEATS = {"a": spaces.Discrete(3), "b": spaces.Discrete(3)}


@pytest.mark.parametrize("env_id", ["classic/tictactoe-v3", "classic/connect_four-v3"])
def test_board_games_pass_every_check(env_id: str) -> None:
    report = check_env(env_id, episodes=3)
    assert report.ok, str(report)
    assert report.codes == ["trainer_defaults"]
    assert report.checks == list(CHECKS)
    assert report.roles == ["player", "player"]
    assert report.step_us > 0 and report.obs_bytes > 0 and report.env_bytes > 0
    assert any(note.startswith("num_envs=") for note in report.defaults)
    assert report.seats[0] in str(report) and "OK" in str(report)


def test_a_parallel_env_passes_every_check() -> None:
    report = check_env("mpe2.simple_spread_v3", episodes=3, env_kwargs={"max_cycles": 10})
    assert report.ok, str(report)
    assert report.codes == ["trainer_defaults"]
    assert report.checks == list(CHECKS)
    assert report.seats == ["agent_0", "agent_1", "agent_2"]
    assert report.obs_bytes == 3 * 18 * 4


def test_an_env_already_list_based_is_checked_in_its_own_loop() -> None:
    report = check_env(wrappers.multiagent("classic/tictactoe-v3"), episodes=2)
    assert report.ok, str(report)
    # No PettingZoo loop to compare its rewards with; a built env is not rebuilt to weigh it.
    assert "rewards" not in report.checks and "episodes" in report.checks
    assert report.env_bytes is None


class NoAgents(ParallelEnv):
    metadata: ClassVar[dict] = {"name": "no_agents_v0"}
    possible_agents: ClassVar[list[str]] = []

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.agents = []
        return {}, {}


def test_an_env_without_agents_is_reported() -> None:
    report = check_env(NoAgents)
    assert not report.ok
    assert report.codes == ["no_seats"]
    assert "no_agents_v0" in str(report) and "possible_agents" in str(report)


def test_an_unsupported_space_is_reported_for_every_seat(tiny_env: Any) -> None:
    report = check_env(lambda: tiny_env(spaces.Text(8), TWO_SEATS, observation="hello"))
    assert report.codes == ["unsupported_space", "unsupported_space"]
    text = str(report)
    assert "seat 'a'" in text and "seat 'b'" in text and "Text(" in text
    assert report.checks == []


def test_a_mask_that_allows_nothing_is_reported(tiny_env: Any) -> None:
    nothing = {"b": np.zeros(3, dtype=bool)}
    report = check_env(lambda: tiny_env(BOX, TWO_SEATS, observation=ZEROS, action_masks=nothing))
    assert report.codes == ["no_legal_action"]
    assert "seat 'b'" in str(report)


def test_nan_rewards_are_reported(tiny_env: Any) -> None:
    report = check_env(lambda: tiny_env(BOX, TWO_SEATS, observation=ZEROS, reward=float("nan")))
    assert report.codes == ["reward_not_finite"]
    assert "seat 'a'" in str(report) and "nan" in str(report)


def test_nan_observations_are_reported(tiny_env: Any) -> None:
    nan = np.array([np.nan, 0.0], np.float32)
    report = check_env(tiny_env(BOX, TWO_SEATS, observation=nan))  # a built env is checked too
    assert report.codes == ["observation_not_finite"]
    assert "'a'" in str(report) and "'b'" in str(report)


class KeepsDoneSeat(ParallelEnv):
    """Seat 'a' terminates at the first step but stays in `agents`; 'b' plays three."""

    metadata: ClassVar[dict] = {"name": "keeps_done_seat_v0"}
    possible_agents: ClassVar[list[str]] = ["a", "b"]

    def observation_space(self, agent: str) -> spaces.Space:
        return BOX

    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(2)

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.agents = list(self.possible_agents)
        self._t = 0
        return {a: ZEROS for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, ...]:
        self._t += 1
        live = list(self.agents)
        terminations = {"a": True, "b": self._t >= 3}
        if self._t >= 3:
            self.agents = []  # the bug: 'a' should have left at the first step
        return (
            {a: ZEROS for a in live},
            dict.fromkeys(live, 1.0),
            {a: terminations[a] for a in live},
            dict.fromkeys(live, False),
            {a: {} for a in live},
        )


def test_a_parallel_seat_that_acts_after_it_is_done_is_reported() -> None:
    report = check_env(KeepsDoneSeat)
    assert report.codes == ["acts_after_done"]
    assert "['a']" in str(report) and "keeps_done_seat_v0" in str(report)


class ForgetsDeadSteps(AECEnv):
    """Two seats take turns; the game ends after four moves. Its dead steps only pass
    the turn on instead of removing the seat, so the game would never end."""

    metadata: ClassVar[dict] = {"name": "forgets_dead_steps_v0"}
    possible_agents: ClassVar[list[str]] = ["a", "b"]

    def observation_space(self, agent: str) -> spaces.Space:
        return BOX

    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(2)

    def observe(self, agent: str) -> np.ndarray:
        return ZEROS

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos = {a: {} for a in self.agents}
        self.agent_selection = "a"
        self._moves = 0

    def step(self, action: Any) -> None:
        if action is not None:
            self._moves += 1
            self.terminations = dict.fromkeys(self.agents, self._moves >= 4)
        self.agent_selection = "b" if self.agent_selection == "a" else "a"


def test_an_aec_seat_kept_after_its_dead_step_is_reported() -> None:
    report = check_env(ForgetsDeadSteps)
    assert report.codes == ["acts_after_done"]
    assert "seat 'a'" in str(report) and "dead step" in str(report)


def test_a_slow_env_is_flagged_with_its_step_cost(tiny_env: Any) -> None:
    class Slow(tiny_env):
        def step(self, actions: dict[str, Any]) -> tuple[dict, ...]:
            time.sleep(0.01)
            return super().step(actions)

    report = check_env(lambda: Slow(BOX, TWO_SEATS, observation=ZEROS), episodes=2)
    assert report.ok, str(report)
    assert "slow_step" in report.codes
    assert report.step_us >= 10_000
    assert "slow_step" in str(report) and "ms" in str(report)


def test_an_env_that_does_not_replay_its_seed_cannot_have_its_rewards_compared(
    tiny_env: Any,
) -> None:
    class Unseeded(tiny_env):
        """Rewards from a generator that reset(seed=...) does not seed."""

        def step(self, actions: dict[str, Any]) -> tuple[dict, ...]:
            obs, rewards, terminations, truncations, infos = super().step(actions)
            rewards = {a: float(self._rng.random()) for a in rewards}
            return obs, rewards, terminations, truncations, infos

    def make() -> Any:
        env = Unseeded(BOX, TWO_SEATS, observation=ZEROS)
        env._rng = np.random.default_rng()
        return env

    report = check_env(make, episodes=2)
    assert report.ok, str(report)  # a warning: training works, the check cannot verify it
    assert "not_reproducible" in report.codes
    assert "rewards" not in report.checks and "episodes" in report.checks


def test_main_prints_the_report_and_returns_whether_it_is_ok(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "classic/tictactoe-v3", "--episodes", "2"]) == 0
    assert "check_env 'tictactoe_v3': OK" in capsys.readouterr().out
    assert main(["check", "classic/tictactoe-v3", "--env-kwargs", '{"no_such_option": 1}']) == 1
    out = capsys.readouterr().out
    assert "env_does_not_build" in out and "no_such_option" in out


def test_an_endless_episode_is_reported_once(tiny_env: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(check, "MAX_EPISODE_STEPS", 30)
    report = check_env(lambda: tiny_env(BOX, TWO_SEATS, observation=ZEROS, length=10**9))
    assert report.ok, str(report)
    assert report.codes.count("episode_did_not_end") == 1
    assert "rewards" not in report.checks and "30 steps" in str(report)


def test_an_exception_the_check_cannot_classify_is_reported_with_its_type(
    tiny_env: Any,
) -> None:
    class Breaks(tiny_env):
        def step(self, actions: dict[str, Any]) -> tuple[dict, ...]:
            if self._t == 1:
                raise RuntimeError("the physics engine fell over")
            return super().step(actions)

    report = check_env(lambda: Breaks(BOX, TWO_SEATS, observation=ZEROS, length=3))
    assert report.codes == ["unexpected_error"]
    assert "RuntimeError: the physics engine fell over" in str(report)
    assert "episode 1, after 2 steps" in str(report)
