"""Async and batched collection, policy lag, mixing inside envs, devices, refused combinations."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import league
from league.evaluate import play_games
from league.training import Observer
from league.training.devices import policy_device

TTT = "classic/tictactoe-v3"
C4 = "classic/connect_four-v3"
FAST = dict(num_envs=8, rollout=32, batch_size=256, progress=False, tensorboard=False)
# The learning tests: 32 boards acting in one forward pass train the same 256-sample
# batches as FAST's 8 in about 60% of the time.
LEARN = {**FAST, "num_envs": 32, "rollout": 8}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _beats_random(run) -> None:
    best = run.best() if run.leaderboard()["games"].sum() else "p0"
    # Greedy, as the learning benchmark plays: with the entropy bonus of 0.1 a
    # sampled policy this young is still close to random, and async runs differ
    # from one run to the next (thread timing), so a sampled check was flaky.
    policy = run.policy(best, deterministic=True)
    result = play_games(TTT, policy, run.policy("random"), games=200, seed=7)
    assert result.interval()[0] > 0.5, str(result)


class FinalLags(Observer):
    """Keeps the async learners' policy-lag statistics as they are when the run stops."""

    def on_stop(self, trainer, reason):
        self.lags = trainer.lags()


def test_async_trains_while_collecting_and_mixes_learners_in_one_env(tmp_path: Path):
    final = FinalLags()
    run = league.train(
        TTT,
        num_policies=2,
        mode="async",
        total_steps=30_000,
        run_dir=str(tmp_path),
        observers=[final],
        **LEARN,
    )
    _beats_random(run)
    assert set(final.lags) == {"p0", "p1"}
    assert all(lag.trained > 0 for lag in final.lags.values())
    # Collection waits while batches wait for the learner rather than collecting
    # samples that would be too stale to train on (before, 2.5 dropped per trained).
    dropped = sum(lag.dropped for lag in final.lags.values())
    assert dropped <= 0.1 * sum(lag.trained for lag in final.lags.values()), final.lags
    # Every trained sample's version is recorded; lag stays within max_policy_lag.
    assert all(0 <= lag.lag_min <= lag.lag_max <= 4 for lag in final.lags.values())
    matches = pd.read_csv(tmp_path / "matches.csv.gz")
    pairs = matches["policies"].str.split(";")
    assert any(set(p) == {"p0", "p1"} for p in pairs), "no p0-vs-p1 match inside one env"


def test_batched_collection_trains(tmp_path: Path):
    run = league.train(
        TTT,
        num_policies=2,
        batched=True,
        total_steps=20_000,
        run_dir=str(tmp_path),
        **LEARN,
    )
    _beats_random(run)
    matches = pd.read_csv(tmp_path / "matches.csv.gz")
    # One learner per env batch: never two policies in one env.
    assert (matches["policies"].str.split(";").map(lambda p: len(set(p))) == 1).all()


def test_forced_lag_drops_stale_samples(tmp_path: Path):
    final = FinalLags()
    league.train(
        TTT,
        policies=[{"id": "slow", "algo": "ppo", "update_epochs": 30}],
        mode="async",
        max_policy_lag=0,
        num_batches_to_accumulate=3,
        total_steps=12_000,
        run_dir=str(tmp_path),
        observers=[final],
        **FAST,
    )
    lag = final.lags["slow"]
    assert lag.dropped > 0  # batches queued behind a running update went stale
    assert lag.lag_max == 0  # nothing older than max_policy_lag was trained on


def test_device_rule_policy_i_on_gpu_i_mod_num_gpus():
    assert [policy_device(i, num_gpus=2) for i in range(4)] == [
        "cuda:0",
        "cuda:1",
        "cuda:0",
        "cuda:1",
    ]
    assert [policy_device(i, num_gpus=3) for i in range(4)] == [
        "cuda:0",
        "cuda:1",
        "cuda:2",
        "cuda:0",
    ]
    assert policy_device(5, num_gpus=0) == "cpu"
    assert policy_device(1, num_gpus=2, override="cpu") == "cpu"


def test_learners_land_on_their_devices(tmp_path: Path):
    options = {**FAST, "num_envs": 6, "batch_size": 192}
    run = league.train(TTT, num_policies=3, total_steps=256, run_dir=str(tmp_path), **options)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    expected = [torch.device(f"cuda:{i % gpus}" if gpus else "cpu") for i in range(3)]
    assert [run.policy(f"p{i}").policy.device for i in range(3)] == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "turbo"}, "mode='turbo' is unknown"),
        ({"batched": True, "mix_policies_in_one_env": True}, "mix_policies_in_one_env=True"),
        ({"batched": True, "num_envs": 7}, "multiple of 2"),
        ({"mode": "async", "max_policy_lag": -1}, "max_policy_lag=-1"),
        ({"mode": "async", "num_batches_to_accumulate": 0}, "num_batches_to_accumulate=0"),
        ({"mix_policies_in_one_env": False}, "mode='sync' takes every seat's policy"),
    ],
)
def test_impossible_combinations_are_refused_before_training(tmp_path, options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        league.train(TTT, num_policies=2, run_dir=str(tmp_path), **{**FAST, **options})
    assert not (tmp_path / "trainer.json").exists()


def test_batched_refuses_a_custom_mapping(tmp_path: Path):
    with pytest.raises(ValueError, match="custom mapping"):
        league.train(
            TTT,
            num_policies=2,
            batched=True,
            mapping=lambda env_id, seats: ["p0", "p1"],
            run_dir=str(tmp_path),
            **FAST,
        )


def test_async_with_workers_acts_on_some_envs_while_others_step(tmp_path: Path):
    run = league.train(
        TTT,
        num_policies=2,
        mode="async",
        num_workers=2,
        total_steps=6_000,
        run_dir=str(tmp_path),
        **FAST,
    )
    committed = json.loads((tmp_path / "trainer.json").read_text())
    assert all(steps > 0 for steps in committed["learner_steps"].values())
    assert run.env_steps >= 6_000
    assert len(pd.read_csv(tmp_path / "matches.csv.gz")) > 100


@pytest.mark.parametrize(
    "learners",
    [{"num_policies": 2}, {"policies": ["ppo", "a2c", "dqn"], "stack": False, "num_envs": 6}],
    ids=["stack", "each-on-its-own"],
)
def test_a_seed_repeats_its_run_whether_updates_use_one_thread_or_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, learners: dict
):
    """Sync mode gives an update a second thread when timing finds it faster, so
    the choice varies with the machine's load: it must change no number, or two
    runs of one seed part. A stack (connect four's preset: board CNN, mirror, one
    trunk) and PPO, A2C and DQN learners each on its own."""
    from league.training.loop import UpdateThreads

    records, weights = [], []
    for threads in (1, 2):
        monkeypatch.setattr(UpdateThreads, "pick", lambda self, n=threads: n)
        run_dir = tmp_path / f"threads{threads}"
        options = {**FAST, "num_workers": 0, **learners}
        league.train(C4, total_steps=6_000, seed=3, run_dir=str(run_dir), **options)
        records.append(gzip.decompress((run_dir / "matches.csv.gz").read_bytes()))
        # The last checkpoint of each learner: a few last bits apart would show here
        # long before they changed a sampled move.
        files = sorted(run_dir.glob("checkpoints/*/*.pt"), key=lambda f: int(f.stem))
        last = {f.parent.name: f for f in files}
        weights.append(
            {pid: torch.load(f, weights_only=False)["state"]["model"] for pid, f in last.items()}
        )
    assert records[0] == records[1]
    assert records[0].count(b"\n") > 100  # games played after many updates
    ids = {"p0", "p1"} if "num_policies" in learners else {"ppo0", "a2c1", "dqn2"}
    assert weights[0].keys() == weights[1].keys() == ids
    for pid, model in weights[0].items():
        assert all(torch.equal(model[k], weights[1][pid][k]) for k in model), pid


@pytest.mark.parametrize("device", ["cuda", "cuda:7", "tpu:0"])
def test_a_device_that_does_not_exist_is_refused_before_training(tmp_path: Path, device: str):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has that GPU")
    with pytest.raises(ValueError, match=rf"device='{device}'.*available: \['cpu'"):
        league.train(TTT, num_policies=2, device=device, run_dir=str(tmp_path), **FAST)
    assert not (tmp_path / "trainer.json").exists()


def test_sync_updates_keep_the_faster_thread_count_and_look_again():
    """Two torch threads speed an update up on an idle machine and slow it several
    times over when other processes hold the cores: the loop times both and keeps
    the faster, trying the other again later (less often each time it loses)."""
    from league.training.loop import UpdateThreads

    chooser = UpdateThreads(cores=2, recheck=8)
    picks = []
    for k in range(300):
        threads = chooser.pick()
        picks.append(threads)
        contended = k < 150  # other processes hold the cores, then leave
        seconds = {1: 1.0, 2: 5.0 if contended else 0.6}[threads]
        chooser.record(threads, seconds * 256, 256)
    busy, idle = picks[4:150], picks[230:]
    assert busy.count(1) > 0.9 * len(busy) and 2 in busy  # two threads tried, and dropped
    retries = [k for k in range(5, 150) if picks[k] == 2]
    assert all(b - a > 8 for a, b in itertools.pairwise(retries))  # backing off
    assert idle.count(2) > 0.9 * len(idle)  # idle again: two threads win and stay
    assert UpdateThreads(cores=1).pick() == 1
