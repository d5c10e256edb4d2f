"""`check_env`: run an env through the wrappers and say what would make training wrong or slow.

This module owns the env check users run on their own envs, as PettingZoo's
`api_test` is run on PettingZoo's. It builds the env, checks that every seat's
spaces have a model, and plays a few episodes three times:

1. in a plain PettingZoo loop (``agent_iter``/``last``/``step``, or the
   parallel ``step`` loop) with random legal actions, which it records;
2. the recording again in the plain loop, on a fresh env with the same seed,
   to tell an env that does not replay (so nothing can be compared) from one
   whose rewards the wrapper would get wrong;
3. the recording through `wrappers.multiagent`: each seat's rewards must add
   up to its return in run 1.

It then measures the step cost and asks the trainer's planner what it would
choose for the env. The result is a `CheckReport`: findings (a severity, a
code from `CODES`, a message naming the env and seat and what to change) and
facts (seats, roles, spaces, step cost, sizes, the trainer's defaults).
`main(argv)` is the command line: ``ENV [--episodes N] [--env-kwargs JSON]
[--seed S] [--pad]``.
"""

from __future__ import annotations

import contextlib
import math
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np
from gymnasium.spaces import Discrete, Space
from pettingzoo import AECEnv, ParallelEnv

import wrappers
from league.config import TrainConfig
from league.errors import ConfigError
from league.models import UnsupportedSpaceError, make_action_head, make_encoder
from league.policies import RandomPolicy
from league.training.plan import EnvInfo, make_plan
from wrappers.errors import ActionError, EnvError, RewardError, SpaceError
from wrappers.spaces import MASK_KEY, seat_space

# An env step slower than this makes collection, not learning, the cost of a run.
SLOW_STEP_SECONDS = 5e-3
# One env step's observations (every seat) above this crowd the trainer's buffers.
LARGE_OBS_BYTES = 2**20
# Steps (AEC: turns, dead steps included) after which an episode counts as endless.
MAX_EPISODE_STEPS = 20_000

# Every finding code and its severity: "error" means training would fail or
# learn from wrong data, "warning" that it would be slow or cannot be verified.
CODES = {
    "env_does_not_build": "error",  # building or wrapping the env raised
    "no_seats": "error",  # the env has no agents
    "unsupported_space": "error",  # a seat's space has no wrapper layout or no model
    "no_legal_action": "error",  # an acting seat's action mask allows nothing
    "action_mask_wrong_shape": "error",  # a mask is not one bool per action
    "action_refused": "error",  # the wrapper refused an action the env's mask allowed
    "acts_after_done": "error",  # a seat is selected, kept or paid after its episode ended
    "episode_did_not_end": "warning",  # no end within MAX_EPISODE_STEPS
    "reward_not_finite": "error",  # a NaN or infinite reward
    "observation_not_finite": "error",  # NaN or infinite values in an observation
    "observation_shape_mismatch": "error",  # an observation unlike its space
    "not_reproducible": "warning",  # same seed and actions, different episode
    "wrapper_disagrees": "error",  # the wrapper's turns differ from the plain loop's
    "rewards_do_not_add_up": "error",  # wrapper rewards do not sum to the plain loop's return
    "slow_step": "warning",  # an env step costs more than SLOW_STEP_SECONDS
    "large_observations": "warning",  # an env step's observations exceed LARGE_OBS_BYTES
    "trainer_defaults": "info",  # what the trainer would choose for this env
    "no_working_defaults": "error",  # the planner refuses TrainConfig() for this env
    "unexpected_error": "error",  # anything else the env or wrapper raised
}
# The checks in the order they run; `CheckReport.checks` lists those that ran to the end.
CHECKS = ("build", "models", "episodes", "rewards", "step_cost", "defaults")
SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One thing the check found, `code` naming it (see `CODES`)."""

    severity: str  # "error" | "warning" | "info"
    code: str
    message: str  # names the env and seat, and what to change

    def __str__(self) -> str:
        return f"{self.severity.upper():7} {self.code}: {self.message}"


@dataclass
class CheckReport:
    """What `check_env` found (`findings`) and measured (the other fields)."""

    env: str  # the env's name, as the wrappers' errors quote it
    findings: list[Finding] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)  # the checks that ran to the end
    seats: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)  # role per seat
    spaces: dict[str, tuple[Space, Space]] = field(default_factory=dict)  # role -> (obs, action)
    step_us: float | None = None  # one env step with random legal actions, in µs
    obs_bytes: int | None = None  # one env step's observations, every seat
    env_bytes: int | None = None  # held by one env after reset (Python and numpy allocations)
    num_envs: int | None = None  # envs the trainer would step with TrainConfig() defaults
    defaults: list[str] = field(default_factory=list)  # the planner's choices and why

    @property
    def ok(self) -> bool:
        """No errors: training on this env would not fail or learn from wrong data."""
        return not any(f.severity == "error" for f in self.findings)

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def add(self, code: str, message: str) -> None:
        self.findings.append(Finding(CODES[code], code, message))

    def __str__(self) -> str:
        errors = sum(f.severity == "error" for f in self.findings)
        warnings = sum(f.severity == "warning" for f in self.findings)
        verdict = "OK" if not errors else f"{errors} error(s)"
        lines = [f"check_env {self.env!r}: {verdict}, {warnings} warning(s)"]
        if self.seats:
            lines.append(f"  seats: {', '.join(self.seats)}")
        for role, (obs_space, action_space) in self.spaces.items():
            members = [s for s, r in zip(self.seats, self.roles, strict=True) if r == role]
            lines.append(f"  role {role!r} ({', '.join(members)}):")
            lines.append(f"    observation {obs_space}, action {action_space}")
        if self.step_us is not None:
            lines.append(f"  step cost: {self.step_us:,.0f} µs per env step")
        if self.obs_bytes is not None:
            lines.append(f"  observations: {_size(self.obs_bytes)} per env step")
        if self.env_bytes is not None:
            memory = f"  memory: about {_size(self.env_bytes)} per env"
            if self.num_envs:
                memory += f", {_size(self.env_bytes * self.num_envs)} for {self.num_envs} envs"
            lines.append(memory)
        if self.defaults:
            lines.append("  trainer defaults (TrainConfig()):")
            lines.extend(f"    {note}" for note in self.defaults)
        findings = sorted(self.findings, key=lambda f: SEVERITIES.index(f.severity))
        if findings:
            lines.append("findings:")
            lines.extend(f"  {f}" for f in findings)
        lines.append(f"checks run: {', '.join(self.checks) or 'none'}")
        skipped = [c for c in CHECKS if c not in self.checks]
        if skipped:
            lines.append(f"not run: {', '.join(skipped)} (fix the errors above first)")
        return "\n".join(lines)


def check_env(
    env_fn: Any,
    *,
    episodes: int = 5,
    seed: int = 0,
    env_kwargs: dict | None = None,
    pad: bool = False,
) -> CheckReport:
    """Check an env for what would make training on it wrong or slow.

    Args:
        env_fn: anything `wrappers.multiagent` accepts: a PettingZoo env, env
            function or module, a registry id (``"classic/connect_four-v3"``),
            an import path or a gymnasium id. Anything but a built env is built
            afresh for each run; a built env serves every run, and measuring
            its step cost (`EnvInfo.probe`) closes it at the end.
        episodes: episodes played in each run (fewer for slow envs).
        seed: the seed of the first reset and of the random actions.
        env_kwargs: keyword arguments for the env constructor.
        pad: check the env as `pad=True` training would see it.

    Problems with the env become findings; this raises only for bad arguments.
    """
    if episodes < 1:
        raise ConfigError(f"episodes={episodes}: the check needs at least one episode")
    checker = _Checker(env_fn, episodes, seed, dict(env_kwargs or {}), pad)
    try:
        checker.run()
    finally:
        for env in checker.built:
            # A close that fails says nothing about training, and must not hide the report.
            with contextlib.suppress(Exception):
                env.close()
    return checker.report


class _Stop(Exception):
    """Ends the check: later checks cannot run. Carries a finding unless one was added."""

    def __init__(self, code: str | None = None, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Diverged(Exception):
    """A replayed run left its recording: another seat acted, or the episode ended elsewhere."""


BUILD, WRAP = "while building it", "while wrapping it"


class _Checker:
    """One check of one env: builds it, runs the checks in order, fills `report`."""

    def __init__(self, env_fn: Any, episodes: int, seed: int, env_kwargs: dict, pad: bool) -> None:
        self.env_fn = env_fn
        self.episodes = episodes
        self.seed = seed
        self.env_kwargs = env_kwargs
        self.pad = pad
        self.report = CheckReport(env=_describe(env_fn))
        self.rebuild = not _is_built(env_fn)
        self.built: list[Any] = []  # envs this check built, closed when it ends
        self.stage = BUILD
        self.playing: _Run | None = None  # the run being played, for error messages

    def run(self) -> None:
        report = self.report
        try:
            raw = self._build()
            env = self._wrap(raw)
            self._models(env)
            self._play(raw, env)
            if report.ok:
                self._cost()
        except _Stop as stop:
            if stop.code:
                report.add(stop.code, stop.message)
        except RewardError as err:
            report.add("reward_not_finite", f"{err} ({self._where()}). {_FINITE_REWARDS}.")
        except ActionError as err:
            report.add(
                "action_refused",
                f"{err} ({self._where()}). The check chose this action from the seat's action "
                "space and the env's own mask: the mask it reports disagrees with its space.",
            )
        except SpaceError as err:
            report.add("unsupported_space", f"{err}.")
        except EnvError as err:
            code = "env_does_not_build" if self.stage in (BUILD, WRAP) else "unexpected_error"
            report.add(code, f"{err}.")
        except Exception as err:
            code = "env_does_not_build" if self.stage in (BUILD, WRAP) else "unexpected_error"
            report.add(
                code,
                f"env {report.env!r} raised {type(err).__name__}: {err} ({self._where()}). "
                "Run the same steps in a plain loop to see the traceback.",
            )

    def _where(self) -> str:
        return self.stage if self.playing is None else f"{self.stage}, {self.playing.where}"

    def _make(self) -> Any:
        env = wrappers.make_env(self.env_fn, self.env_kwargs)
        if self.rebuild:
            self.built.append(env)
        return env

    # -- build and models ----------------------------------------------------

    def _build(self) -> Any:
        raw = self._make()
        report = self.report
        report.env = _name_of(raw)
        if isinstance(raw, gymnasium.Env) and not getattr(raw, "is_multiagent", False):
            return raw  # one seat, whose spaces the wrapper checks
        seats = list(getattr(raw, "possible_agents", None) or [])
        if not seats:
            raise _Stop(
                "no_seats",
                f"env {report.env!r} has no agents (possible_agents is empty or missing), so "
                "there is nothing to train. Set self.possible_agents in the env's __init__.",
            )
        if isinstance(raw, AECEnv | ParallelEnv):
            for agent in seats:  # every seat, where the wrapper would stop at the first
                try:
                    obs_space, action_space = raw.observation_space(agent), raw.action_space(agent)
                    seat_space(agent, obs_space, action_space, report.env)
                except SpaceError as err:
                    report.add("unsupported_space", f"{err}.")
            if not report.ok:
                raise _Stop()
        return raw

    def _wrap(self, raw: Any) -> Any:
        self.stage = WRAP
        if self.rebuild:
            env, self.report.env_bytes = self._measured_build()
        else:
            env = wrappers.multiagent(raw, pad=self.pad)
        report = self.report
        report.env = env.name
        report.seats, report.roles = list(env.possible_agents), list(env.roles)
        for i, role in enumerate(env.roles):
            report.spaces.setdefault(role, (env.observation_spaces[i], env.action_spaces[i]))
        report.checks.append("build")
        return env

    def _measured_build(self) -> tuple[Any, int]:
        """A fresh wrapped env, reset, and the bytes it holds (what tracemalloc sees:
        Python objects and numpy arrays, not memory an env's C libraries keep)."""
        tracing = tracemalloc.is_tracing()
        if not tracing:
            tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            env = wrappers.multiagent(self.env_fn, pad=self.pad, env_kwargs=self.env_kwargs)
            self.built.append(env)
            env.reset(seed=self.seed)
            held, _ = tracemalloc.get_traced_memory()
        finally:
            if not tracing:
                tracemalloc.stop()
        return env, max(0, held - before)

    def _models(self, env: Any) -> None:
        self.stage = "while building its models"
        hidden_sizes = TrainConfig().hidden_sizes
        for role, (obs_space, action_space) in self.report.spaces.items():
            where = f"env {env.name!r}, seat {env.possible_agents[env.roles.index(role)]!r}"
            try:
                _, features = make_encoder(obs_space, hidden_sizes, where=where)
                make_action_head(action_space, features, where=where)
            except UnsupportedSpaceError as err:
                self.report.add("unsupported_space", str(err))
        if not self.report.ok:
            raise _Stop()
        self.report.checks.append("models")

    # -- episodes and rewards --------------------------------------------------

    def _play(self, raw: Any, env: Any) -> None:
        report = self.report
        kind = _kind(raw)
        raw_spaces = _action_spaces(kind, raw, env)
        plain = "in a plain PettingZoo loop" if kind != "list" else "in the env's own loop"

        self.stage = plain
        first = _Run(report.env, raw_spaces, self.seed)
        returns = self._episodes(raw, _episode_fn(kind), first, self.episodes)
        played = len(returns)

        self.stage = f"replaying the first run {plain}"
        again = _Run(report.env, raw_spaces, self.seed, replay=first.steps)
        try:
            replayed = self._episodes(
                self._make() if self.rebuild else raw, _episode_fn(kind), again, played
            )
        except _Diverged as err:
            replayed = None
            report.add("not_reproducible", _not_reproducible(report.env, self.seed, str(err)))
        if replayed is not None and (bad := _differences(returns, replayed)):
            e, seat, a, b = bad[0]
            replayed = None
            report.add(
                "not_reproducible",
                _not_reproducible(
                    report.env, self.seed, f"in episode {e + 1} seat {seat!r} returned {b} not {a}"
                ),
            )
        if kind == "list":
            report.checks.append("episodes")
            return

        # The wrapped run replays the recording where the env replays; where it does
        # not, it plays its own random legal actions, still checking every step.
        self.stage = "through the wrappers"
        wrapped_spaces = dict(zip(env.possible_agents, env.action_spaces, strict=True))
        steps = first.steps if replayed is not None and played else None
        run = _Run(report.env, wrapped_spaces, self.seed, replay=steps)
        try:
            totals = self._episodes(
                env, _WrappedEpisodes(), run, played if steps else self.episodes
            )
        except _Diverged as err:
            raise _Stop(
                "wrapper_disagrees",
                f"env {report.env!r}: the wrapped env left the plain loop's run: {err}. The "
                "env replays in a plain loop, so the wrapper steps it differently: please "
                "report this with the env.",
            ) from None
        report.checks.append("episodes")
        if steps is None or not played:
            return
        for e, seat, expected, got in _differences(returns, totals):
            report.add(
                "rewards_do_not_add_up",
                f"env {report.env!r}, seat {seat!r}: its rewards through the wrapper add up to "
                f"{got} in episode {e + 1}, but the plain PettingZoo loop returns {expected}. "
                "The env replays the same episode, so the wrapper lost or moved a reward: "
                "please report this with the env.",
            )
        report.checks.append("rewards")

    def _episodes(self, env: Any, episode: EpisodeFn, run: _Run, count: int) -> list[dict]:
        """Play `count` episodes of `run`; each seat's return per episode."""
        self.playing = run
        returns = []
        for e in range(count):
            run.new_episode()
            got = episode(env, run, self.seed if e == 0 else None)
            if got is None:
                run.steps.pop()
                if "episode_did_not_end" in self.report.codes:
                    break  # said once is enough: the wrapped run meets the same endless episode
                self.report.add(
                    "episode_did_not_end",
                    f"env {self.report.env!r}: episode {e + 1} did not end within "
                    f"{MAX_EPISODE_STEPS:,} steps of random play ({self.stage}); the check "
                    "went on with the episodes before it. Give the env a step limit "
                    "(e.g. max_cycles) so episodes end.",
                )
                break
            run.end_episode()
            returns.append(got)
        self.playing = None
        return returns

    # -- cost and defaults -----------------------------------------------------

    def _cost(self) -> None:
        report = self.report
        self.stage = "while measuring its step cost"
        info = EnvInfo.probe(self.env_fn, self.pad, self.env_kwargs)
        report.step_us, report.obs_bytes = info.step_seconds * 1e6, info.obs_bytes
        if info.step_seconds > SLOW_STEP_SECONDS:
            report.add(
                "slow_step",
                f"env {report.env!r}: one env step costs {info.step_seconds * 1e3:,.1f} ms with "
                f"random legal actions (over {SLOW_STEP_SECONDS * 1e3:g} ms), so collecting "
                "experience will dominate training. Profile the env's step (rendering, "
                "sleeps, per-agent Python loops) or give the trainer more worker processes.",
            )
        if info.obs_bytes > LARGE_OBS_BYTES:
            shapes = ", ".join(
                f"{role} {obs.shape} {obs.dtype}" for role, (obs, _) in report.spaces.items()
            )
            report.add(
                "large_observations",
                f"env {report.env!r}: one env step's observations take {_size(info.obs_bytes)} "
                f"over all seats ({shapes}), so the trainer can keep only a few envs in memory. "
                "Downsample or grayscale them in the env (e.g. SuperSuit's resize_v1, "
                "color_reduction_v0) if the policy does not need every pixel.",
            )
        report.checks.append("step_cost")
        self.stage = "while planning with the trainer's defaults"
        try:
            plan = make_plan(TrainConfig(pad=self.pad, env_kwargs=self.env_kwargs), info)
        except ValueError as err:  # ConfigError is one
            raise _Stop(
                "no_working_defaults",
                f"the trainer refuses its defaults (TrainConfig()) for env {report.env!r}: "
                f"{err}. Pass the options it names to league.train.",
            ) from None
        report.defaults, report.num_envs = list(plan.notes), plan.config.num_envs
        choices = ", ".join(note.split(":", 1)[0] for note in plan.notes) or "nothing to choose"
        report.add(
            "trainer_defaults",
            f"with TrainConfig() defaults the trainer would pick {choices} for env "
            f"{report.env!r}; why is under 'trainer defaults'.",
        )
        report.checks.append("defaults")


_FINITE_REWARDS = (
    "Return finite float rewards: look for divisions by zero, logs of 0 or overflow in the "
    "env's reward code"
)


def _not_reproducible(env: str, seed: int, what: str) -> str:
    return (
        f"env {env!r}: the same seed ({seed}) and the same actions gave another episode: "
        f"{what}, so the wrapper's rewards could not be compared with it. Seed every random "
        "generator the env uses from reset(seed=...)."
    )


def _differences(a: list[dict], b: list[dict]) -> list[tuple[int, str, float, float]]:
    """(episode, seat, a's return, b's return) wherever they differ; NaN equals NaN."""
    out = []
    for e, (x, y) in enumerate(zip(a, b, strict=False)):
        for seat, ra in x.items():
            rb = y.get(seat, 0.0)
            same = math.isclose(ra, rb, rel_tol=1e-6, abs_tol=1e-6)
            if not same and not (math.isnan(ra) and math.isnan(rb)):
                out.append((e, seat, ra, rb))
    return out


# -- runs: where the actions come from, and one episode of each kind of env -----


class _Run:
    """One run's actions: random legal ones, recorded as they are chosen, or another
    run's recording replayed step by step. Checks each acting seat's action mask."""

    def __init__(
        self,
        env: str,
        action_spaces: dict[str, Space],
        seed: int,
        replay: list[list[dict[str, Any]]] | None = None,
    ) -> None:
        self.env = env
        self.seats = list(action_spaces)
        self._spaces = action_spaces
        self._replay = replay
        self._policies = {
            seat: RandomPolicy(space, seed=seed + k)
            for k, (seat, space) in enumerate(action_spaces.items())
        }
        self.steps: list[list[dict[str, Any]]] = []  # per episode, per step: seat -> action

    @property
    def where(self) -> str:
        if not self.steps:
            return "before the first episode"
        n = len(self.steps[-1])
        return f"episode {len(self.steps)}, after {n} step{'' if n == 1 else 's'}"

    def new_episode(self) -> None:
        self.steps.append([])

    def end_episode(self) -> None:
        if self._replay is not None:
            n, recorded = len(self.steps[-1]), len(self._replay[len(self.steps) - 1])
            if n != recorded:
                raise _Diverged(
                    f"episode {len(self.steps)} ended after {n} steps, not after {recorded}"
                )

    def choose(self, masks: dict[str, np.ndarray | None]) -> dict[str, Any]:
        """The actions of the seats to act (the keys of `masks`) for the next step."""
        for seat, mask in masks.items():
            self._check_mask(seat, mask)
        if self._replay is None:
            step = {seat: self._random(seat, mask) for seat, mask in masks.items()}
        else:
            episode, k = self._replay[len(self.steps) - 1], len(self.steps[-1])
            if k >= len(episode) or set(episode[k]) != set(masks):
                was = sorted(episode[k]) if k < len(episode) else "the episode's end"
                raise _Diverged(
                    f"in episode {len(self.steps)} after {k} steps seats {sorted(masks)} were to "
                    f"act where the first run had {was}"
                )
            step = episode[k]
        self.steps[-1].append(step)
        return step

    def _random(self, seat: str, mask: np.ndarray | None) -> Any:
        action = self._policies[seat].act(None, mask)
        # A Python int, as the wrapper hands Discrete actions on, so that the plain
        # loop and the wrapper give the env the very same values.
        return int(action) if isinstance(self._spaces[seat], Discrete) else action

    def _check_mask(self, seat: str, mask: np.ndarray | None) -> None:
        space = self._spaces[seat]
        if mask is None or not isinstance(space, Discrete):
            return
        mask = np.asarray(mask)
        where = f"env {self.env!r}, seat {seat!r}"
        if mask.shape != (space.n,):
            raise _Stop(
                "action_mask_wrong_shape",
                f"{where}: its action mask has shape {mask.shape}, but its action space {space} "
                f"needs ({space.n},) ({self.where}). Give one bool per action.",
            )
        if not mask.any():
            raise _Stop(
                "no_legal_action",
                f"{where}: its action mask allows no action although the seat is to act "
                f"({self.where}). Do not select a seat that cannot act (AEC), leave it out of "
                "`agents` (parallel), or give it a no-op action.",
            )


EpisodeFn = Callable[[Any, _Run, "int | None"], "dict[str, float] | None"]


def _raw_mask(space: Space, obs: Any, info: Any) -> np.ndarray | None:
    """A PettingZoo seat's action mask: in its observation dict, else in its info."""
    if not isinstance(space, Discrete):
        return None
    if isinstance(obs, dict) and MASK_KEY in obs:
        return np.asarray(obs[MASK_KEY], dtype=bool)
    if isinstance(info, dict) and MASK_KEY in info:
        return np.asarray(info[MASK_KEY], dtype=bool)
    return None


def _aec_episode(env: AECEnv, run: _Run, seed: int | None) -> dict[str, float] | None:
    """One episode of the plain AEC loop; each seat's return, None if it did not end."""
    env.reset(seed=seed)
    returns = dict.fromkeys(env.possible_agents, 0.0)
    dead: set[str] = set()
    for agent in env.agent_iter(MAX_EPISODE_STEPS):
        obs, reward, terminated, truncated, info = env.last()
        returns[agent] += float(reward)
        if agent in dead:
            raise _Stop(
                "acts_after_done",
                f"env {run.env!r}, seat {agent!r} is selected again after its dead step "
                f"({run.where}). Drop a done agent from `agents` on its dead step "
                "(AECEnv._was_dead_step does this).",
            )
        if terminated or truncated:
            env.step(None)  # the dead step, where the seat's last rewards are handed out
            dead.add(agent)
            if agent in env.agents:
                raise _Stop(
                    "acts_after_done",
                    f"env {run.env!r}, seat {agent!r} is still in `agents` after its dead step "
                    f"({run.where}), so it would be selected again. Drop it there "
                    "(AECEnv._was_dead_step does this).",
                )
            continue
        step = run.choose({agent: _raw_mask(env.action_space(agent), obs, info)})
        env.step(step[agent])
    return None if env.agents else returns


def _parallel_episode(env: ParallelEnv, run: _Run, seed: int | None) -> dict[str, float] | None:
    """One episode of the plain parallel loop; each seat's return, None if it did not end."""
    obs, infos = env.reset(seed=seed)
    returns = dict.fromkeys(env.possible_agents, 0.0)
    done: set[str] = set()
    for _ in range(MAX_EPISODE_STEPS):
        if not env.agents:
            return returns
        again = [a for a in env.agents if a in done]
        if again:
            raise _Stop(
                "acts_after_done",
                f"env {run.env!r}: seat(s) {again} ended (terminated or truncated) but are "
                f"still in `agents` ({run.where}), so they are asked to act again. Remove a "
                "seat from self.agents in the step() that ends it.",
            )
        masks = {a: _raw_mask(env.action_space(a), obs.get(a), infos.get(a)) for a in env.agents}
        obs, rewards, terminations, truncations, infos = env.step(run.choose(masks))
        for agent, reward in rewards.items():
            if agent in done and reward:
                raise _Stop(
                    "acts_after_done",
                    f"env {run.env!r}, seat {agent!r} got reward {reward} after its episode "
                    f"ended ({run.where}). Give a seat's last reward in the step that ends it.",
                )
            returns[agent] += float(reward)
        done.update(a for a in env.possible_agents if terminations.get(a) or truncations.get(a))
    return None


def _gym_episode(env: gymnasium.Env, run: _Run, seed: int | None) -> dict[str, float] | None:
    """One episode of the plain gymnasium loop; the return, None if it did not end."""
    (seat,) = run.seats
    obs, info = env.reset(seed=seed)
    total = 0.0
    for _ in range(MAX_EPISODE_STEPS):
        step = run.choose({seat: _raw_mask(env.action_space, obs, info)})
        obs, reward, terminated, truncated, info = env.step(step[seat])
        total += float(reward)
        if terminated or truncated:
            return {seat: total}
    return None


class _WrappedEpisodes:
    """Episodes of a list-based env (a wrapped one, or the user's own). Such an env
    resets itself, so each episode after the first starts where the last ended."""

    def __init__(self) -> None:
        self._obs: list[Any] = []
        self._infos: list[dict] = []

    def __call__(self, env: Any, run: _Run, seed: int | None) -> dict[str, float] | None:
        if seed is not None or not self._infos:
            self._obs, self._infos = env.reset(seed=seed)
        seats = env.possible_agents
        returns = dict.fromkeys(seats, 0.0)
        for _ in range(MAX_EPISODE_STEPS):
            active = [i for i, info in enumerate(self._infos) if info["is_active"]]
            _check_observations(env, run, {i: self._obs[i] for i in active})
            step = run.choose({seats[i]: self._infos[i].get(MASK_KEY) for i in active})
            self._obs, rewards, _, _, self._infos = env.step([step.get(s) for s in seats])
            for seat, reward in zip(seats, rewards, strict=True):
                if not math.isfinite(reward):
                    raise _Stop(
                        "reward_not_finite",
                        f"env {run.env!r}, seat {seat!r}: reward {reward} is not finite "
                        f"({run.where}). {_FINITE_REWARDS}.",
                    )
                returns[seat] += reward
            ended = {
                i: info["final_obs"] for i, info in enumerate(self._infos) if "final_obs" in info
            }
            _check_observations(env, run, ended)
            if env.episode_ended:
                return returns
        return None


def _check_observations(env: Any, run: _Run, observations: dict[int, Any]) -> None:
    """Observations (seat index -> array) match their spaces and hold only finite values."""
    shapes, not_finite = [], []
    for i, obs in observations.items():
        obs, space, seat = np.asarray(obs), env.observation_spaces[i], env.possible_agents[i]
        if obs.shape != space.shape:
            shapes.append(f"seat {seat!r} {obs.shape} for {space}")
        elif np.issubdtype(obs.dtype, np.floating) and not np.isfinite(obs).all():
            not_finite.append(seat)
    if shapes:
        raise _Stop(
            "observation_shape_mismatch",
            f"env {run.env!r}: observations of another shape than their space: "
            f"{'; '.join(shapes)} ({run.where}). The trainer builds its arrays and models "
            "from the space: make the env's observations match it.",
        )
    if not_finite:
        raise _Stop(
            "observation_not_finite",
            f"env {run.env!r}, seat(s) {not_finite}: observations hold NaN or infinite values "
            f"({run.where}). A network turns them into NaN losses: clip or replace them in "
            "the env.",
        )


def _episode_fn(kind: str) -> EpisodeFn:
    """How to play one episode of an env of this kind (see `_kind`)."""
    if kind == "aec":
        return _aec_episode
    if kind == "parallel":
        return _parallel_episode
    if kind == "gym":
        return _gym_episode
    return _WrappedEpisodes()


# -- small helpers -----------------------------------------------------------------


def _kind(env: Any) -> str:
    """ "list" (already list-based), "aec", "parallel" or "gym"."""
    if getattr(env, "is_multiagent", False) is True:
        return "list"
    if isinstance(env, AECEnv):
        return "aec"
    if isinstance(env, ParallelEnv):
        return "parallel"
    return "gym"


def _action_spaces(kind: str, raw: Any, env: Any) -> dict[str, Space]:
    """Seat -> action space of the unwrapped env (`env` is the wrapped one)."""
    if kind in ("aec", "parallel"):
        return {a: raw.action_space(a) for a in raw.possible_agents}
    if kind == "gym":
        return {env.possible_agents[0]: raw.action_space}
    return dict(zip(env.possible_agents, env.action_spaces, strict=True))


def _is_built(env_fn: Any) -> bool:
    if isinstance(env_fn, type):  # an env class is a constructor
        return False
    return (
        isinstance(env_fn, AECEnv | ParallelEnv | gymnasium.Env)
        or getattr(env_fn, "is_multiagent", False) is True
    )


def _describe(env_fn: Any) -> str:
    if isinstance(env_fn, str):
        return env_fn
    return str(getattr(env_fn, "__name__", type(env_fn).__name__))


def _name_of(env: Any) -> str:
    """The name the wrappers give an env: metadata name, else gymnasium id, else class."""
    name = (getattr(env, "metadata", None) or {}).get("name")
    if name:
        return str(name)
    spec = getattr(env, "spec", None)
    return str(getattr(spec, "id", None) or type(env).__name__)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GiB"
