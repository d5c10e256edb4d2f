"""Population-based training with the league's rating as its objective.

Jaderberg et al. (2017) exploit and explore; DeepMind's Capture-the-Flag agents
(2019) compared members by Elo. Here, each time a learner has trained another
`interval` samples it is compared with a member drawn from its population
(the learners of its seat role and league role whose weights it can take):
if its win probability against that member, from the league's online Elo
(or a user objective), is below `threshold`, it **exploits**: copies the
member's weights, optimizer state and hyperparameters, and takes its rating
and lineage (the leaderboard's `parent` column); then it **explores**: each
hyperparameter, with probability `perturb_probability`, is multiplied or
divided by a factor drawn from [`perturb_low`, `perturb_high`], or with
probability `reset_probability` set back to the run's starting value
(Sample Factory's rules; discounts move as 1 - value, so they stay below 1).

Every event is a row of `pbt.csv` and TensorBoard scalars. Rows are written
with each checkpoint, before its commit point, and the commit records how many
there are: a resume drops rows past it, so the file matches the state the run
continues from.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from league._io import append_csv_rows, atomic_write_text
from league.errors import ConfigError, unknown_keys
from league.ratings import expected_score
from league.training.observers import Observer

if TYPE_CHECKING:
    from league.manager import League
    from league.training.trainer import Trainer

PBT_FILE = "pbt.csv"
PBT_COLUMNS = (
    "time",
    "env_steps",
    "member",
    "source",
    "win_probability",
    "member_rating",
    "source_rating",
    "old",
    "new",
)
# A discount near 1 is perturbed through 1 - value, so it never reaches 1.
DISCOUNTS = ("gamma", "gae_lambda")

# objective(league, member, other) -> the member's win probability against other.
Objective = Callable[["League", str, str], float]


def elo_objective(league: League, member: str, other: str) -> float:
    """Win probability from the online Elo ratings (Elo's expected score)."""
    return expected_score(league.ratings.elo(member), league.ratings.elo(other))


@dataclass
class PBTConfig:
    """PBT's options (`league.train(..., pbt={...})`); defaults follow Sample Factory."""

    interval: int = 50_000
    """Learner samples between two comparisons of a member."""
    threshold: float = 0.3
    """Exploit when the win probability against the member drawn is below this."""
    hyperparameters: list[str] = field(
        default_factory=lambda: ["learning_rate", "ent_coef", "vf_coef", "clip_coef", "gamma"]
    )
    """What explore perturbs (those the learner's algorithm has)."""
    perturb_probability: float = 0.15
    """Chance that explore changes a hyperparameter."""
    perturb_low: float = 1.1
    """Smallest factor a perturbation multiplies or divides by."""
    perturb_high: float = 1.5
    """Largest factor."""
    reset_probability: float = 0.01
    """Chance that a changed hyperparameter goes back to its starting value instead."""
    seed: int | None = None
    """Seed of PBT's draws (default: the run's seed)."""

    def __post_init__(self) -> None:
        checks = {
            "interval": self.interval >= 1,
            "threshold": 0 < self.threshold < 1,
            "perturb_probability": 0 <= self.perturb_probability <= 1,
            "perturb_low": 1 <= self.perturb_low <= self.perturb_high,
            "perturb_high": self.perturb_high >= self.perturb_low,
            "reset_probability": 0 <= self.reset_probability <= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"pbt option {name}={getattr(self, name)!r} is out of range; see "
                    "docs/league.md, 'Population-based training'"
                )
        from league.algos.base import HYPERPARAMETERS

        unknown = [h for h in self.hyperparameters if h not in HYPERPARAMETERS]
        if unknown:
            raise unknown_keys("pbt hyperparameter", unknown, HYPERPARAMETERS)

    @classmethod
    def from_value(cls, value: bool | Mapping[str, Any]) -> PBTConfig:
        """`pbt=True` (the defaults) or a dict of options."""
        data = {} if value is True else dict(value)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            raise unknown_keys("pbt option", unknown, names)
        return cls(**data)


def check_pbt_population(groups: list[list[str]]) -> None:
    """ConfigError unless some group has two members to compare."""
    if not any(len(g) > 1 for g in groups):
        raise ConfigError(
            f"pbt needs at least two learners of one seat role, league role and shape to "
            f"compare; these learners each stand alone: {groups}. Train more learners "
            "(num_policies=, roles=) or leave pbt off"
        )


def pbt_groups(population: Any, league: League) -> list[list[str]]:
    """Learners that may take each other's weights: one seat role, one league role, one
    shape. PBT compares members within a group."""
    groups: list[list[str]] = []
    for pid in population.ids:
        record = league.policies[pid]
        for group in groups:
            head = league.policies[group[0]]
            same_roles = (head.role, head.league_role) == (record.role, record.league_role)
            if same_roles and population.compatible(group[0], pid):
                group.append(pid)
                break
        else:
            groups.append([pid])
    return groups


class PBT(Observer):
    """Exploit and explore on the league's ratings; see the module docstring."""

    def __init__(self, config: PBTConfig, objective: Objective | None = None) -> None:
        self.config = config
        self.objective = objective or elo_objective
        self.rng = np.random.default_rng(config.seed)
        self.next_check: dict[str, int] = {}
        self.start: dict[str, dict[str, float]] = {}  # each member's first hyperparameters
        self.groups: list[list[str]] = []
        self.rows: list[list[Any]] = []  # events since the last checkpoint
        self.path: Path | None = None
        # Rows of pbt.csv that a committed checkpoint counts; None: unknown (a fresh run,
        # or a resume whose checkpoints had no PBT), so the file's rows all stand.
        self.written: int | None = None

    def on_start(self, trainer: Trainer) -> None:
        self.path = Path(trainer.run_dir.path) / PBT_FILE
        if self.written is None:
            self.written = _rows(self.path)
        _keep_rows(self.path, self.written)
        self.groups = pbt_groups(trainer.population, trainer.league)
        if self.config.seed is None and not self.next_check:
            self.rng = np.random.default_rng(trainer.config.seed)
        for pid in trainer.population.ids:
            steps = trainer.state.learner_steps[pid]
            self.next_check.setdefault(pid, steps + self.config.interval)
            self.start.setdefault(pid, trainer.population.hyperparameters(pid))

    def on_update(
        self, trainer: Trainer, policy_id: str, samples: int, stats: dict[str, float]
    ) -> None:
        if trainer.state.learner_steps[policy_id] < self.next_check[policy_id]:
            return
        self.next_check[policy_id] += self.config.interval
        group = next(g for g in self.groups if policy_id in g)
        others = [p for p in group if p != policy_id and p not in trainer.state.stopped]
        if not others:
            return
        source = others[int(self.rng.integers(len(others)))]
        p_win = float(self.objective(trainer.league, policy_id, source))
        if p_win >= self.config.threshold:
            return
        self.exploit_and_explore(trainer, policy_id, source, p_win)

    def exploit_and_explore(self, trainer: Trainer, member: str, source: str, p_win: float):
        population, league = trainer.population, trainer.league
        old = population.hyperparameters(member)
        ratings = (league.ratings.elo(member), league.ratings.elo(source))
        trainer.copy_learner(source, member)
        league.inherit(member, source)
        new = self.explore(population.hyperparameters(source), self.start[member])
        trainer.set_hyperparameters(member, new)
        self.rows.append(
            [
                round(time.time(), 3),
                trainer.state.env_steps,
                member,
                source,
                round(p_win, 4),
                round(ratings[0], 2),
                round(ratings[1], 2),
                json.dumps(old, sort_keys=True),
                json.dumps(new, sort_keys=True),
            ]
        )
        trainer.scalar(f"{member}/pbt_exploit", 1.0)
        for name, value in new.items():
            trainer.scalar(f"{member}/hp_{name}", value)

    def explore(self, values: dict[str, float], start: dict[str, float]) -> dict[str, float]:
        """Sample Factory's perturbation of the hyperparameters in `config.hyperparameters`."""
        c = self.config
        out = dict(values)
        for name in c.hyperparameters:
            if name not in out or self.rng.random() >= c.perturb_probability:
                continue
            if self.rng.random() < c.reset_probability:
                out[name] = start[name]
                continue
            factor = float(self.rng.uniform(c.perturb_low, c.perturb_high))
            if self.rng.random() < 0.5:
                factor = 1.0 / factor
            if name in DISCOUNTS:
                out[name] = float(min(max(1.0 - (1.0 - out[name]) * factor, 0.0), 1.0))
            else:
                out[name] = out[name] * factor
            if name == "clip_coef":
                out[name] = min(out[name], 0.99)
        return out

    def flush(self) -> None:
        """Append the events since the last checkpoint to pbt.csv."""
        if self.path is None:
            return
        new = not self.path.exists()
        if not self.rows and not new:
            return
        append_csv_rows(self.path, PBT_COLUMNS, self.rows)
        self.written += len(self.rows)
        self.rows.clear()

    def state_dict(self) -> dict[str, Any]:
        """Called while a checkpoint is written, before its commit: the rows go to pbt.csv
        first, so the committed count never exceeds the file."""
        self.flush()
        return {
            "rng": self.rng.bit_generator.state,
            "next_check": self.next_check,
            "start": self.start,
            "rows_written": self.written,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.next_check = {k: int(v) for k, v in state["next_check"].items()}
        self.start = {k: dict(v) for k, v in state["start"].items()}
        self.written = state.get("rows_written")  # None: a checkpoint that did not count


def _rows(path: Path) -> int:
    if not path.exists():
        return 0
    return max(0, len(path.read_text(encoding="utf-8").splitlines()) - 1)


def _keep_rows(path: Path, rows: int) -> None:
    """Cut pbt.csv back to its header and first `rows` rows (those past a resume's
    checkpoint belong to a run that was killed before committing them)."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if len(lines) > rows + 1:
        atomic_write_text(path, "".join(lines[: rows + 1]))
