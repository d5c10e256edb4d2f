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

from league.training.loop import TrainingState
from league.training.observers import Observer
from league.training.run_dir import RunDir
from league.training.trainer import Trainer

__all__ = ["Observer", "RunDir", "Trainer", "TrainingState"]
