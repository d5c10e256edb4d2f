"""The Ray backend: same run directory as the local backends, env workers spread over
nodes, restarts of dead env workers, a dead learner actor, bounded worker memory, bad input,
Ctrl-C during a remote update."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tictactoe_batch

import league
import wrappers
from league.config import TrainConfig
from league.errors import ConfigError
from league.training import Observer
from league.training.plan import EnvInfo, make_plan
from league.training.ray_backend import LearnerLost, RayPopulation
from wrappers.vector import _nbytes

ray = pytest.importorskip("ray", reason="the Ray extra is not installed: pip install 'league[ray]'")

TTT = "classic/tictactoe-v3"
FAST = dict(
    num_envs=8, rollout=16, batch_size=128, progress=False, tensorboard=False, backend="ray"
)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray (2 CPUs) for the module; runs find it started and leave it running."""
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as err:  # pragma: no cover - only where Ray cannot start
        pytest.skip(f"Ray cannot start here: {err}")
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


class Chaos(Observer):
    """Kills an env worker at iteration 2 and the learner actor at iteration `end`,
    and measures the env workers' memory from the start to just before the end."""

    def __init__(self, end: int) -> None:
        self.end = end
        self.rss: dict[str, list[int]] = {}
        self.snapshots = 0
        self.snapshot_bytes = 0

    def on_start(self, trainer):
        self.rss["start"] = trainer.loop.collector.vec.worker_rss_bytes()

    def on_iteration(self, trainer):
        import os
        import signal

        vec = trainer.loop.collector.vec
        if trainer.state.iteration == 2:
            os.kill(ray.get(vec.workers[0].pid.remote()), signal.SIGKILL)
        if trainer.state.iteration == self.end - 1:
            self.rss["end"] = vec.worker_rss_bytes()
            self.snapshots = len(trainer.league.snapshots())
            self.snapshot_bytes = sum(trainer.population.snapshot_bytes().values())
        if trainer.state.iteration == self.end:
            ray.kill(trainer.population.hosts[0])


def test_ray_runs_survive_dead_workers_and_learners_and_move_between_backends(tmp_path: Path):
    chaos = Chaos(end=24)
    with pytest.raises(LearnerLost, match="a Ray actor that trains the learners died"):
        league.train(
            TTT,
            num_policies=2,
            hidden_sizes=[512, 512],  # snapshots big enough to show in the workers' memory
            total_steps=10**9,
            checkpoint_seconds=0.2,
            league={"snapshot_every": 128, "snapshot_min_steps": 128, "max_snapshots": None},
            run_dir=str(tmp_path),
            observers=[chaos],
            ray_learner_actors=2,  # p0 and p1 train in actors of their own
            greedy_snapshots=True,
            **FAST,
        )
    for name in ("config.json", "league.json", "matches.csv.gz", "leaderboard.csv", "trainer.json"):
        assert (tmp_path / name).exists(), name
    assert json.loads((tmp_path / "config.json").read_text())["backend"] == "ray"
    commit = json.loads((tmp_path / "trainer.json").read_text())
    assert min(commit["learner_steps"].values()) > 0  # both learner actors trained
    # The killed env worker came back; its unfinished episodes counted for no one.
    assert commit["dropped_episodes"] > 0
    matches = pd.read_csv(tmp_path / "matches.csv.gz")
    assert len(matches) == json.loads((tmp_path / "league.json").read_text())["matches_written"]
    # Env workers hold envs, never policies: the league grew, their memory did not.
    growth = [b - a for a, b in zip(chaos.rss["start"], chaos.rss["end"], strict=True)]
    assert max(growth) < 8 * 2**20, growth
    # ... where holding the league's snapshots would have taken several times that.
    assert chaos.snapshots * chaos.snapshot_bytes > 3 * 8 * 2**20, chaos.snapshots
    # The dead learner actor left the last checkpoint: it resumes locally, then on Ray.
    local_options = {k: v for k, v in FAST.items() if k != "backend"}
    steps = commit["env_steps"]
    local = league.train(
        TTT, resume=str(tmp_path), total_steps=steps + 512, backend="local", **local_options
    )
    assert local.env_steps >= steps + 512
    games = local.leaderboard().set_index("policy")["games"]
    again = league.train(TTT, resume=str(tmp_path), total_steps=steps + 1_024, **FAST)
    assert again.env_steps >= steps + 1_024
    after = again.leaderboard().set_index("policy")["games"]
    assert (after.loc[games.index] >= games).all()
    # Snapshots restored on Ray still act greedily: one move for 64 askings of one board.
    board, mask = np.zeros((64, 3, 3, 2), np.int8), np.ones((64, 9), bool)
    snapshots = [p for p, r in again.league.policies.items() if r.kind == "snapshot"]
    assert snapshots
    for pid in snapshots:
        assert len(np.unique(again.policy(pid).act_batch(board, mask))) == 1, pid


def test_bad_ray_input_fails_before_training_with_the_reason(tmp_path: Path):
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"cannot reach the Ray cluster at '127.0.0.1:1'"):
        league.train(
            TTT, num_policies=2, ray_address="127.0.0.1:1", run_dir=str(tmp_path / "a"), **FAST
        )
    assert time.monotonic() - started < 10
    with pytest.raises(ConfigError, match=r"ray_gpus=3 asks for more GPUs than the Ray cluster"):
        league.train(TTT, num_policies=2, ray_gpus=3, run_dir=str(tmp_path / "b"), **FAST)
    assert not (tmp_path / "b" / "trainer.json").exists()
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["ray"] = None  # as if Ray were not installed
        import league
        from league.errors import ConfigError
        try:
            league.train({TTT!r}, backend="ray", run_dir={str(tmp_path / "c")!r})
        except ConfigError as err:
            print(err)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "pip install 'league[ray]'" in out.stdout, out.stderr


def test_env_workers_spread_over_the_nodes_of_a_cluster(tmp_path: Path):
    """A two-node cluster on this machine (Ray's test cluster), in its own process: env
    workers on both nodes, the learner actor on the driver's node, its one partner."""
    code = textwrap.dedent(
        f"""
        import json
        import ray
        from ray.cluster_utils import Cluster
        import wrappers
        from league.config import TrainConfig
        from league.training.plan import EnvInfo, make_plan
        from league.training.ray_backend import RayPopulation

        cluster = Cluster(initialize_head=True, head_node_args={{"num_cpus": 1}})
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        vec = wrappers.vector({TTT!r}, num_envs=4, num_workers=2, backend="ray")
        vec.reset(seed=0)
        vec.step()
        nodes = vec.worker_nodes()
        vec.close()
        # Built after the workers: Ray's own choice would then be the other node.
        env = EnvInfo.probe({TTT!r}, measure=False)
        plan = make_plan(TrainConfig(num_policies=2, backend="ray", num_workers=2), env)
        host = RayPopulation(plan.learners, env, gpus=0, explicit_device=None).hosts[0]
        print(json.dumps({{
            "nodes": nodes,
            "cluster_nodes": len(ray.nodes()),
            "learner": ray.get(host.node_id.remote()),
            "driver": ray.get_runtime_context().get_node_id(),
        }}))
        ray.shutdown()
        cluster.shutdown()
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines, out.stderr[-3000:]
    result = json.loads(lines[-1])
    assert result["cluster_nodes"] == 2
    assert len(set(result["nodes"])) == 2  # one env worker on each node
    assert result["learner"] == result["driver"]


class _SignalDuringUpdate(Observer):
    """Sends this process SIGINT one second after the first game ends, which is during
    the first update (it comes a few env steps later and takes about 40 s uncut)."""

    def __init__(self) -> None:
        self.sent: float | None = None
        self.timer: threading.Timer | None = None
        self.updates = 0

    def on_match(self, trainer, result):
        if self.timer is None:
            self.timer = threading.Timer(1.0, self._send)
            self.timer.start()

    def _send(self):
        self.sent = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)

    def on_update(self, trainer, policy_id, samples, stats):
        self.updates += 1


def test_ctrl_c_stops_a_remote_update_at_its_next_minibatch(tmp_path: Path):
    probe = _SignalDuringUpdate()
    try:
        with pytest.raises(KeyboardInterrupt):
            league.train(
                TTT,
                policies=[
                    {"id": "slow", "algo": "ppo", "update_epochs": 1000, "num_minibatches": 8}
                ],
                total_steps=10**9,
                run_dir=str(tmp_path),
                observers=[probe],
                **FAST,
            )
    finally:  # a run that failed early must not leave a SIGINT on its way to pytest
        if probe.timer is not None:
            probe.timer.cancel()
    stopped = time.monotonic()
    assert probe.sent is not None, "the run stopped before the signal was sent"
    assert probe.updates == 1, "the signal did not arrive during the first update"
    assert stopped - probe.sent < 10, "the run waited for the remote update to finish"
    assert json.loads((tmp_path / "trainer.json").read_text())["learner_steps"]["slow"] > 0


def test_learners_split_over_learner_actors_and_pbt_copies_between_them():
    env = EnvInfo.probe(TTT, measure=False)
    plan = make_plan(TrainConfig(num_policies=3, backend="ray", num_workers=2), env)
    population = RayPopulation(plan.learners, env, gpus=0, explicit_device=None, actors=2)
    try:
        host_of = population.host_of
        assert host_of["p0"] is host_of["p2"] is population.hosts[0]
        assert host_of["p1"] is population.hosts[1]
        before = {pid: population.state_dict(pid) for pid in ("p0", "p1")}
        assert not torch.equal(*(before[p]["model"]["critic_head.weight"] for p in before))
        population.copy("p0", "p1")  # p1 (actor 1) takes over p0 (actor 0)
        after = population.state_dict("p1")
        for name, tensor in before["p0"]["model"].items():
            assert torch.equal(after["model"][name], tensor), name
        for name, tensor in population.acting_weights("p1")["params"].items():  # the mirror
            assert torch.equal(tensor, before["p0"]["model"][name]), name
        assert after["version"] == before["p1"]["version"]  # its own counter and RNGs
        assert torch.equal(after["learn_generator"], before["p1"]["learn_generator"])
        with pytest.raises(ConfigError, match="ray_learner_actors=4 must be between 1 and"):
            RayPopulation(plan.learners, env, gpus=0, explicit_device=None, actors=4)
    finally:
        population.close()


@pytest.mark.parametrize(
    ("env", "env_kwargs", "buffer", "steps"),
    [
        ("mpe2.simple_tag_v3", {"max_cycles": 6}, "bytes", 14),  # two roles, packed in turn
        ("butterfly/pistonball-v6", {"max_cycles": 5, "n_pistons": 4}, "array", 12),
    ],
)
def test_ray_env_workers_agree_with_the_serial_backend(env, env_kwargs, buffer, steps):
    """Same seeds and actions, same arrays: through bytes (small buffers) and through
    the object store (a worker's pistonball frames are megabytes)."""
    from test_vector import assert_same, random_actions, snapshot

    from wrappers.ray_vector import INLINE_BYTES

    opts = {"env_kwargs": env_kwargs}
    serial = wrappers.vector(env, num_envs=4, seed=11, **opts)
    remote = wrappers.vector(env, num_envs=4, num_workers=2, seed=11, backend="ray", **opts)
    try:
        per_worker = remote._worker_fields
        assert (_nbytes(per_worker) <= INLINE_BYTES) == (buffer == "bytes")
        serial.reset()
        remote.reset()
        assert_same(snapshot(serial), snapshot(remote), "after reset")
        rng = np.random.default_rng(0)
        ends = 0
        for t in range(steps):
            actions = random_actions(serial, rng, np.arange(4))
            serial.step(actions)
            remote.step(actions)
            assert_same(snapshot(serial), snapshot(remote), f"at step {t}")
            ends += int(serial.episode_done.sum())
        assert ends > 0, "the test should cover auto-resets"
    finally:
        serial.close()
        remote.close()


def test_a_shared_trunk_on_ray_reaches_every_members_acting_copy():
    env = EnvInfo.probe(TTT, measure=False)
    plan = make_plan(TrainConfig(num_policies=3, backend="ray", num_workers=2), env)
    with pytest.raises(ConfigError, match="share_trunk=True trains one trunk in one stack"):
        RayPopulation(plan.learners, env, gpus=0, explicit_device=None, actors=2, share_trunk=True)
    population = RayPopulation(plan.learners, env, gpus=0, explicit_device=None, share_trunk=True)
    try:
        rng = np.random.default_rng(0)
        batch = tictactoe_batch(rng, 128)
        before = {k: v.clone() for k, v in population.acting_weights("p1")["params"].items()}
        population.learn({"p0": batch})  # only p0 learns; the trunk moves for p1 too
        trained = population.state_dict("p0")["model"]  # from the learner actor
        mirror = population.unit_of["p1"]
        trunk = [k for k in before if k.startswith(("actor_body.", "critic_body."))]
        for name in trunk:
            assert not torch.equal(before[name], trained[name]), name
            for pid in ("p1", "p2"):  # the driver's acting copies (bank rows) have it
                row = mirror.bank.params[name][mirror.index[pid]]
                assert torch.equal(row, trained[name]), (pid, name)
        assert torch.equal(
            population.state_dict("p1")["model"]["actor_head.logits.weight"],
            before["actor_head.logits.weight"],
        )
    finally:
        population.close()


def test_connect_fours_preset_shares_a_trunk_on_ray_only_in_one_learner_actor(tmp_path: Path):
    options = dict(num_policies=2, total_steps=256, **FAST)
    one = league.train("classic/connect_four-v3", run_dir=str(tmp_path / "one"), **options)
    two = league.train(
        "classic/connect_four-v3", run_dir=str(tmp_path / "two"), ray_learner_actors=2, **options
    )
    assert (one.config.share_trunk, one.config.trunk_update) == (True, "sum")
    assert (two.config.share_trunk, two.config.trunk_update) == (False, "mean")
    saved = json.loads((tmp_path / "two" / "config.json").read_text())
    assert saved["share_trunk"] is False and two.env_steps >= 256
