"""Collection: every reward lands on the decision that earned it; inactive steps never sampled."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from pettingzoo import AECEnv

import wrappers
from league.algos import make_algorithm
from league.collect import Actor, Collector, SampleBuffer, SingleActing

TURNS = 3  # decisions per seat per episode
BONUS = 10.0


class DelayedRewardGame(AECEnv):
    """Two seats alternate; a move worth `action + 1` is paid on the *next* env step.

    The last move is paid at once, and the seat with the larger total gets
    +10 (the other -10) at the final step, while the other seat is waiting.
    So every reward reaches the env after the decision that earned it, often
    during the other seat's turn.
    """

    def __init__(self):
        super().__init__()
        self.metadata = {"name": "delayed_reward_v0", "is_parallelizable": False}
        self.possible_agents = ["first", "second"]
        self._obs_space = spaces.Box(0.0, 10.0, (2,), np.float32)
        self._act_space = spaces.Discrete(3)

    def observation_space(self, agent):
        return self._obs_space

    def action_space(self, agent):
        return self._act_space

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos = {a: {} for a in self.agents}
        self.turn = 0
        self.owed = None
        self.totals = dict.fromkeys(self.agents, 0.0)
        self.agent_selection = "first"

    def observe(self, agent):
        return np.array([self.turn, self.possible_agents.index(agent)], dtype=np.float32)

    def step(self, action):
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        self.rewards = dict.fromkeys(self.agents, 0.0)
        if self.owed is not None:
            owner, amount = self.owed
            self.rewards[owner] += amount
        value = float(action) + 1.0
        self.totals[agent] += value
        self.owed = (agent, value)
        self.turn += 1
        if self.turn == 2 * TURNS:
            self.rewards[agent] += value
            self.owed = None
            first, second = self.totals["first"], self.totals["second"]
            if first != second:
                winner, loser = ("first", "second") if first > second else ("second", "first")
                self.rewards[winner] += BONUS
                self.rewards[loser] -= BONUS
            self.terminations = dict.fromkeys(self.agents, True)
        self._accumulate_rewards()
        self.agent_selection = "second" if agent == "first" else "first"


class SelfPlay:
    def __init__(self):
        self.results = []

    def assign(self, env_id):
        return ["learner", "learner"]

    def report(self, env_id, result):
        self.results.append(result)


@pytest.mark.parametrize(
    ("num_workers", "batch_size"),
    [(0, None), (2, 2)],
    ids=["serial, all envs per step", "2 workers, half the envs per recv"],
)
def test_rewards_reach_the_decision_that_earned_them(num_workers, batch_size):
    torch.set_num_threads(1)
    vec = wrappers.vector(
        DelayedRewardGame, num_envs=4, num_workers=num_workers, batch_size=batch_size
    )
    algo = make_algorithm("ppo", vec.observation_spaces[0], vec.action_spaces[0], seed=0)
    actor = Actor("learner", SingleActing(algo, learns=True), buffer=SampleBuffer(False))
    mapping = SelfPlay()
    collector = Collector(vec, mapping, {"learner": actor})
    try:
        collector.start(seed=0)
        while len(mapping.results) < 20:
            collector.step()
    finally:
        vec.close()
    batch = actor.buffer.take(actor.buffer.count)
    # With part of the envs per step, some envs are mid-episode now: keep the
    # samples of finished episodes (each seat's rows up to its last episode end).
    keep = np.zeros(len(batch["rewards"]), dtype=bool)
    for e in range(4):
        for s in range(2):
            mine = np.flatnonzero((batch["env"] == e) & (batch["seat"] == s))
            ends = mine[batch["terminated"][mine]]
            if len(ends):
                keep[mine[mine <= ends[-1]]] = True
    batch = {k: v[keep] for k, v in batch.items()}
    finished = len(mapping.results)

    # Only active decisions are sampled: TURNS per seat per finished episode.
    assert len(batch["rewards"]) == finished * 2 * TURNS
    earned = batch["actions"].astype(np.float32) + 1.0
    last = batch["terminated"]
    assert last.sum() == finished * 2
    # Every decision but the last carries exactly what its move was worth.
    np.testing.assert_array_equal(batch["rewards"][~last], earned[~last])
    # The last decision also carries the match bonus, paid while that seat waited.
    bonus = batch["rewards"][last] - earned[last]
    assert set(np.unique(bonus)) <= {-BONUS, 0.0, BONUS}
    assert bonus.sum() == 0.0
    # Seat returns reported to the mapping equal the summed rewards of its samples.
    assert sum(sum(r.returns) for r in mapping.results) == batch["rewards"].sum()
    # Each seat's segment is its decisions in order, ending at the episode end.
    assert np.all(batch["segment_end"][last])
