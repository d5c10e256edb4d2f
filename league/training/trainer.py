"""The trainer: builds a run from its plan, runs its loop, and keeps its checkpoints.

`Trainer(env_fn, config, ...)` checks everything before it writes anything:
the plan (config against env), then the run directory (a new run never lands
on an old one; a resumed one must match its checkpoint). `run()` builds the
vector env and the loop, writes a first checkpoint (so a run can be resumed
from its first second), loops, and writes a last one. Ctrl-C or SIGTERM ends
the step in progress, checkpoints, prints how to resume, and then raises
`KeyboardInterrupt` (SIGINT) or `SystemExit(143)` (SIGTERM).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterable
from typing import Any

import torch

import wrappers
from league.config import DEFAULT_SECONDS, TrainConfig
from league.errors import EXPECTED_ERRORS, ConfigError, RunDirError
from league.ladder import LadderEvaluation, ladder_rungs
from league.manager import League
from league.pbt import PBT, PBTConfig
from league.policies import CallablePolicy, RandomPolicy
from league.policy_handle import PolicyHandle
from league.training import ray_backend
from league.training.loop import AsyncLoop, IterationInfo, Loop, SyncLoop, TrainingState
from league.training.metrics import History, Plots, ProgressBar, TensorBoard
from league.training.observers import Observer, Observers
from league.training.plan import (
    EnvInfo,
    available_cores,
    check_ids_are_not_seats,
    env_reference,
    make_plan,
)
from league.training.population import Population
from league.training.run_dir import RunDir
from league.training.signals import StopSignals


class Trainer:
    """One training run: its plan, population, league, run directory and observers."""

    def __init__(
        self,
        env_fn: Any,
        config: TrainConfig,
        *,
        resume: Any = None,
        overwrite: bool = False,
        mapping: Any = None,
        fixed_policies: dict[str, Any] | None = None,
        observers: Iterable[Observer] = (),
        pbt_objective: Any = None,
    ) -> None:
        self.env_fn = env_fn
        self.mapping = mapping
        self.fixed_policies = dict(fixed_policies or {})
        self.ray_started = False
        try:
            self._build(env_fn, config, resume, overwrite, observers, pbt_objective)
        except BaseException:
            self._stop_ray()
            if hasattr(self, "run_dir"):
                self.run_dir.release()
            raise

    def _build(
        self,
        env_fn: Any,
        config: TrainConfig,
        resume: Any,
        overwrite: bool,
        observers: Iterable[Observer],
        pbt_objective: Any,
    ) -> None:
        env = EnvInfo.probe(env_fn, config.pad, config.env_kwargs)
        if config.env is None:
            config = dataclasses.replace(config, env=env_reference(env_fn))
        cores = cluster_gpus = None
        if config.backend == "ray":
            self.ray_started = ray_backend.start_ray(config.ray_address, available_cores())
            resources = ray_backend.require_ray().cluster_resources()
            cores = int(resources.get("CPU", 2))
            cluster_gpus = float(resources.get("GPU", 0.0))
        self.plan = make_plan(
            config,
            env,
            custom_mapping=self.mapping is not None,
            cores=cores,
            cluster_gpus=cluster_gpus,
        )
        if resume is not None:
            self.run_dir = RunDir.open(resume)
            self.run_dir.check_resumable(env.name, env.seats, self.plan.learner_ids)
            self.run_dir.check_writable(config.min_free_mb)
        else:
            path = config.run_dir or default_run_dir(env.name)
            self.run_dir = RunDir.create(path, overwrite, config.min_free_mb)
        self.run_dir.claim()  # before anything is written: one writer per run directory
        self.config = dataclasses.replace(self.plan.config, run_dir=str(self.run_dir))
        capacity = self.plan.league_config.max_snapshots or 0
        if self.config.backend == "ray":
            self.population: Population = ray_backend.RayPopulation(
                self.plan.learners,
                env,
                self.plan.learner_gpus,
                self.config.device,
                self.config.stack,
                capacity,
                actors=self.plan.learner_hosts,
                share_trunk=self.config.share_trunk,
                trunk_update=self.config.trunk_update,
                greedy_snapshots=self.config.greedy_snapshots,
            )
        else:
            self.population = Population(
                self.plan.learners,
                env,
                stack=self.config.stack,
                snapshot_capacity=capacity,
                share_trunk=self.config.share_trunk,
                trunk_update=self.config.trunk_update,
                greedy_snapshots=self.config.greedy_snapshots,
            )
        self.league = self._build_league()
        self.state = TrainingState(learner_steps=dict.fromkeys(self.population.ids, 0))
        self.resumed = resume is not None
        if self.resumed:
            self._restore()
        self.observers = Observers([History(), *observers])
        if self.config.pbt_enabled:
            self.observers.add(PBT(PBTConfig.from_value(self.config.pbt), pbt_objective))
        # The ladder is for contests between seats of one role (board games, rps, ...).
        contest = len(self.league.layout.team_names) > 1
        if self.config.ladder_seconds and len(env.role_names) == 1 and contest:
            obs_space, action_space = env.spaces[env.roles[0]]
            rungs = ladder_rungs(env.name, action_space, obs_space)
            self.observers.add(
                LadderEvaluation(
                    rungs,
                    self.config.ladder_seconds,
                    self.config.ladder_games,
                    self.config.ladder_top,
                )
            )
        if self.config.plots:
            self.observers.add(Plots())
        if self.resumed:
            self._restore_observers()
        self.tensorboard: TensorBoard | None = None
        if self.config.progress:
            self.observers.add(ProgressBar())
        self.signals = StopSignals()
        self.loop: Loop | None = None
        self.last_iteration = IterationInfo()
        self._last_checkpoint = time.monotonic()
        self._announced_ties = False

    # -- building ------------------------------------------------------------

    def _build_league(self) -> League:
        config, env = self.config, self.plan.env
        league = League(
            env.seats,
            env.roles,
            teams=config.teams,
            config=self.plan.league_config,
            mapping=self.mapping,
        )
        for spec in self.plan.learners:
            league.add_learner(spec.id, spec.role, algo=spec.algo, league_role=spec.league_role)
        for name in config.opponents:
            if name != "random":
                raise ConfigError(
                    f"opponents: unknown fixed policy {name!r}; available: ['random'] (your own "
                    "go in fixed_policies=)"
                )
            for role in env.role_names:
                pid = "random" if len(env.role_names) == 1 else f"random_{role}"
                obs_space, action_space = env.spaces[role]
                random = RandomPolicy(action_space, seed=config.seed, observation_space=obs_space)
                league.add_fixed(pid, role, random)
        check_ids_are_not_seats(list(self.fixed_policies), env)
        for pid, fn in self.fixed_policies.items():
            role = getattr(fn, "role", None) or env.roles[0]
            league.add_fixed(pid, role, fn if hasattr(fn, "act") else CallablePolicy(fn))
        return league

    def _restore(self) -> None:
        """Load the last checkpoint: counters, weights, optimizers, the league, snapshots."""
        commit = self.run_dir.read_commit()
        self.state = TrainingState(
            env_steps=int(commit["env_steps"]),
            iteration=int(commit["iteration"]),
            elapsed=float(commit["elapsed"]),
            learner_steps={pid: int(commit["learner_steps"][pid]) for pid in self.population.ids},
            stopped=dict(commit.get("stopped", {})),
            dropped_episodes=int(commit.get("dropped_episodes", 0)),
        )
        files = commit["files"]
        for pid in self.population.ids:
            self.population.load_state_dict(pid, self.run_dir.load_policy(files[pid])["state"])
        league = League.load(self.run_dir.path, mapping=self.mapping)
        self._check_league_options(league)
        if sorted(league.learners()) != sorted(self.population.ids):
            raise RunDirError(
                f"cannot resume {str(self.run_dir)!r}: its league.json has learners "
                f"{league.learners()} but its config builds {self.population.ids}"
            )
        for pid, record in league.policies.items():
            if record.kind == "snapshot":
                state = self.run_dir.load_policy(files[pid])["state"]
                record.payload = self.population.frozen_from_file(record.parent, state)
            elif record.kind == "learner":
                record.payload = self.population[pid]
            elif pid in self.league.policies:
                record.payload = self.league.policies[pid].payload
            else:
                raise RunDirError(
                    f"run {str(self.run_dir)!r} played against fixed policy {pid!r}, a user "
                    f"function that runs do not save; pass fixed_policies={{{pid!r}: fn}} "
                    "to resume it"
                )
        for pid, record in self.league.policies.items():  # opponents new on this resume
            if pid not in league.policies and record.kind == "fixed":
                league.add_fixed(pid, record.role, record.payload, record.algo)
        self.league = league

    def _check_league_options(self, league: League) -> None:
        """The saved league keeps its own options (its matchmaking state and ratings
        were made under them): a `league={...}` option given on resume that differs
        is refused rather than silently ignored."""
        wanted = self.plan.league_config
        changed = [
            f"{key} {getattr(league.config, key)!r} -> {getattr(wanted, key)!r}"
            for key in self.config.league
            if key != "seed" and getattr(league.config, key) != getattr(wanted, key)
        ]
        if changed:
            raise ConfigError(
                f"cannot resume {str(self.run_dir)!r} with other league options "
                f"({'; '.join(changed)}): its ratings and matchmaking were made under the "
                "saved ones. Leave league= as saved, or train a new run directory"
            )

    def _restore_observers(self) -> None:
        saved = self.run_dir.read_commit().get("observers", {})
        for observer in self.observers:
            state = saved.get(type(observer).__name__)
            if state is not None and hasattr(observer, "load_state_dict"):
                observer.load_state_dict(state)

    # -- running -------------------------------------------------------------

    def run(self) -> str:
        """Train until the budget is spent; returns why the run ended ("budget", ...)."""
        self.run_dir.claim()
        try:
            return self._run()
        finally:
            self.run_dir.release()

    def _run(self) -> str:
        config = self.config
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        if self.resumed:
            print(f"league: resuming {self.run_dir} at {self.state.env_steps:,} env steps")
        else:
            print(f"league: training {self.plan.env.name} into {self.run_dir}")
        notes = [self._budget_note(), *self.plan.notes, self.population.describe()]
        for note in [*notes, *self._contest_notes()]:
            print(f"league: {note}")
        batch_size, ordered = self._recv_schedule()
        # The env workers start before any thread of ours (TensorBoard's writer, the
        # progress bar's monitor): while this process runs one thread they fork on
        # Linux, so a script without `if __name__ == "__main__":` is not run again in
        # each worker, as forkserver and spawn would.
        vec = wrappers.vector(
            self.env_fn,
            num_envs=config.num_envs,
            num_workers=config.num_workers,
            batch_size=batch_size,
            ordered=ordered,
            backend="ray" if config.backend == "ray" else "auto",
            pad=config.pad,
            illegal_actions=config.illegal_actions,
            env_kwargs=config.env_kwargs or None,
            opening_plies=config.opening_plies,
            opening_share=config.opening_share,
        )
        reason = "error"
        expected_error = False
        try:
            if config.tensorboard:
                self.tensorboard = TensorBoard(str(self.run_dir.path / "tb"), self.state.env_steps)
                self.observers.add(self.tensorboard)
            self.loop = (AsyncLoop if config.mode == "async" else SyncLoop)(self, vec)
            self.run_dir.write_config(self.config.to_dict(), self.plan.chosen)
            self.observers.emit("on_start", self)
            self.checkpoint()
            with self.signals:
                reason = self.loop.run()
        except EXPECTED_ERRORS as err:
            # Bad input met mid-run: keep what was learnt so far (unless the error
            # took the learners with it).
            expected_error = getattr(err, "save", True)
            raise
        finally:
            if self.loop is not None:
                self.loop.close()
            vec.close()
            if expected_error and self.loop is not None:
                self._save_before_error()
            if reason == "error" and self.loop is not None:
                # Close what observers hold (TensorBoard, the progress bar); an observer
                # that fails here must not hide the error that stopped the run.
                with contextlib.suppress(Exception):
                    self.observers.emit("on_stop", self, "error")
            if not expected_error and reason == "error":
                self._stop_ray()
        self.checkpoint()
        self._stop_ray()
        self.observers.emit("on_stop", self, reason)
        print(
            f"league: {reason}: {self.state.env_steps:,} env steps; {self._samples_note()}; "
            f"run directory {self.run_dir} holds {self.run_dir.size_bytes() / 2**20:,.1f} MiB"
        )
        if reason in ("SIGINT", "SIGTERM"):
            print(
                f"league: stopped by {reason} at {self.state.env_steps:,} env steps; "
                f"everything up to here is saved in {self.run_dir}.\n"
                f"league: resume with {self.resume_command()}",
                flush=True,
            )
            if reason == "SIGINT":
                raise KeyboardInterrupt
            raise SystemExit(143)
        return reason

    def _budget_note(self) -> str:
        config = self.config
        seconds, steps = config.max_seconds, config.total_steps
        parts = []
        if seconds:
            parts.append(f"{seconds / 60:g} minutes (max_seconds={seconds:g})")
        if steps:
            parts.append(f"{steps:,} env steps in all (total_steps)")
        note = "budget: " + ", or ".join(parts)
        if len(parts) > 1:
            note += ", whichever ends first"
        if seconds == DEFAULT_SECONDS and not steps:
            note += ", the default; pass max_seconds= or total_steps= to change it"
        return note

    def _contest_notes(self) -> list[str]:
        layout = self.league.layout
        if len(layout.team_names) > 1:
            return self._unrated_notes()
        what = "one seat" if len(layout.seats) == 1 else "every seat on one team"
        notes = [
            f"{self.plan.env.name} has {what}: its matches are not contests, so the "
            "leaderboard ranks policies by mean episode return (with a 95% interval), not by "
            "rating"
        ]
        fixed = [p for p, r in self.league.policies.items() if r.kind == "fixed"]
        if fixed and len(layout.seats) > 1:
            fix = []
            if self.config.opponents:
                fix.append(f"pass opponents=[] (now {self.config.opponents})")
            if self.fixed_policies:
                fix.append("leave out fixed_policies")
            notes.append(
                f"warning: fixed policies {fixed} will play seats of the learners' own team, "
                "which only adds noise to a cooperative env; to train without them, "
                + " and ".join(fix)
            )
        return notes

    def _unrated_notes(self) -> list[str]:
        """A warning when the learners of a one-role env only ever play themselves: no
        game is then rated, and the leaderboard cannot tell them apart."""
        wanted = self.plan.league_config
        drawn = {k for k, w in wanted.mix.items() if w > 0}
        only_self = wanted.strategy == "self_play" or (
            wanted.strategy == "mix" and drawn == {"self_play"}
        )
        learners = self.league.learners()
        if not only_self or len(set(self.league.layout.roles)) > 1 or len(learners) < 2:
            return []
        return [
            f"warning: each of the {len(learners)} learners only plays itself, so no game is "
            "rated (strategy 'self_play', or a mix of it alone): the leaderboard cannot rank "
            "them and lists them in order (its top is the first); the default mix also plays "
            "past players, which rates them"
        ]

    def _recv_schedule(self) -> tuple[int | None, bool]:
        """(envs per recv, ordered): with workers, act on some envs while the others
        step (Sample Factory's double buffering). Async takes whichever worker is done
        first; sync steps two halves in a fixed order (SyncLoop); batched mode, whose
        env blocks act together, and runs without workers step all envs at once."""
        c = self.config
        if c.batched:
            return None, False
        if c.mode == "async":
            return (c.num_envs // c.num_workers, False) if c.num_workers > 1 else (None, False)
        if c.num_workers and c.num_workers % 2 == 0:
            return c.num_envs // 2, True
        return None, False

    def _stop_ray(self) -> None:
        """Stop the learner actor, and the local Ray this run started (not a cluster)."""
        if isinstance(getattr(self, "population", None), ray_backend.RayPopulation):
            with contextlib.suppress(Exception):
                self.population.close()
        if self.ray_started:
            ray_backend.require_ray().shutdown()
            self.ray_started = False

    def _save_before_error(self) -> None:
        try:
            self.checkpoint()
        finally:
            self._stop_ray()
        print(
            f"league: the run stopped on the error below; everything up to "
            f"{self.state.env_steps:,} env steps is saved in {self.run_dir}",
            flush=True,
        )

    def _samples_note(self) -> str:
        """How many samples the learners trained on, for the last line of a run: moves
        of fixed policies and snapshots are env steps no learner learns from."""
        samples = sum(self.state.learner_steps.values())
        per_step = samples / self.state.env_steps if self.state.env_steps else 0.0
        return f"the learners trained on {samples:,} samples ({per_step:.2f} per env step)"

    def resume_command(self) -> str:
        env = self.config.env
        if env is not None:
            return f"python -m league train {env} --resume {self.run_dir}"
        return f"league.train(<your env function>, resume={str(self.run_dir)!r})"

    def copy_learner(self, source: str, target: str) -> None:
        """Target takes source's weights, optimizer state and hyperparameters (PBT)."""
        if self.loop is not None:
            self.loop.copy_learner(source, target)
        else:
            self.population.copy(source, target)

    def set_hyperparameters(self, policy_id: str, values: dict[str, float]) -> None:
        """New hyperparameters for a learner (PBT), never while its learner thread is in
        the middle of an update."""
        loop = self.loop
        with loop.consistent(policy_id) if loop is not None else contextlib.nullcontext():
            self.population.set_hyperparameters(policy_id, **values)

    def policy_handle(self, policy_id: str, deterministic: bool = False) -> PolicyHandle:
        """A policy of the run as it acts now, for evaluation."""
        record = self.league.policies[policy_id]
        policy = self.population.get(policy_id, record.payload)
        return PolicyHandle(policy_id, policy, record.role, deterministic)

    def scalar(self, tag: str, value: float) -> None:
        """A TensorBoard scalar at the current env step (nothing without TensorBoard)."""
        if self.tensorboard is not None:
            self.tensorboard.scalar(tag, value)

    def lags(self) -> dict[str, Any]:
        """Async policy-lag statistics per learner (empty in sync mode)."""
        return {} if self.loop is None else self.loop.lags()

    # -- checkpoints -----------------------------------------------------------

    def maybe_checkpoint(self) -> None:
        if time.monotonic() - self._last_checkpoint >= self.config.checkpoint_seconds:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Write every learner, then the league, then trainer.json (the commit point)."""
        if (
            not self._announced_ties
            and len(self.league.layout.team_names) > 1
            and self.league.ranked_by == "return"
        ):
            self._announced_ties = True
            print(
                "league: every match so far ended with all seats level (a cooperative env?): "
                "the leaderboard ranks policies by mean episode return until one does not; "
                "pass teams= to put cooperating seats on one team"
            )
        files, steps, data = {}, {}, {}
        for unit in self.population.units:  # a unit's learners under one hold of its lock:
            with self.loop.consistent(unit.ids[0]):  # a shared trunk is the same in each
                for pid in unit.ids:
                    steps[pid] = self.loop.trained_steps(pid)
                    data[pid] = self.population.policy_file(pid, steps[pid])
        for pid in self.population.ids:
            files[pid] = self.run_dir.save_policy(pid, steps[pid], data.pop(pid))
        for pid, record in self.league.policies.items():
            if record.kind == "snapshot":
                files[pid] = self.run_dir.relative(self.run_dir.policy_path(pid, record.step))
        self.league.save(self.run_dir.path)
        state = self.state
        self.run_dir.commit(
            {
                "env": self.plan.env.name,
                "seats": self.plan.env.seats,
                "env_steps": state.env_steps,
                "iteration": state.iteration,
                "elapsed": state.elapsed,
                "learner_steps": steps,
                "stopped": state.stopped,
                "dropped_episodes": state.dropped_episodes,
                "files": files,
                "observers": {
                    type(o).__name__: o.state_dict()
                    for o in self.observers
                    if hasattr(o, "state_dict")
                },
            }
        )
        self._last_checkpoint = time.monotonic()
        self.observers.emit("on_checkpoint", self)

    def save_snapshot(self, snapshot_id: str) -> None:
        """Write a new snapshot's file (snapshots never change, so once is enough)."""
        record = self.league.policies[snapshot_id]
        data = self.population.policy_file(record.parent, record.step, record.payload)
        self.run_dir.save_policy(snapshot_id, record.step, data)


def default_run_dir(env_name: str) -> str:
    """``runs/<env>-<time>``, with a suffix if a run started in the same second."""
    base = f"runs/{env_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while RunDir(path).holds_run():
        n += 1
        path = f"{base}-{n}"
    return path
