"""End-to-end training: learning, mixed algorithms, run directories, resume, bad configs."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import league
from league.errors import RunDirError
from league.evaluate import play_games

TTT = "classic/tictactoe-v3"
FAST = dict(
    num_envs=8, rollout=32, batch_size=256, progress=False, tensorboard=False, checkpoint_seconds=5
)

# The learning tests: 32 boards acting in one forward pass train the same 256-sample
# batches as FAST's 8 in about 60% of the time.
LEARN = {**FAST, "num_envs": 32, "rollout": 8}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _vs_random(run, policy_id: str, games: int = 200):
    # Greedy, as the ladder plays: a sampled policy this young is still close to random.
    return play_games(
        TTT,
        run.policy(policy_id, deterministic=True),
        run.policy("random"),
        games=games,
        seed=123,
        policy_name=policy_id,
        opponent_name="random",
    )


def test_a_league_run_writes_its_records(tmp_path: Path):
    # That PPO in a league learns is test_ppo_and_dqn_learn_side_by_side's to show.
    league.train(TTT, num_policies=2, total_steps=4_000, run_dir=str(tmp_path), **FAST)
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert set(board["policy"]) >= {"p0", "p1", "random"}
    assert board.loc[board["policy"] == "p0", "games"].item() > 0
    matches = pd.read_csv(tmp_path / "matches.csv.gz")
    assert len(matches) > 0 and set(matches["policies"].str.split(";").sum()) >= {"p0", "p1"}
    payoff = pd.read_csv(tmp_path / "payoff.csv", index_col=0)
    assert {"p0", "p1"} <= set(payoff.index) and {"p0", "p1"} <= set(payoff.columns)
    assert list((tmp_path / "checkpoints" / "p0").glob("*.pt"))


def test_ppo_and_dqn_learn_side_by_side(tmp_path: Path):
    run = league.train(
        TTT,
        policies=[
            {"id": "ppo", "algo": "ppo"},
            {"id": "dqn", "algo": "dqn", "learning_starts": 256, "exploration_steps": 8000},
        ],
        total_steps=20_000,
        run_dir=str(tmp_path),
        **LEARN,
    )
    state = json.loads((tmp_path / "trainer.json").read_text())
    for pid in ("ppo", "dqn"):
        assert state["learner_steps"][pid] > 0
        assert (tmp_path / state["files"][pid]).exists()
        result = _vs_random(run, pid)
        # Random against random wins ~0.44 of games (draws ~0.12): above 0.5 is learnt.
        assert result.interval()[0] > 0.5, str(result)


def test_resume_continues_the_same_run(tmp_path: Path):
    # The batch size left to the planner: a resume with another rollout plans it again.
    options = {**FAST, "batch_size": None}
    first = league.train(TTT, num_policies=2, total_steps=6_000, run_dir=str(tmp_path), **options)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["batch_size"] == 1024 and "batch_size" in saved["planned"]
    steps = first.env_steps
    board = first.leaderboard()
    state = json.loads((tmp_path / "trainer.json").read_text())
    weights = {
        pid: torch.load(tmp_path / f, weights_only=False)["state"]
        for pid, f in state["files"].items()
        if pid in ("p0", "p1")
    }

    loaded = league.load(tmp_path)
    assert loaded.env_steps == steps
    pd.testing.assert_frame_equal(loaded.leaderboard(), board)
    for pid, saved in weights.items():
        now = loaded.policy(pid).policy.state_dict()
        for name, tensor in saved["model"].items():
            assert torch.equal(now["model"][name], tensor)
        assert now["version"] == saved["version"]

    resumed = league.train(
        TTT, resume=str(tmp_path), total_steps=12_000, **{**options, "rollout": 12}
    )
    assert resumed.env_steps >= 12_000
    saved = json.loads((tmp_path / "config.json").read_text())
    assert (saved["rollout"], saved["batch_size"], saved["num_envs"]) == (12, 1056, 8)
    games_before = board.set_index("policy")["games"]
    games_after = resumed.leaderboard().set_index("policy")["games"]
    assert (games_after.loc[games_before.index] >= games_before).all()
    assert games_after.sum() > games_before.sum()


def _committed_steps(run_dir: Path) -> int:
    try:  # trainer.json is replaced atomically: absent or whole
        return json.loads((run_dir / "trainer.json").read_text())["env_steps"]
    except FileNotFoundError:
        return 0


def test_sigkill_mid_run_then_resume(tmp_path: Path):
    run_dir = tmp_path / "run"
    code = (
        "import league, torch; torch.set_num_threads(1);"
        f"league.train({TTT!r}, num_policies=2, total_steps=10**9, run_dir={str(run_dir)!r},"
        " num_envs=8, rollout=32, batch_size=256, progress=False, tensorboard=False,"
        " checkpoint_seconds=1)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while _committed_steps(run_dir) == 0:  # the first checkpoint holds no steps
            assert proc.poll() is None, "training process died"
            assert time.monotonic() < deadline, "no checkpoint of trained steps within 120 s"
            time.sleep(0.2)
        time.sleep(1.5)  # let it write more checkpoints, then kill it mid-flight
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    state = json.loads((run_dir / "trainer.json").read_text())
    assert state["env_steps"] > 0
    resumed = league.train(TTT, resume=str(run_dir), total_steps=state["env_steps"] + 1_024, **FAST)
    assert resumed.env_steps >= state["env_steps"] + 1_024


def test_unknown_algorithm_is_refused_before_training(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown algorithm 'sarsa'"):
        league.train(TTT, policies=["sarsa"], run_dir=str(tmp_path), **FAST)
    assert not (tmp_path / "trainer.json").exists()


def test_batch_rule_names_the_numbers_to_change(tmp_path: Path):
    with pytest.raises(ValueError, match=r"batch_size=300 must be a multiple of .*batch_size=256"):
        league.train(TTT, num_policies=2, run_dir=str(tmp_path), **{**FAST, "batch_size": 300})


def test_default_batch_size_meets_the_batch_rule_for_any_number_of_learners():
    from league.config import TrainConfig
    from league.training.plan import EnvInfo, make_plan

    env = EnvInfo.probe(TTT)
    # 96 envs x 1 decision per step x rollout 16 = 1536 samples per iteration.
    expected = {1: 1536, 2: 1536, 4: 384 * 3, 5: None, 6: 256 * 4}
    for learners, batch in expected.items():
        config = TrainConfig(num_policies=learners, num_envs=96)
        if batch is None:  # 1536 / 5 is no whole share: the rule says to change num_envs/rollout
            with pytest.raises(ValueError, match="Change num_envs or rollout"):
                make_plan(config, env)
            continue
        assert make_plan(config, env).config.batch_size == batch
        assert config.batch_size is None  # the plan resolves a copy; the config is not changed
    # Left open, num_envs is chosen so that the rule holds for any number of learners.
    for learners in (1, 2, 4, 5, 6, 7, 32):
        plan = make_plan(TrainConfig(num_policies=learners), env, cores=2)
        share = plan.config.num_envs * plan.config.rollout / learners
        assert share == int(share) and plan.config.batch_size % share == 0, learners
        assert plan.config.num_envs % 2 == 0  # two halves, one per worker
        assert plan.config.num_envs % max(plan.config.num_workers, 1) == 0


def test_workers_and_envs_follow_the_env_and_the_machine():
    from league.config import TrainConfig
    from league.training.plan import EnvInfo, make_plan

    board = EnvInfo.probe(TTT)
    cheap = dataclasses.replace(board, step_seconds=100e-6)
    costly = dataclasses.replace(board, step_seconds=10e-3)
    long_run = TrainConfig(max_seconds=600, total_steps=0)
    assert make_plan(long_run, cheap, cores=2).config.num_workers == 2
    assert make_plan(long_run, cheap, cores=1).config.num_workers == 0
    assert make_plan(long_run, cheap, cores=16).config.num_workers == 8
    short = TrainConfig(total_steps=20_000)  # 2 s of env steps: workers would not pay
    assert make_plan(short, cheap, cores=2).config.num_workers == 0
    # Cheap envs: 192, more for a larger population, so that each forward pass keeps
    # rows enough per learner (a 1024-sample batch per learner per iteration).
    one = TrainConfig(max_seconds=600, total_steps=0, num_policies=1)
    assert make_plan(one, cheap, cores=2).config.num_envs == 192
    six = make_plan(long_run, cheap, cores=2)
    assert (six.config.num_envs, six.config.batch_size) == (384, 1024)
    assert any(note.startswith("num_envs=384: a cheap env step") for note in six.notes)
    many = TrainConfig(max_seconds=600, total_steps=0, num_policies=64)
    assert make_plan(many, cheap, cores=2).config.num_envs == 2048
    two = TrainConfig(max_seconds=600, total_steps=0, num_policies=2)
    assert make_plan(two, costly, cores=2).config.num_envs == 4  # 40 ms of steps
    # With 6 learners a whole share of each iteration per learner needs 6 envs at least.
    assert make_plan(long_run, costly, cores=2).config.num_envs == 6
    # Explicit options win, and the choices and reasons are recorded.
    plan = make_plan(dataclasses.replace(one, num_workers=0), cheap, cores=2)
    assert plan.config.num_workers == 0
    assert any(note.startswith("num_envs=192: a cheap env step") for note in plan.notes)
    big_frames = dataclasses.replace(costly, step_seconds=2e-3, obs_bytes=4 * 2**20)
    plan = make_plan(two, big_frames, cores=2)
    assert plan.config.num_envs == 2 and "512 MiB" in plan.notes[1]


def test_a_busy_machine_does_not_change_the_plan():
    # Benchmark runs started eight at a time on 2 cores once planned 10-30 envs instead of
    # 384: the probe's wall time counted the time slices other processes took from it, and
    # connect four's 0.1 ms step looked like a costly one.
    from league.config import TrainConfig
    from league.training.plan import CHEAP_STEP_SECONDS, EnvInfo, available_cores, make_plan

    c4 = "classic/connect_four-v3"
    idle = EnvInfo.probe(c4).step_seconds
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(min(16 * available_cores(), 64))
    ]
    try:
        time.sleep(0.5)
        busy = EnvInfo.probe(c4)
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()
    assert busy.step_seconds < min(4 * idle, CHEAP_STEP_SECONDS), (idle, busy.step_seconds)
    plan = make_plan(TrainConfig(max_seconds=600, total_steps=0), busy, cores=2)
    assert plan.config.num_envs == 384


def test_unsupported_space_names_space_and_seat(tmp_path: Path):
    # mpe2 continuous actions are a Box: DQN has no model for them.
    with pytest.raises(ValueError, match=r"Box.*seat 'agent_0'|seat 'agent_0'.*Box"):
        league.train(
            "mpe2.simple_v3",
            policies=["dqn"],
            env_kwargs={"continuous_actions": True},
            run_dir=str(tmp_path),
            **{**FAST, "num_envs": 8, "batch_size": 256},
        )


def test_unwritable_run_dir_fails_before_training(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RunDirError, match="not writable"):
        league.train(TTT, num_policies=2, run_dir=str(blocker / "run"), **FAST)


def test_full_disk_fails_before_training(tmp_path: Path):
    import shutil

    free_mb = shutil.disk_usage(tmp_path).free // 2**20
    with pytest.raises(RunDirError, match=r"has only \d+ MiB free"):
        league.train(TTT, num_policies=2, run_dir=str(tmp_path), min_free_mb=free_mb + 1024, **FAST)
    assert not (tmp_path / "trainer.json").exists()


def test_resume_refuses_other_env_and_incomplete_dirs(tmp_path: Path):
    league.train(TTT, num_policies=2, total_steps=2_048, run_dir=str(tmp_path / "ttt"), **FAST)
    with pytest.raises(RunDirError, match="tictactoe"):
        league.train("classic/connect_four-v3", resume=str(tmp_path / "ttt"), **FAST)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text(json.dumps({"num_policies": 2}))
    with pytest.raises(RunDirError, match="no complete checkpoint"):
        league.train(TTT, resume=str(tmp_path / "empty"), **FAST)


def _first_legal(obs, action_mask):
    return int(np.flatnonzero(action_mask)[0])


def test_runs_with_user_fixed_policies_load_and_resume(tmp_path: Path):
    # A user function is not saved with the run: loading still works (the
    # leaderboard, the learners); acting with it, or resuming without it, says
    # what to pass.
    fixed = {"first_legal": _first_legal}
    league.train(
        TTT, num_policies=2, total_steps=2_048, run_dir=str(tmp_path), **FAST, fixed_policies=fixed
    )
    loaded = league.load(tmp_path)
    assert "first_legal" in set(loaded.leaderboard()["policy"])
    assert loaded.policy("p0").act(np.zeros((3, 3, 2), np.int8), np.ones(9, bool)) in range(9)
    with pytest.raises(RuntimeError, match=r"fixed_policies=\{'first_legal': fn\}"):
        loaded.policy("first_legal").act(np.zeros((3, 3, 2), np.int8), np.ones(9, bool))
    with pytest.raises(RunDirError, match="'first_legal'"):
        league.train(TTT, resume=str(tmp_path), total_steps=4_096, **FAST)

    again = league.load(tmp_path, fixed_policies=fixed)
    mask = np.array([False, False, True] + [True] * 6)
    assert again.policy("first_legal").act(np.zeros((3, 3, 2), np.int8), mask) == 2
    resumed = league.train(
        TTT, resume=str(tmp_path), total_steps=4_096, **FAST, fixed_policies=fixed
    )
    assert resumed.env_steps >= 4_096


def _overflowing_tictactoe():
    """Tic-tac-toe whose rewards are finite but so large that squared errors overflow."""
    from pettingzoo.classic import tictactoe_v3
    from pettingzoo.utils import BaseWrapper

    class Overflow(BaseWrapper):
        def last(self, observe=True):
            obs, reward, term, trunc, info = super().last(observe)
            return obs, reward * 1e30, term, trunc, info

    return Overflow(tictactoe_v3.env())


def test_nan_loss_stops_that_learner_and_keeps_its_checkpoint(tmp_path: Path):
    run = league.train(
        _overflowing_tictactoe,
        policies=[{"id": "bad", "algo": "ppo"}],
        total_steps=8_000,
        run_dir=str(tmp_path),
        **FAST,
    )
    state = json.loads((tmp_path / "trainer.json").read_text())
    assert "bad" in state["stopped"] and "non-finite" in state["stopped"]["bad"].lower()
    assert run.env_steps < 8_000  # every learner stopped, so the run ended early
    saved = torch.load(tmp_path / state["files"]["bad"], weights_only=False)["state"]
    for tensor in saved["model"].values():
        assert torch.isfinite(tensor).all()
    obs = np.zeros((3, 3, 2), dtype=np.int8)
    assert run.policy("bad").act(obs, np.ones(9, dtype=bool)) in range(9)


def test_ppo_entropy_bonus_defaults_by_action_space():
    from league.config import TrainConfig
    from league.training.plan import EnvInfo, make_plan
    from league.training.population import Population

    def ent(env_id, **options):
        config = TrainConfig(num_envs=8, rollout=32, **options)
        env = EnvInfo.probe(env_id, env_kwargs=config.env_kwargs)
        population = Population(make_plan(config, env).learners, env)
        return {pid: population[pid].config.ent_coef for pid in population.ids}

    ttt = {"batch_size": 256}
    assert set(ent(TTT, num_policies=2, **ttt).values()) == {0.1}  # Discrete: keeps exploring
    assert set(ent(TTT, num_policies=2, ent_coef=0.02, **ttt).values()) == {0.02}
    mixed = ent(TTT, policies=[{"algo": "ppo", "ent_coef": 0.5}, "ppo"], **ttt)
    assert mixed == {"ppo0": 0.5, "ppo1": 0.1}
    continuous = ent(
        "mpe2.simple_spread_v3",
        num_policies=1,
        batch_size=768,
        env_kwargs={"continuous_actions": True},
    )
    assert set(continuous.values()) == {0.01}  # PPO's own default for Box actions


def _distinct_snapshot_actions(run) -> set[int]:
    """How many different moves each snapshot makes when asked about the empty board
    64 times (its handle's default: sampling)."""
    board = np.zeros((64, 3, 3, 2), np.int8)
    mask = np.ones((64, 9), bool)
    snapshots = [p for p in run.policies if run.league.policies[p].kind == "snapshot"]
    assert snapshots
    return {len(np.unique(run.policy(p).act_batch(board, mask))) for p in snapshots}


@pytest.mark.parametrize(
    ("stack", "mode"),
    [(True, "sync"), (False, "sync"), (False, "async")],
    ids=["stacked", "per_learner", "per_learner_async"],
)
def test_greedy_snapshots_take_their_most_likely_move_after_resume_too(
    tmp_path: Path, stack: bool, mode: str
):
    options = {
        **FAST,
        "stack": stack,
        "mode": mode,
        "num_policies": 2,
        # A snapshot at every update (256 samples), so async runs have one however
        # far their updates lag the envs.
        "league": {"snapshot_every": 256, "snapshot_min_steps": 0},
    }
    greedy = str(tmp_path / "greedy")
    run = league.train(TTT, greedy_snapshots=True, total_steps=3_000, run_dir=greedy, **options)
    assert _distinct_snapshot_actions(run) == {1}
    resumed = league.train(TTT, resume=greedy, total_steps=4_000, **FAST)
    assert json.loads((tmp_path / "greedy" / "config.json").read_text())["greedy_snapshots"]
    assert _distinct_snapshot_actions(resumed) == {1}

    plain = league.train(TTT, total_steps=3_000, run_dir=str(tmp_path / "plain"), **options)
    assert 1 not in _distinct_snapshot_actions(plain)  # young snapshots sample widely


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_anneal_lr_lowers_every_learning_rate_with_the_budget(tmp_path: Path, mode: str):
    # Two DQN gradient steps an update: the rates are the point here, not what is learnt.
    dqn = {"algo": "dqn", "learning_starts": 64, "gradient_steps": 2}
    options = {
        **FAST,
        "num_envs": 6,
        "batch_size": 128,
        "policies": ["ppo", "a2c", dqn],
        "mode": mode,
    }

    run = league.train(TTT, anneal_lr=True, total_steps=6_000, run_dir=str(tmp_path), **options)
    last_start = run.env_steps - 6 * FAST["rollout"]  # where the last iteration set the rates
    scale = 1 - last_start / 6_000
    assert 0 < scale < 0.1
    for pid in ("ppo0", "a2c1", "dqn2"):
        algo = run.policy(pid).policy
        assert algo.learning_rate == pytest.approx(algo.config.learning_rate * scale)

    plain = league.train(TTT, total_steps=1_000, run_dir=str(tmp_path / "plain"), **options)
    for pid in ("ppo0", "a2c1", "dqn2"):
        algo = plain.policy(pid).policy
        assert algo.learning_rate == pytest.approx(algo.config.learning_rate)
