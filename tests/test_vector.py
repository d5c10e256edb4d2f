"""`wrappers.vector` on real PettingZoo envs: the array layout per role, the
serial and multiprocessing backends agreeing with each other and with the
list-based `multiagent` contract, send/recv with env ids, seeding, and what
happens when an env raises or a worker dies (docs/vector.md)."""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from mpe2 import simple_tag_v3
from pettingzoo.butterfly import pistonball_v6
from pettingzoo.classic import connect_four_v3, tictactoe_v3
from pettingzoo.utils.wrappers import BaseWrapper

import wrappers

# Every multiprocessing test bounds its waits: a broken backend fails, never hangs.
TIMEOUT = 30.0


def tag() -> Any:
    return simple_tag_v3.parallel_env(max_cycles=6)


def pistonball() -> Any:
    return pistonball_v6.parallel_env(max_cycles=5, n_pistons=4)


ENVS: dict[str, Callable[[], Any]] = {
    "connect_four": connect_four_v3.env,
    "tictactoe": tictactoe_v3.env,
    "pistonball": pistonball,
    "simple_tag": tag,
}


class ExplodingWrapper(BaseWrapper):
    """An env that raises on its `explode_at`-th step, in the env reset with `seed`."""

    def __init__(self, env: Any, seed: int, explode_at: int) -> None:
        super().__init__(env)
        self.explode_seed = seed
        self.explode_at = explode_at
        self.seed_used: int | None = None
        self.steps = 0

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        if seed is not None:
            self.seed_used = seed
        super().reset(seed=seed, options=options)

    def step(self, action: Any) -> None:
        self.steps += 1
        if self.seed_used == self.explode_seed and self.steps == self.explode_at:
            raise RuntimeError(f"exploding on step {self.steps}")
        super().step(action)


class SleepyWrapper(BaseWrapper):
    """An env whose steps take `seconds` longer: in every env, or only in envs
    reset with a seed from `seeds` (a slow worker)."""

    def __init__(self, env: Any, seconds: float, seeds: set[int] | None = None) -> None:
        super().__init__(env)
        self.seconds = seconds
        self.seeds = seeds
        self.slow = seeds is None

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        if seed is not None and self.seeds is not None:
            self.slow = seed in self.seeds
        super().reset(seed=seed, options=options)

    def step(self, action: Any) -> None:
        if self.slow:
            time.sleep(self.seconds)
        super().step(action)


class ListEnv:
    """A pass-through env: only the list-based contract, no `step_into`."""

    is_multiagent = True

    def __init__(self) -> None:
        self._env = wrappers.multiagent(tictactoe_v3.env)
        for name in ("name", "num_agents", "possible_agents", "roles"):
            setattr(self, name, getattr(self._env, name))
        self.observation_spaces = self._env.observation_spaces
        self.action_spaces = self._env.action_spaces

    def reset(self, seed: int | None = None) -> Any:
        return self._env.reset(seed=seed)

    def step(self, actions: list[Any]) -> Any:
        return self._env.step(actions)


def random_actions(vec: Any, rng: np.random.Generator, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Random legal actions for the envs `ids`, drawn from their masks."""
    actions = {}
    for role, seats in vec.role_seats.items():
        space = vec.action_spaces[seats[0]]
        masks = vec.action_masks[role]
        if masks is not None:
            actions[role] = np.argmax(rng.random(masks[ids].shape) * masks[ids], axis=-1)
        else:
            shape = (len(ids), len(seats), *space.shape)
            actions[role] = rng.uniform(space.low, space.high, shape).astype(space.dtype)
    return actions


def snapshot(vec: Any) -> dict[str, np.ndarray]:
    arrays = {
        name: getattr(vec, name).copy()
        for name in (
            "rewards",
            "terminated",
            "truncated",
            "active",
            "episode_return",
            "episode_length",
            "episode_done",
        )
    }
    for role in vec.role_names:
        arrays[f"obs/{role}"] = vec.obs[role].copy()
        arrays[f"final_obs/{role}"] = vec.final_obs[role].copy()
        if vec.action_masks[role] is not None:
            arrays[f"action_masks/{role}"] = vec.action_masks[role].copy()
    return arrays


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray], where: str) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{key} differs {where}")


def no_workers_left(vec: Any) -> bool:
    return not any(p.is_alive() for p in vec.workers) and not multiprocessing.active_children()


def test_simple_tag_arrays_per_role() -> None:
    with wrappers.vector(tag, num_envs=3) as vec:
        assert vec.num_envs == 3 and vec.num_agents == 4
        assert vec.possible_agents == ["adversary_0", "adversary_1", "adversary_2", "agent_0"]
        assert vec.roles == ["adversary"] * 3 + ["agent"]
        assert vec.role_names == ["adversary", "agent"]
        assert vec.role_seats == {"adversary": [0, 1, 2], "agent": [3]}
        assert vec.name == "simple_tag_v3"
        assert vec.obs["adversary"].shape == (3, 3, 16)
        assert vec.obs["agent"].shape == (3, 1, 14)
        assert vec.final_obs["agent"].shape == (3, 1, 14)
        assert vec.obs["agent"].dtype == vec.observation_spaces[3].dtype
        assert vec.action_masks["adversary"].shape == (3, 3, 5)
        assert vec.action_masks["agent"].dtype == np.bool_
        assert vec.actions["adversary"].shape == (3, 3)
        assert vec.actions["agent"].dtype == np.int64
        for name, dtype in (
            ("rewards", np.float32),
            ("terminated", np.bool_),
            ("truncated", np.bool_),
            ("active", np.bool_),
            ("episode_return", np.float32),
            ("episode_length", np.int32),
        ):
            assert getattr(vec, name).shape == (3, 4) and getattr(vec, name).dtype == dtype
        assert vec.episode_done.shape == (3,)
        assert [s.shape for s in vec.observation_spaces] == [(16,)] * 3 + [(14,)]
        assert vec.action_spaces == [spaces.Discrete(5)] * 4
        ids = vec.reset(seed=0)
        np.testing.assert_array_equal(ids, [0, 1, 2])
        assert vec.active.all() and vec.obs["agent"].any()


def test_box_actions_and_uint8_images() -> None:
    with wrappers.vector(pistonball, num_envs=2) as vec:
        assert vec.role_names == ["piston"]
        assert vec.obs["piston"].shape == (2, 4, 457, 120, 3)
        assert vec.obs["piston"].dtype == np.uint8
        assert vec.actions["piston"].shape == (2, 4, 1)
        assert vec.actions["piston"].dtype == np.float32
        assert vec.action_masks["piston"] is None


@pytest.mark.parametrize("name", list(ENVS))
def test_serial_and_processes_agree_with_the_list_contract(name: str) -> None:
    """Same seeds and actions: serial == 2 workers, and both == `multiagent().step()`,
    over enough steps for several episodes and auto-resets."""
    env_fn = ENVS[name]
    num_envs, seed = 4, 11
    steps = {"connect_four": 60, "tictactoe": 30, "pistonball": 12, "simple_tag": 15}[name]
    serial = wrappers.vector(env_fn, num_envs=num_envs, seed=seed)
    procs = wrappers.vector(env_fn, num_envs=num_envs, num_workers=2, seed=seed, timeout=TIMEOUT)
    singles = [wrappers.multiagent(env_fn) for _ in range(num_envs)]
    try:
        serial.reset()
        procs.reset()
        assert_same(snapshot(serial), snapshot(procs), "after reset")
        listed = [env.reset(seed=seed + k) for k, env in enumerate(singles)]
        for k, (obs, infos) in enumerate(listed):
            assert_row_matches(serial, k, obs, None, infos, False)
        rng = np.random.default_rng(0)
        ends = 0
        for t in range(steps):
            actions = random_actions(serial, rng, np.arange(num_envs))
            serial.step(actions)
            procs.step(actions)
            assert_same(snapshot(serial), snapshot(procs), f"at step {t}")
            for k, env in enumerate(singles):
                per_seat = [
                    actions[role][k, serial.role_seats[role].index(j)]
                    for j, role in enumerate(serial.roles)
                ]
                obs, rewards, terminated, truncated, infos = env.step(per_seat)
                result = (rewards, terminated, truncated)
                assert_row_matches(serial, k, obs, result, infos, env.episode_ended)
            ends += int(serial.episode_done.sum())
        assert ends >= num_envs, "the test should cover auto-resets"
    finally:
        serial.close()
        procs.close()
    assert no_workers_left(procs)


def assert_row_matches(
    vec: Any, k: int, obs: list, result: tuple | None, infos: list[dict], ended: bool
) -> None:
    """Env k's rows of `vec` hold what the list-based env returned."""
    for j, role in enumerate(vec.roles):
        slot = vec.role_seats[role].index(j)
        np.testing.assert_array_equal(vec.obs[role][k, slot], obs[j])
        assert vec.active[k, j] == infos[j]["is_active"]
        if vec.action_masks[role] is not None:
            np.testing.assert_array_equal(vec.action_masks[role][k, slot], infos[j]["action_mask"])
        if result is None:
            continue
        rewards, terminated, truncated = result
        assert vec.rewards[k, j] == np.float32(rewards[j])
        assert vec.terminated[k, j] == terminated[j] and vec.truncated[k, j] == truncated[j]
        if terminated[j] or truncated[j]:
            np.testing.assert_array_equal(vec.final_obs[role][k, slot], infos[j]["final_obs"])
            assert vec.episode_return[k, j] == np.float32(infos[j]["episode"]["return"])
            assert vec.episode_length[k, j] == infos[j]["episode"]["length"]
    if result is not None:
        assert vec.episode_done[k] == ended


def connect_four_slow_worker() -> Any:
    """Connect four; envs 4 and 5 (seeds 9 and 10 below, worker 2) step 50 ms slower."""
    return SleepyWrapper(connect_four_v3.env(), 0.05, seeds={9, 10})


def test_recv_returns_ids_while_other_envs_step() -> None:
    """batch_size < num_envs: recv() hands back each worker's envs as soon as they
    are done, so the fast workers' envs are acted on again and again while the
    slow worker steps; each env still ends up exactly where stepping it alone
    with the same actions leads."""
    num_envs, seed, rounds = 6, 5, 12
    per_env_actions: list[list[np.ndarray]] = [[] for _ in range(num_envs)]
    rng = np.random.default_rng(1)
    with wrappers.vector(
        connect_four_slow_worker,
        num_envs=num_envs,
        num_workers=3,
        batch_size=2,
        seed=seed,
        timeout=TIMEOUT,
    ) as vec:
        ids = vec.reset()
        stepping: set[int] = set()
        for _ in range(rounds):
            actions = random_actions(vec, rng, ids)
            for i, k in enumerate(ids):
                per_env_actions[k].append(actions["player"][i])
            vec.send(actions["player"], ids)
            stepping |= set(ids.tolist())
            ids = vec.recv()
            stepping -= set(ids.tolist())
            assert len(ids) >= 2
            for k in ids:  # whole workers come back: envs 2w and 2w+1 together
                assert int(k) ^ 1 in ids
        while stepping:
            stepping -= set(vec.recv().tolist())
        final = snapshot(vec)
    steps = [len(a) for a in per_env_actions]
    assert min(steps[:4]) > 2 * max(steps[4:]) > 0, steps
    # Replay each env's own action sequence in a serial vector env, env by env.
    with wrappers.vector(connect_four_slow_worker, num_envs=num_envs, seed=seed) as serial:
        serial.reset()
        for k in range(num_envs):
            for action in per_env_actions[k]:
                serial.send(action[None], [k])
                serial.recv()
        assert_same(final, snapshot(serial), "after the same per-env actions")


def test_send_rejects_envs_still_stepping() -> None:
    with wrappers.vector(tictactoe_v3.env, num_envs=2, num_workers=2, timeout=TIMEOUT) as vec:
        vec.reset(seed=0)
        vec.send(np.zeros((2, 2), dtype=np.int64))
        with pytest.raises(RuntimeError, match="still stepping"):
            vec.send(np.zeros((1, 2), dtype=np.int64), [1])
        vec.recv()
        with pytest.raises(RuntimeError, match="no envs stepping"):
            vec.recv()


def test_seeding_per_env_is_reproducible() -> None:
    with (
        wrappers.vector(tag, num_envs=3, num_workers=1, timeout=TIMEOUT) as a,
        wrappers.vector(tag, num_envs=3) as b,
    ):
        a.reset(seed=7)
        b.reset(seed=7)
        assert_same(snapshot(a), snapshot(b), "after reset(seed=7)")
        obs = a.obs["adversary"]
        assert not np.array_equal(obs[0], obs[1]), "envs need their own seeds"
        for k in range(3):
            single, _ = wrappers.multiagent(tag).reset(seed=7 + k)
            np.testing.assert_array_equal(a.obs["agent"][k, 0], single[3])
        first = snapshot(a)
        a.reset(seed=8)
        assert not np.array_equal(first["obs/adversary"], a.obs["adversary"])
        a.reset(seed=7)
        assert_same(first, snapshot(a), "after a second reset(seed=7)")
    # The constructor's seed seeds the first reset.
    with wrappers.vector(tag, num_envs=3, seed=7) as c:
        c.reset()
        assert_same(first, snapshot(c), "with vector(seed=7)")


def test_env_error_in_a_worker_raises_worker_error_with_traceback() -> None:
    def env_fn() -> Any:
        return ExplodingWrapper(tictactoe_v3.env(), seed=3, explode_at=3)

    vec = wrappers.vector(env_fn, num_envs=4, num_workers=2, timeout=TIMEOUT)
    vec.reset(seed=0)  # env 3 gets seed 3
    rng = np.random.default_rng(0)
    start = time.monotonic()
    with pytest.raises(wrappers.WorkerError) as info:
        for _ in range(5):
            vec.step(random_actions(vec, rng, np.arange(4)))
    message = str(info.value)
    assert "env 3" in message and "worker process 1" in message
    assert "RuntimeError: exploding on step 3" in message
    assert "Traceback (most recent call last)" in message and "in step" in message
    assert isinstance(info.value.__cause__, RuntimeError)
    assert time.monotonic() - start < TIMEOUT
    assert no_workers_left(vec)
    with pytest.raises(RuntimeError, match="closed"):
        vec.step(np.zeros((4, 2), dtype=np.int64))
    vec.close()


def test_env_error_in_the_serial_backend_is_a_worker_error_too() -> None:
    def env_fn() -> Any:
        return ExplodingWrapper(tictactoe_v3.env(), seed=1, explode_at=1)

    vec = wrappers.vector(env_fn, num_envs=2)
    vec.reset(seed=0)
    with pytest.raises(wrappers.WorkerError, match="env 1 raised RuntimeError") as info:
        vec.step(np.array([[0, 0], [4, 4]]))
    assert "exploding on step 1" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_killed_worker_is_detected() -> None:
    vec = wrappers.vector(tictactoe_v3.env, num_envs=4, num_workers=2, timeout=TIMEOUT)
    vec.reset(seed=0)
    victim = vec.workers[1]
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(5)
    with pytest.raises(wrappers.WorkerError, match=r"worker process 1 .*died .*exit code -9"):
        vec.step(np.zeros((4, 2), dtype=np.int64))
    assert no_workers_left(vec)


def test_a_stuck_env_times_out() -> None:
    vec = wrappers.vector(
        lambda: SleepyWrapper(tictactoe_v3.env(), 30), num_envs=2, num_workers=2, timeout=0.3
    )
    vec.reset(seed=0)
    start = time.monotonic()
    with pytest.raises(wrappers.WorkerError, match=r"no reply from worker processes \[0, 1\]"):
        vec.step(np.zeros((2, 2), dtype=np.int64))
    assert time.monotonic() - start < 5
    assert no_workers_left(vec)


def _slow_to_build():
    time.sleep(1.0)
    return SleepyWrapper(tictactoe_v3.env(), 30)


def test_a_worker_slower_to_start_than_a_step_may_take_is_waited_for() -> None:
    # `timeout` bounds a step, not a worker's start (imports, then its envs): a slow
    # start under a short timeout is no error; a stuck step still is.
    vec = wrappers.vector(_slow_to_build, num_envs=2, num_workers=2, timeout=0.3)
    vec.reset(seed=0)
    with pytest.raises(wrappers.WorkerError, match=r"within 0.3 s"):
        vec.step(np.zeros((2, 2), dtype=np.int64))
    assert no_workers_left(vec)


def test_ctrl_c_while_waiting_stops_the_workers() -> None:
    vec = wrappers.vector(
        lambda: SleepyWrapper(tictactoe_v3.env(), 30), num_envs=2, num_workers=1, timeout=TIMEOUT
    )
    vec.reset(seed=0)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(KeyboardInterrupt):
            vec.step(np.zeros((2, 2), dtype=np.int64))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert no_workers_left(vec)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


@pytest.mark.parametrize("ending", ["exit", "sigkill"])
def test_workers_end_with_their_parent(ending: str) -> None:
    """No orphans: workers exit when the parent's interpreter exits without
    close(), and when the parent is killed outright."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        import wrappers
        from pettingzoo.classic import tictactoe_v3
        vec = wrappers.vector(tictactoe_v3.env, num_envs=2, num_workers=2)
        vec.reset(seed=0)
        print(" ".join(str(p.pid) for p in vec.workers), flush=True)
        if {ending!r} == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT
    )
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2, done.stderr
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)


def test_workers_ignore_ctrl_c() -> None:
    with wrappers.vector(tictactoe_v3.env, num_envs=2, num_workers=2, timeout=TIMEOUT) as vec:
        vec.reset(seed=0)
        for proc in vec.workers:
            os.kill(proc.pid, signal.SIGINT)
        time.sleep(0.1)
        assert all(p.is_alive() for p in vec.workers)
        vec.step(np.zeros((2, 2), dtype=np.int64))
    assert no_workers_left(vec)


def test_close_twice_and_garbage_collection_stop_workers() -> None:
    vec = wrappers.vector(tictactoe_v3.env, num_envs=2, num_workers=2, timeout=TIMEOUT)
    vec.reset(seed=0)
    vec.close()
    vec.close()
    assert no_workers_left(vec)
    vec = wrappers.vector(tictactoe_v3.env, num_envs=2, num_workers=2, timeout=TIMEOUT)
    workers = list(vec.workers)
    del vec
    gc.collect()
    assert not any(p.is_alive() for p in workers)
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("num_workers", [0, 2])
def test_wrong_action_shapes_raise_action_error(num_workers: int) -> None:
    with wrappers.vector(tag, num_envs=2, num_workers=num_workers, timeout=TIMEOUT) as vec:
        vec.reset(seed=0)
        good = {"adversary": np.zeros((2, 3), dtype=np.int64), "agent": np.zeros((2, 1), int)}
        with pytest.raises(wrappers.ActionError, match=r"'adversary'.*expected \(2, 3\)"):
            vec.send({**good, "adversary": np.zeros((2, 4), dtype=np.int64)})
        with pytest.raises(wrappers.ActionError, match="missing \\['agent'\\]"):
            vec.send({"adversary": good["adversary"]})
        with pytest.raises(wrappers.ActionError, match="dict role -> array"):
            vec.send(good["adversary"])
        with pytest.raises(wrappers.ActionError, match="float64"):
            vec.send({**good, "agent": np.zeros((2, 1))})
        with pytest.raises(wrappers.ActionError, match=r"'adversary'.*expected \(1, 3\)"):
            vec.send(good, env_ids=[1])
        vec.step(good)  # the vector env is still usable after refusing actions
        assert vec.active.all()


def test_illegal_action_raises_action_error() -> None:
    for num_workers in (0, 1):
        vec = wrappers.vector(
            tictactoe_v3.env, num_envs=2, num_workers=num_workers, timeout=TIMEOUT
        )
        vec.reset(seed=0)
        vec.step(np.array([[4, 0], [4, 0]]))  # player_1 takes the centre in both envs
        with pytest.raises(wrappers.ActionError) as info:
            vec.step(np.array([[0, 8], [0, 4]]))  # env 1: player_2 plays the centre
        assert str(info.value).startswith("env 1 ")
        assert "raised ActionError" in str(info.value) and "action 4 is illegal" in str(info.value)
        if num_workers:
            assert no_workers_left(vec)


def test_pass_through_list_env_matches_the_native_path() -> None:
    rng = np.random.default_rng(3)
    with (
        wrappers.vector(lambda: ListEnv(), num_envs=3, num_workers=1, timeout=TIMEOUT) as listed,
        wrappers.vector(tictactoe_v3.env, num_envs=3) as native,
    ):
        listed.reset(seed=2)
        native.reset(seed=2)
        for t in range(25):
            actions = random_actions(native, rng, np.arange(3))
            listed.step(actions)
            native.step(actions)
            assert_same(snapshot(listed), snapshot(native), f"at step {t}")


def test_argument_checks() -> None:
    with pytest.raises(wrappers.EnvError, match="env instance"):
        wrappers.vector(tictactoe_v3.env(), num_envs=2)
    with pytest.raises(ValueError, match="multiple of the 2 envs per worker"):
        wrappers.vector(tictactoe_v3.env, num_envs=4, num_workers=2, batch_size=3)
    with pytest.raises(ValueError, match="split evenly"):
        wrappers.vector(tictactoe_v3.env, num_envs=5, num_workers=2)
    with pytest.raises(ValueError, match="start_method"):
        wrappers.vector(tictactoe_v3.env, num_envs=2, num_workers=1, start_method="teleport")
    assert not multiprocessing.active_children()


def test_forkserver_workers_build_envs_from_a_closure() -> None:
    max_cycles = 3

    def env_fn() -> Any:
        return simple_tag_v3.parallel_env(max_cycles=max_cycles)

    with wrappers.vector(
        env_fn, num_envs=2, num_workers=1, start_method="forkserver", timeout=TIMEOUT
    ) as vec:
        vec.reset(seed=0)
        for _ in range(max_cycles):
            vec.step({"adversary": np.zeros((2, 3), int), "agent": np.zeros((2, 1), int)})
        assert vec.truncated.all() and vec.episode_done.all()
        assert (vec.episode_length == max_cycles).all()


@pytest.mark.parametrize("num_workers", [0, 2])
def test_ordered_recv_returns_each_send_in_the_order_sent(num_workers):
    """Two halves in flight: recv() gives the first half sent, then the second, with
    the same observations whether or not workers step them."""
    seen = []
    for workers in (0, num_workers):
        vec = wrappers.vector(
            "classic/connect_four-v3", num_envs=8, num_workers=workers, batch_size=4, ordered=True
        )
        try:
            vec.reset(seed=3)
            rng = np.random.default_rng(0)
            first, second = np.arange(4, 8), np.arange(4)  # sent in this order
            trace = []
            for ids in (first, second):
                masks = vec.action_masks["player"][ids]
                vec.actions["player"][ids] = np.argmax(masks * rng.random(masks.shape), axis=-1)
                vec.send(None, ids)
            for _ in range(6):
                ids = vec.recv()
                trace.append((ids.tolist(), vec.obs["player"][ids].copy()))
                masks = vec.action_masks["player"][ids]
                vec.actions["player"][ids] = np.argmax(masks * rng.random(masks.shape), axis=-1)
                vec.send(None, ids)
            vec.recv(), vec.recv()
        finally:
            vec.close()
        assert [t[0] for t in trace] == [first.tolist(), second.tolist()] * 3
        seen.append(trace)
    for (ids_a, obs_a), (ids_b, obs_b) in zip(*seen, strict=True):
        assert ids_a == ids_b and np.array_equal(obs_a, obs_b)
