"""Training, in parts with one job each.

| module | its job |
| --- | --- |
| `plan` | the env's seats and spaces, and what the config resolves to for them (pure) |
| `population` | the learners, by policy id: acting, updates, resets, checkpoint files |
| `run_dir` | the run directory: claiming it, checkpoints, the commit file, resume checks |
| `loop` | the loop: sync and async iterations, the budget, annealing, snapshots |
| `learner_threads` | async learners in background threads, policy lag |
| `modes` | the mappings of batched and one-policy-per-role collection |
| `devices` | which device each learner lives on |
| `observers` | the hooks add-ons use; `metrics` has TensorBoard and the progress bar |
| `signals` | Ctrl-C and SIGTERM |
| `trainer` | wires the parts together and owns the run's lifecycle |
"""

from __future__ import annotations

from typing import Any

# Imported on first use: add-ons (league.pbt) import `league.training.observers`
# while the trainer imports them.
_LAZY = {
    "Observer": "league.training.observers",
    "RunDir": "league.training.run_dir",
    "Trainer": "league.training.trainer",
    "TrainingState": "league.training.loop",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'league.training' has no attribute {name!r}")


__all__ = ["Observer", "RunDir", "Trainer", "TrainingState"]
