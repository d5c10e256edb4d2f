"""The trainer: builds learners, league and envs from a config and runs the loop.

In sync mode it collects one batch per learner, trains every learner, and
repeats; in async mode learners train in background threads while collection
goes on (league/learner.py). It owns the run directory (DESIGN.md section 5): config, league state,
match records, checkpoints and TensorBoard scalars, and resumes a run from its
last checkpoint. Checkpoints are written policy files first, then
``league.json``, then ``trainer.json``; ``trainer.json`` is the commit point,
so a run killed at any moment resumes from the last complete checkpoint.
"""

from __future__ import annotations

import io
import json
import os
import queue
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces as gym_spaces

import wrappers
from league._io import atomic_write_bytes, atomic_write_text
from league.algos import make_algorithm
from league.algos.base import NonFiniteLossError
from league.collect import Actor, Collector, SampleBuffer, batch_act
from league.config import TrainConfig
from league.devices import policy_device
from league.learner import LearnerThread, SharedPolicy
from league.manager import League, LeagueConfig
from league.modes import BatchedMapping, OnePolicyPerRole, check_modes, env_batches
from league.policies import CallablePolicy, RandomPolicy, UnsavedPolicy

TRAINER_FILE = "trainer.json"
CONFIG_FILE = "config.json"
# PPO's entropy bonus for Discrete actions unless configured (TrainConfig.ent_coef).
DISCRETE_ENT_COEF = 0.1


class RunDirError(ValueError):
    """The run directory cannot be used (unwritable, full, incomplete, other env)."""


def learner_specs(config: TrainConfig, roles: list[str]) -> list[dict[str, Any]]:
    """One spec per learner: id, role, algo and that algo's config fields."""
    role_names = list(dict.fromkeys(roles))
    specs: list[dict[str, Any]] = []
    if config.policies is None:
        for role in role_names:
            for k in range(config.num_policies):
                pid = f"p{k}" if len(role_names) == 1 else f"{role}_{k}"
                specs.append({"id": pid, "role": role, "algo": "ppo"})
        return specs
    for k, entry in enumerate(config.policies):
        spec = {"algo": entry} if isinstance(entry, str) else dict(entry)
        spec.setdefault("algo", "ppo")
        role = spec.setdefault("role", role_names[k % len(role_names)])
        if role not in role_names:
            raise ValueError(f"policies[{k}]: role {role!r} is not a role of this env {role_names}")
        spec.setdefault("id", f"{spec['algo']}{k}")
        specs.append(spec)
    ids = [s["id"] for s in specs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"policy ids must be unique, got {ids}")
    return specs


DEFAULT_MIN_BATCH = 1024


def _share(config: TrainConfig, num_learners: int, decisions_per_step: int) -> tuple[int, int]:
    """(share, remainder) of one iteration's samples per learner."""
    return divmod(config.num_envs * decisions_per_step * config.rollout, num_learners)


def default_batch_size(config: TrainConfig, num_learners: int, decisions_per_step: int) -> int:
    """The smallest multiple of one iteration's share per learner that is at least
    DEFAULT_MIN_BATCH, so that the default batch size always meets the sync rule."""
    share, rest = _share(config, num_learners, decisions_per_step)
    if rest or not share:
        return DEFAULT_MIN_BATCH  # no whole share: check_batch_rule says what to change
    return share * -(-DEFAULT_MIN_BATCH // share)


def check_batch_rule(config: TrainConfig, num_learners: int, decisions_per_step: int) -> None:
    """Sync mode: batch_size is a multiple of num_envs x seats x rollout / learners."""
    share, rest = _share(config, num_learners, decisions_per_step)
    if rest or config.batch_size % share:
        good = max(share, round(config.batch_size / share) * share) if share else 0
        raise ValueError(
            f"sync mode: batch_size={config.batch_size} must be a multiple of "
            f"num_envs x active seats per step x rollout / learners = {config.num_envs} x "
            f"{decisions_per_step} x {config.rollout} / {num_learners} = "
            f"{share + rest / num_learners:g}. "
            + (
                f"Set batch_size={good}, or change num_envs/rollout."
                if not rest
                else "Change num_envs or rollout so that this is a whole number."
            )
        )


class Trainer:
    """Builds everything from a config (or a run directory) and runs the loop."""

    def __init__(
        self,
        env_fn: Any,
        config: TrainConfig,
        resume: str | os.PathLike | None = None,
        mapping: Any = None,
        fixed_policies: dict[str, Any] | None = None,
        read_only: bool = False,
    ):
        config.validate()
        self.read_only = read_only  # league.load: a run to read and act with, not to train
        self.mapping = mapping
        self.fixed_policies = dict(fixed_policies or {})
        self.env_fn = env_fn
        self.config = config
        if config.env is None:
            config.env = env_spec(env_fn)
        torch.manual_seed(config.seed)
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        probe = wrappers.multiagent(env_fn, pad=config.pad, env_kwargs=config.env_kwargs or None)
        self.env_name = probe.name
        self.seats = list(probe.possible_agents)
        self.roles = list(probe.roles)
        self.spaces = {
            role: (probe.observation_spaces[i], probe.action_spaces[i])
            for i, role in reversed(list(enumerate(self.roles)))
        }
        decisions = 1 if isinstance(probe, wrappers.AECMultiAgentEnv) else probe.num_agents
        probe.close()
        self.specs = learner_specs(config, self.roles)
        per_role = max(sum(s["role"] == r for s in self.specs) for r in set(self.roles))
        check_modes(config, per_role, custom_mapping=mapping is not None)
        if config.batch_size is None:  # resolved once; config.json keeps the number
            config.batch_size = default_batch_size(config, len(self.specs), decisions)
        if config.mode == "sync":
            check_batch_rule(config, len(self.specs), decisions)
        self.mix = (
            config.mix_policies_in_one_env
            if config.mix_policies_in_one_env is not None
            else not config.batched
        )
        self.batches = env_batches(config.num_envs, per_role) if config.batched else None
        self.threads: dict[str, LearnerThread] = {}
        self.shared: dict[str, SharedPolicy] = {}
        self.updates: queue.Queue = queue.Queue()
        self._last_checkpoint = time.monotonic()
        self._leader_text = ""
        self.run_dir = Path(resume or config.run_dir or _default_run_dir(self.env_name))
        if resume:
            self._check_resume_dir()
        _check_writable(self.run_dir, config.min_free_mb)
        self.learners = {
            spec["id"]: self._build_learner(i, spec) for i, spec in enumerate(self.specs)
        }
        self.league = self._build_league()
        self.learner_steps = dict.fromkeys(self.learners, 0)
        self.stopped: dict[str, str] = {}
        self.env_steps = 0
        self.iteration = 0
        self.elapsed = 0.0
        if resume:
            self._restore()
        else:
            atomic_write_text(self.run_dir / CONFIG_FILE, self._config_json())
        self.writer = None

    # -- building ----------------------------------------------------------

    def _build_learner(self, index: int, spec: dict[str, Any]) -> Any:
        algo_config = {k: v for k, v in spec.items() if k not in ("id", "role", "algo")}
        algo_config.setdefault("hidden_sizes", list(self.config.hidden_sizes))
        obs_space, action_space = self.spaces[spec["role"]]
        if spec["algo"] == "ppo" and "ent_coef" not in algo_config:
            ent_coef = self.config.ent_coef
            if ent_coef is None and isinstance(action_space, gym_spaces.Discrete):
                ent_coef = DISCRETE_ENT_COEF
            if ent_coef is not None:
                algo_config["ent_coef"] = ent_coef
        seat = self.seats[self.roles.index(spec["role"])]
        device = policy_device(index, override=self.config.device)
        return make_algorithm(
            spec["algo"],
            obs_space,
            action_space,
            config=algo_config,
            device=device,
            seed=self.config.seed + index,
            where=f"policy {spec['id']!r}, seat {seat!r} of env {self.env_name!r}",
        )

    def _build_league(self) -> League:
        options = {"seed": self.config.seed, **self.config.league}
        if self.config.mode == "sync":
            # Sync training promises every learner the same experience: a
            # deterministic round-robin unless the user picks a strategy.
            options.setdefault("strategy", "round_robin")
        league = League(
            self.seats,
            self.roles,
            teams=self.config.teams,
            config=LeagueConfig(**options),
            mapping=self.mapping,
        )
        for spec in self.specs:
            league.add_learner(spec["id"], spec["role"], algo=spec["algo"])
        for name in self.config.opponents:
            if name != "random":
                raise ValueError(f"opponents: unknown fixed policy {name!r}; available: ['random']")
            for role in dict.fromkeys(self.roles):
                pid = "random" if len(set(self.roles)) == 1 else f"random_{role}"
                obs_space, action_space = self.spaces[role]
                random = RandomPolicy(
                    action_space, seed=self.config.seed, observation_space=obs_space
                )
                league.add_fixed(pid, role, random)
        for pid, fn in self.fixed_policies.items():
            role = getattr(fn, "role", None) or self.roles[0]
            league.add_fixed(pid, role, fn if hasattr(fn, "act") else CallablePolicy(fn))
        return league

    def _actors(self) -> dict[str, Actor]:
        actors = {}
        for pid, record in self.league.policies.items():
            if pid in self.learners:
                algo = self.learners[pid]
                # Async: act with the published copy, never the model in training.
                acting = self.shared.get(pid, algo)
                actors[pid] = Actor(
                    pid,
                    acting.act,
                    learner=acting,
                    buffer=SampleBuffer(keep_next_obs=not algo.on_policy),
                )
            else:
                actors[pid] = Actor(pid, batch_act(record.payload))
        return actors

    # -- the loop ----------------------------------------------------------

    def run(self) -> League:
        config = self.config
        # Async with 2+ workers: act on one worker's envs while the others step
        # (Sample Factory's double buffering). Sync and batched step all envs
        # together, which their fixed schedules need.
        overlap = config.mode == "async" and not config.batched and config.num_workers > 1
        vec = wrappers.vector(
            self.env_fn,
            num_envs=config.num_envs,
            num_workers=config.num_workers,
            batch_size=config.num_envs // config.num_workers if overlap else None,
            pad=config.pad,
            env_kwargs=config.env_kwargs or None,
        )
        self.writer = self._tensorboard()
        if config.mode == "async":
            self.threads = self._start_learner_threads()
        collector = Collector(vec, self._mapping(), self._actors(), env_batches=self.batches)
        self.progress = _progress(config, self.env_steps)
        self._clock = (time.monotonic(), self.elapsed, self.env_steps)
        try:
            collector.start(seed=config.seed + self.iteration * 7919)
            collector.env_steps = self.env_steps
            if config.mode == "async":
                self._loop_async(collector)
            else:
                self._loop_sync(collector)
        finally:
            self._stop_learner_threads()
            vec.close()
            if self.progress is not None:
                self.progress.close()
        self.checkpoint()
        if self.writer is not None:
            self.writer.close()
        return self.league

    def _mapping(self) -> Any:
        if self.batches is not None:
            return BatchedMapping(self.league, self.roles, self.batches)
        if not self.mix:
            return OnePolicyPerRole(self.league, self.roles)
        return self.league

    def _loop_sync(self, collector: Collector) -> None:
        """Collect `rollout` steps of every env, train each learner that has a batch, repeat."""
        while not self._should_stop():
            self._anneal()
            for _ in range(self.config.rollout):
                collector.step()
            self.env_steps = collector.env_steps
            for pid, algo in self.learners.items():
                buffer = collector.actors[pid].buffer
                if pid not in self.stopped and buffer.count >= self.config.batch_size:
                    batch = buffer.take(self.config.batch_size)
                    try:
                        stats = algo.learn(batch)
                    except NonFiniteLossError as err:
                        self._stop_learner(pid, str(err))
                        continue
                    self._after_update(pid, len(batch["rewards"]), stats, collector)
            self._end_iteration(collector)

    def _loop_async(self, collector: Collector) -> None:
        """Step envs without pause; full batches go to the learner threads' queues."""
        size = self.config.batch_size
        backlog = size * (self.config.num_batches_to_accumulate + 1)
        while not self._should_stop():
            self._anneal()
            for _ in range(self.config.rollout):
                collector.step()
                for pid, thread in self.threads.items():
                    buffer = collector.actors[pid].buffer
                    while pid not in self.stopped and buffer.count >= size:
                        if thread.batches.full() and buffer.count < backlog:
                            break  # keep collecting; the learner is busy
                        # Blocks only when a whole extra backlog has piled up.
                        thread.batches.put(buffer.take(size))
                self._drain_updates(collector)
            self.env_steps = collector.env_steps
            self._end_iteration(collector)

    def _drain_updates(self, collector: Collector) -> None:
        while True:
            try:
                update = self.updates.get_nowait()
            except queue.Empty:
                return
            if update.error is not None:
                raise RuntimeError(
                    f"learner {update.policy_id!r} failed during an update"
                ) from update.error
            if update.stopped is not None:
                self._stop_learner(update.policy_id, update.stopped)
            elif update.samples:
                self._after_update(update.policy_id, update.samples, update.stats, collector)

    def _end_iteration(self, collector: Collector) -> None:
        self.iteration += 1
        self._log_returns(collector)
        started, elapsed_before, steps_before = self._clock
        now = time.monotonic()
        self.elapsed = elapsed_before + now - started
        rate = (self.env_steps - steps_before) / max(now - started, 1e-9)
        status = f"{rate:,.0f} steps/s"
        self._scalar("train/env_steps_per_s", rate)
        if self.threads:
            lags = [t.lag for t in self.threads.values() if t.lag.trained]
            if lags:
                status += (
                    f" lag {min(g.lag_min for g in lags)}/"
                    f"{sum(g.lag_avg for g in lags) / len(lags):.1f}/{max(g.lag_max for g in lags)}"
                )
        if now - self._last_checkpoint >= self.config.checkpoint_seconds:
            self.checkpoint()
            self._leader_text = self._leader()
        if self.progress is not None:
            self.progress.update(self.env_steps - self.progress.n)
            self.progress.set_postfix_str(f"{status} {self._leader_text}".strip())

    def _should_stop(self) -> bool:
        return self._budget_used() >= 1.0 or len(self.stopped) == len(self.learners)

    def _budget_used(self) -> float:
        """The fraction of the run's budget spent: steps of total_steps or seconds
        of max_seconds (in this process), whichever is further along."""
        c = self.config
        used = 0.0
        if c.total_steps:
            used = self.env_steps / c.total_steps
        if c.max_seconds:
            used = max(used, (time.monotonic() - self._clock[0]) / c.max_seconds)
        return used

    def _anneal(self) -> None:
        """anneal_lr: learning rates fall linearly to 0 as the budget is spent. In
        async mode the learner threads read the new rate at their next step."""
        if not self.config.anneal_lr:
            return
        scale = max(0.0, 1.0 - self._budget_used())
        for algo in self.learners.values():
            algo.set_lr_scale(scale)
        self._scalar("train/lr_scale", scale)

    def _after_update(
        self, pid: str, samples: int, stats: dict[str, float], collector: Collector
    ) -> None:
        self.learner_steps[pid] += samples
        for key, value in stats.items():
            self._scalar(f"{pid}/{key}", value)
        if self.league.should_snapshot(pid, self.learner_steps[pid]):
            self._snapshot(pid, collector)

    def _stop_learner(self, pid: str, reason: str) -> None:
        # The failed update was rolled back: this learner keeps the weights of
        # its last good update (and checkpoint) and trains no more.
        self.stopped[pid] = reason
        self._scalar(f"{pid}/stopped", 1.0)
        print(f"league: learner {pid!r} stopped training: {reason}")

    def _start_learner_threads(self) -> dict[str, LearnerThread]:
        threads = {}
        for pid, algo in self.learners.items():
            self.shared[pid] = SharedPolicy(algo)
            threads[pid] = LearnerThread(
                pid,
                algo,
                self.shared[pid],
                self.config.num_batches_to_accumulate,
                self.config.max_policy_lag,
                self.updates,
            )
            threads[pid].start()
        return threads

    def _stop_learner_threads(self) -> None:
        for thread in self.threads.values():
            thread.stop()
        for thread in self.threads.values():
            thread.join()

    def _snapshot(self, pid: str, collector: Collector) -> None:
        frozen = self.shared.get(pid, self.learners[pid]).frozen()
        sid = self.league.add_snapshot(pid, self.learner_steps[pid], frozen, copy_payload=False)
        collector.add_actor(Actor(sid, batch_act(frozen)))
        self._save_policy(sid, frozen, self.learner_steps[pid])

    def _log_returns(self, collector: Collector) -> None:
        for pid, returns in collector.drain_returns().items():
            self._scalar(f"{pid}/episode_return", float(np.mean(returns)))

    # -- run directory -----------------------------------------------------

    def checkpoint(self) -> None:
        """Write every policy, then the league, then trainer.json (the commit point)."""
        files = {}
        for pid, algo in self.learners.items():
            thread = self.threads.get(pid)
            if thread is None:
                files[pid] = self._save_policy(pid, algo, self.learner_steps[pid])
                continue
            with thread.train_lock:  # not in the middle of an update
                files[pid] = self._save_policy(pid, algo, self.learner_steps[pid])
        for pid, record in self.league.policies.items():
            if record.kind == "snapshot":
                files[pid] = str(self._policy_path(pid, record.step).relative_to(self.run_dir))
        self.league.save(self.run_dir)
        state = {
            "env": self.env_name,
            "seats": self.seats,
            "env_steps": self.env_steps,
            "iteration": self.iteration,
            "elapsed": self.elapsed,
            "learner_steps": self.learner_steps,
            "stopped": self.stopped,
            "files": files,
        }
        atomic_write_text(self.run_dir / TRAINER_FILE, json.dumps(state, indent=1, sort_keys=True))
        self._prune(files)
        self._last_checkpoint = time.monotonic()
        if self.writer is not None:
            self._log_ratings()
            for pid, thread in self.threads.items():
                lag = thread.lag
                for key, value in (
                    ("lag_min", lag.lag_min),
                    ("lag_avg", lag.lag_avg),
                    ("lag_max", lag.lag_max),
                    ("dropped_stale_total", lag.dropped),
                ):
                    self._scalar(f"{pid}/{key}", float(value))
            self.writer.flush()

    def _policy_path(self, pid: str, step: int) -> Path:
        return self.run_dir / "checkpoints" / pid.replace("/", "_") / f"{step}.pt"

    def _save_policy(self, pid: str, policy: Any, step: int) -> str:
        path = self._policy_path(pid, step)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(
            {
                "policy": pid,
                "step": step,
                "version": getattr(policy, "version", 0),
                "state": policy.state_dict(),
            },
            buffer,
        )
        atomic_write_bytes(path, buffer.getvalue())
        return str(path.relative_to(self.run_dir))

    def _prune(self, files: dict[str, str]) -> None:
        """Keep the newest checkpoint of each policy (and of evicted snapshots none)."""
        root = self.run_dir / "checkpoints"
        keep = {self.run_dir / f for f in files.values()}
        for folder in root.iterdir():
            for path in folder.glob("*.pt"):
                if path not in keep:
                    path.unlink(missing_ok=True)
            if not any(folder.iterdir()):
                folder.rmdir()

    def _check_resume_dir(self) -> None:
        state_file = self.run_dir / TRAINER_FILE
        if not state_file.exists() or not (self.run_dir / "league.json").exists():
            raise RunDirError(
                f"cannot resume from {str(self.run_dir)!r}: it has no complete checkpoint "
                f"({TRAINER_FILE} and league.json are needed); start a new run instead"
            )
        state = json.loads(state_file.read_text())
        if state.get("env") != self.env_name or state.get("seats") != self.seats:
            raise RunDirError(
                f"cannot resume from {str(self.run_dir)!r}: it trained env {state.get('env')!r} "
                f"with seats {state.get('seats')}, not {self.env_name!r} with seats {self.seats}"
            )
        missing = [f for f in state["files"].values() if not (self.run_dir / f).exists()]
        if missing:
            raise RunDirError(
                f"cannot resume from {str(self.run_dir)!r}: checkpoint files are missing: {missing}"
            )

    def _restore(self) -> None:
        state = json.loads((self.run_dir / TRAINER_FILE).read_text())
        self.env_steps = state["env_steps"]
        self.iteration = state["iteration"]
        self.elapsed = state["elapsed"]
        self.learner_steps = {pid: state["learner_steps"].get(pid, 0) for pid in self.learners}
        self.stopped = state.get("stopped", {})
        files = state["files"]
        for pid, algo in self.learners.items():
            algo.load_state_dict(_load(self.run_dir / files[pid])["state"])
        league = League.load(self.run_dir, mapping=self.mapping)
        for pid, record in league.policies.items():
            if record.kind == "snapshot":
                frozen = self.learners[record.parent].frozen()
                frozen.load_state_dict(_load(self.run_dir / files[pid])["state"])
                record.payload = frozen
            elif record.kind == "fixed" and pid in self.league.policies:
                record.payload = self.league.policies[pid].payload
            elif record.kind == "fixed":
                if not self.read_only:
                    raise RunDirError(
                        f"run {str(self.run_dir)!r} played against fixed policy {pid!r}, a user "
                        f"function that runs do not save; pass fixed_policies={{{pid!r}: fn}} "
                        "to resume it"
                    )
                record.payload = UnsavedPolicy(pid, str(self.run_dir))
        self.league = league

    def _config_json(self) -> str:
        data = self.config.to_dict()
        data["run_dir"] = str(self.run_dir)
        return json.dumps(data, indent=1, sort_keys=True, default=str)

    # -- metrics -----------------------------------------------------------

    def _tensorboard(self) -> Any:
        if not self.config.tensorboard:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.run_dir / "tb"), purge_step=self.env_steps or None)

    def _scalar(self, tag: str, value: float) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, self.env_steps)

    def _log_ratings(self) -> None:
        board = self.league.leaderboard()
        for row in board.itertuples():
            self._scalar(f"{row.policy}/rating", float(row.rating))
            self._scalar(f"{row.policy}/trueskill_mu", float(row.trueskill_mu))
            self._scalar(f"{row.policy}/score", float(row.score))

    def _leader(self) -> str:
        board = self.league.leaderboard()
        if board.empty:
            return ""
        top = board.iloc[0]
        return f"leader {top['policy']} ({top['rating']:.0f})"


def env_spec(env_fn: Any) -> str | None:
    """A string that rebuilds the env (registry id or import path), if there is one."""
    if isinstance(env_fn, str):
        return env_fn
    if hasattr(env_fn, "__spec__") and hasattr(env_fn, "__name__"):  # a module
        return env_fn.__name__
    module, name = getattr(env_fn, "__module__", None), getattr(env_fn, "__qualname__", "")
    if module and name and "<" not in name and module != "__main__":
        return f"{module}:{name}"
    return None


def _load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def _default_run_dir(env_name: str) -> str:
    return os.path.join("runs", f"{env_name}-{time.strftime('%Y%m%d-%H%M%S')}")


def _check_writable(run_dir: Path, min_free_mb: int) -> None:
    """Fail before training when the run directory cannot hold a run."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as err:
        raise RunDirError(
            f"run directory {str(run_dir)!r} is not writable ({err.strerror}); "
            "pass run_dir= a directory you can write to"
        ) from err
    free_mb = shutil.disk_usage(run_dir).free // 2**20
    if free_mb < min_free_mb:
        raise RunDirError(
            f"run directory {str(run_dir)!r} has only {free_mb} MiB free; at least "
            f"{min_free_mb} MiB (min_free_mb) are needed for checkpoints: free some space "
            "or pass run_dir= on another disk"
        )


def _progress(config: TrainConfig, initial: int) -> Any:
    if not config.progress:
        return None
    from tqdm.auto import tqdm

    total = config.total_steps or None
    return tqdm(total=total, initial=initial, unit="step", unit_scale=True, dynamic_ncols=True)
