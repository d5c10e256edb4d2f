"""Observers see every training event in order; budgets and shutdown are exact."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import league
from league.training import Observer

TTT = "classic/tictactoe-v3"
FAST = dict(num_envs=8, rollout=32, batch_size=256, progress=False, tensorboard=False)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


class Recorder(Observer):
    """Writes down every event, with what it carries."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_start(self, trainer):
        self.events.append(("start", trainer.state.env_steps))

    def on_iteration(self, trainer):
        self.events.append(("iteration", trainer.state.iteration))

    def on_update(self, trainer, policy_id, samples, stats):
        self.events.append(("update", policy_id, samples, trainer.state.learner_steps[policy_id]))

    def on_match(self, trainer, result):
        self.events.append(("match", tuple(result.policies)))

    def on_snapshot(self, trainer, snapshot_id, learner_id):
        self.events.append(("snapshot", snapshot_id, learner_id))

    def on_checkpoint(self, trainer):
        self.events.append(("checkpoint", trainer.state.env_steps))

    def on_stop(self, trainer, reason):
        self.events.append(("stop", reason))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_observer_sees_every_event_in_order(tmp_path: Path, mode: str):
    recorder = Recorder()
    run = league.train(
        TTT,
        num_policies=2,
        mode=mode,
        total_steps=6_144,
        run_dir=str(tmp_path),
        observers=[recorder],
        league={"snapshot_every": 512, "snapshot_min_steps": 512, "snapshot_win_rate": None},
        **FAST,
    )
    events = recorder.events
    kinds = [e[0] for e in events]
    assert kinds[:2] == ["start", "checkpoint"] and kinds[-2:] == ["checkpoint", "stop"]
    assert events[-1] == ("stop", "budget")
    assert kinds.count("start") == kinds.count("stop") == 1
    iterations = [e[1] for e in events if e[0] == "iteration"]
    assert iterations == list(range(1, len(iterations) + 1))
    matches = [e for e in events if e[0] == "match"]
    assert len(matches) == len(league.records.read_matches(tmp_path))
    # Each learner's updates arrive in order and add up to its committed step count.
    committed = json.loads((tmp_path / "trainer.json").read_text())["learner_steps"]
    for pid in ("p0", "p1"):
        updates = [e for e in events if e[0] == "update" and e[1] == pid]
        assert updates, pid
        assert sum(e[2] for e in updates) == updates[-1][3] == committed[pid]
    # A snapshot follows the update that reached its step, and names its learner.
    snapshots = [i for i, e in enumerate(events) if e[0] == "snapshot"]
    assert snapshots
    for i in snapshots:
        _, sid, learner = events[i]
        previous = events[i - 1]
        assert previous[0] == "update" and previous[1] == learner
        assert sid == f"{learner}@{previous[3]}"
    assert set(run.league.snapshots()) == {events[i][1] for i in snapshots}


def test_max_seconds_is_kept_within_one_minibatch(tmp_path: Path):
    # An update of 1000 epochs takes far longer than the whole budget; the time
    # budget must cut it short instead of waiting for it.
    recorder = _Clock()
    league.train(
        TTT,
        policies=[{"id": "slow", "algo": "ppo", "update_epochs": 1000, "num_minibatches": 8}],
        max_seconds=4.0,
        total_steps=0,
        run_dir=str(tmp_path),
        observers=[recorder],
        **FAST,
    )
    assert recorder.trained, "no update happened"
    # Uncut, that update alone would take about 40 s; the margin is for a loaded machine.
    assert recorder.stopped - recorder.started < 4.0 + 2.0


class _Clock(Observer):
    trained = False

    def on_start(self, trainer):
        self.started = time.monotonic()

    def on_update(self, trainer, policy_id, samples, stats):
        self.trained = True

    def on_stop(self, trainer, reason):
        self.stopped = time.monotonic()


def test_an_async_run_saves_what_it_trained(tmp_path: Path):
    league.train(
        TTT,
        num_policies=1,
        mode="async",
        max_policy_lag=100,  # nothing dropped: every update trains one whole batch
        total_steps=3_000,
        run_dir=str(tmp_path),
        **{**FAST, "tensorboard": True},
    )
    commit = json.loads((tmp_path / "trainer.json").read_text())
    steps = commit["learner_steps"]["p0"]
    saved = torch.load(tmp_path / commit["files"]["p0"], weights_only=False)
    assert steps > 0
    assert commit["files"]["p0"] == f"checkpoints/p0/{steps}.pt"
    assert saved["step"] == steps and saved["version"] * 256 == steps
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    losses = events.Scalars("p0/policy_loss")
    assert len(losses) == saved["version"]  # every update that was saved was also logged
