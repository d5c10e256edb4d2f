"""CPU time per sample of the PPO update in bench_training's pistonball setting.

One update of the benchmark's batch (5,120 samples of 7,056 values, MLP 64x64
with separate actor and critic, 4 epochs x 4 minibatches, one torch thread),
timed alone on random data: the part of every trainer's CPU per sample that is
the update itself, beside the env step's part (one core over the plain loop's
rate). docs/benchmarks.md uses both to say how close to 2x Stable-Baselines3 a
trainer on two cores can get.

    .venv/bin/python tests/benchmarks/bench_pistonball_update.py
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from bench_training import PISTONBALL, PPO
from gymnasium import spaces

from league.algos import make_algorithm

BATCH = PISTONBALL["batch_size"]
OBS = 7056  # 84 x 84 x 1, flattened, as the benchmark's SuperSuit preprocessing gives


def random_batch(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "obs": rng.random((BATCH, OBS), dtype=np.float32),
        "actions": rng.uniform(-1, 1, (BATCH, 1)).astype(np.float32),
        "logprobs": np.full(BATCH, -1.0, np.float32),
        "values": rng.normal(size=BATCH).astype(np.float32),
        "rewards": rng.normal(size=BATCH).astype(np.float32),
        "terminated": np.zeros(BATCH, bool),
        "next_values": rng.normal(size=BATCH).astype(np.float32),
        "segment_end": rng.random(BATCH) < 0.02,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ppo = make_algorithm(
        "ppo", spaces.Box(0, 1, (OBS,), np.float32), spaces.Box(-1, 1, (1,), np.float32), PPO
    )
    batch = random_batch(np.random.default_rng(0))
    ppo.learn(batch)  # warm-up: allocator, Adam state
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(args.updates):
        ppo.learn(batch)
    cpu = (time.process_time() - cpu) / args.updates
    wall = (time.perf_counter() - wall) / args.updates
    print(
        json.dumps(
            {
                "update_cpu_s": round(cpu, 3),
                "update_wall_s": round(wall, 3),
                "cpu_ms_per_sample": round(cpu / BATCH * 1000, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
