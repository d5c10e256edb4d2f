"""Stable-Baselines3 PPO on pistonball with parameter sharing via SuperSuit.

Prints ONE JSON line: the training rate in seat-steps per second.

    .venv/bin/python tests/benchmarks/baselines/sb3_supersuit.py --seconds 30

Pipeline (the usual SB3 + SuperSuit recipe):

    pistonball_v6.parallel_env(max_cycles=125)          # 20 seats
      -> shared preprocessing (_common.py: blue channel, resize SxS, [frame stack],
         float32 / 255, flatten -> (S*S*K,))
      -> supersuit.pettingzoo_env_to_vec_env_v1          # one vec-env slot per seat
      -> supersuit.concat_vec_envs_v1(num_envs, num_cpus=0, base_class="stable_baselines3")
         (--num-cpus N steps the envs in N worker processes instead)
    PPO("MlpPolicy", n_steps, batch_size, n_epochs, net_arch=dict(pi=H, vf=H), Tanh)

One policy for all 20 seats of all envs (parameter sharing); SB3 sees
`num_envs * 20` single-agent envs. Per iteration it collects
`n_steps * num_envs * 20` seat-steps, then trains `n_epochs` passes over them in
minibatches of `batch_size`.

Timing: a callback stamps the clock (and SB3's timestep count) at the start of
each rollout, i.e. at the end of the previous iteration's training. Training
stops at the first iteration end `--seconds` after the end of the warm-up
iterations (so the timed window is about `--seconds` long). `seat_steps_per_s` counts
seat-steps collected AND trained on, over whole iterations, from the end of the
first `--warmup-iters` iterations (default 1) to the end of the last; setup
(imports, env and model construction) is never timed. `total_*` fields include
the warm-up iterations.

Stable-Baselines3 cannot step turn-based AEC games (tic-tac-toe) natively:
SuperSuit's vec-env conversion needs a parallel env whose seats all act every
step with identical spaces, so there is no `--env tictactoe` here.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Stopwatch,
    TreeRss,
    emit,
    machine,
    obs_size,
    peak_rss_mb,
    pistonball,
    preprocessing_text,
    quiet,
    versions,
)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--seconds", type=float, default=30.0, help="train about this long (whole iterations)"
    )
    p.add_argument("--num-envs", type=int, default=2, help="pistonball copies (x20 seats each)")
    p.add_argument(
        "--num-cpus",
        type=int,
        default=0,
        help="concat_vec_envs_v1 num_cpus: 0 = envs stepped in this process (the usual recipe); "
        "N = N worker processes (needs --num-envs >= N)",
    )
    p.add_argument("--n-steps", type=int, default=64, help="rollout length per seat per iteration")
    p.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="SGD minibatch size in seat-steps; 0 = a quarter of the iteration (4 minibatches)",
    )
    p.add_argument("--n-epochs", type=int, default=4)
    p.add_argument(
        "--hidden", type=int, nargs="+", default=[64, 64], help="MLP sizes (actor and critic each)"
    )
    p.add_argument("--obs", default="84", help='obs side: "84", "small" (=32) or a number')
    p.add_argument("--frame-stack", type=int, default=1)
    p.add_argument(
        "--discrete", action="store_true", help="Discrete(3) actions instead of Box(-1, 1, (1,))"
    )
    p.add_argument("--max-cycles", type=int, default=125)
    p.add_argument("--warmup-iters", type=int, default=1, help="iterations left out of the rate")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch.set_num_threads (default 1; 0 = torch's default, one per core)",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    quiet()

    import supersuit as ss
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.utils import set_random_seed

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    set_random_seed(args.seed)

    env = pistonball(args.max_cycles, args.obs, args.frame_stack, continuous=not args.discrete)
    seats = len(env.possible_agents)
    vec = ss.pettingzoo_env_to_vec_env_v1(env)
    vec = ss.concat_vec_envs_v1(
        vec, args.num_envs, num_cpus=args.num_cpus, base_class="stable_baselines3"
    )
    vec.venv.reset(
        seed=args.seed
    )  # SB3VecEnvWrapper.seed() fails on ConcatVecEnv, so no PPO(seed=...)

    per_iter = args.n_steps * args.num_envs * seats
    batch_size = args.batch_size or max(1, per_iter // 4)
    model = PPO(
        "MlpPolicy",
        vec,
        n_steps=args.n_steps,
        batch_size=batch_size,
        n_epochs=args.n_epochs,
        learning_rate=2.5e-4,
        gamma=0.99,
        gae_lambda=0.95,
        clip_range=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        policy_kwargs=dict(
            net_arch=dict(pi=list(args.hidden), vf=list(args.hidden)), activation_fn=torch.nn.Tanh
        ),
        device="cpu",
        verbose=0,
    )

    watch = Stopwatch()
    collect_s: list[float] = []

    class Clock(BaseCallback):
        """Marks iteration boundaries; stops at the first one after the deadline."""

        def __init__(self) -> None:
            super().__init__()
            self.stop = False
            self.rollout_start = 0.0
            self.deadline: float | None = None

        def _on_rollout_start(self) -> None:
            now = time.perf_counter()
            watch.mark(self.model.num_timesteps, now)
            self.rollout_start = now
            if len(watch.marks) == args.warmup_iters + 1:  # end of the warm-up iterations
                self.deadline = now + args.seconds
            if self.deadline is not None and now >= self.deadline:
                self.stop = True

        def _on_rollout_end(self) -> None:
            collect_s.append(time.perf_counter() - self.rollout_start)

        def _on_step(self) -> bool:
            return not self.stop  # False aborts the rollout just begun (not counted)

    with TreeRss() as tree:
        model.learn(total_timesteps=10**12, callback=Clock(), progress_bar=False)
    vec.close()

    skip = args.warmup_iters
    seat_steps, seconds = watch.window(skip)
    total_steps, total_seconds = watch.window(0)
    iters = len(watch.marks) - 1
    used = collect_s[skip:iters] if iters > skip + 1 else collect_s[:iters]
    collect_share = sum(used) / seconds if seconds else None
    emit(
        {
            "name": "sb3_supersuit",
            "env": "pistonball",
            "seat_steps_per_s": round(seat_steps / seconds, 1) if seconds else 0.0,
            "env_steps": seat_steps // seats,
            "seconds": round(seconds, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "peak_tree_pss_mb": round(tree.peak_mb, 1),
            "seat_steps": seat_steps,
            "iterations_timed": max(0, iters - skip) if iters > skip + 1 else iters,
            "total_seat_steps": total_steps,
            "total_seconds": round(total_seconds, 3),
            "total_seat_steps_per_s": round(total_steps / total_seconds, 1)
            if total_seconds
            else 0.0,
            "collect_share": round(collect_share, 3) if collect_share is not None else None,
            "num_envs": args.num_envs,
            "num_cpus": args.num_cpus,
            "seats_per_env": seats,
            "n_steps": args.n_steps,
            "seat_steps_per_iteration": per_iter,
            "batch_size": batch_size,
            "n_epochs": args.n_epochs,
            "hidden": list(args.hidden),
            "network": "separate actor and critic MLPs, Tanh (SB3 MlpPolicy)",
            "obs": args.obs,
            "obs_dim": obs_size(args.obs) ** 2 * args.frame_stack,
            "frame_stack": args.frame_stack,
            "preprocessing": preprocessing_text(args.obs, args.frame_stack),
            "actions": "Discrete(3)" if args.discrete else "Box(-1,1,(1,)) Gaussian",
            "max_cycles": args.max_cycles,
            "torch_threads": torch.get_num_threads(),
            "device": "cpu",
            "versions": versions(
                "stable-baselines3",
                "torch",
                "pettingzoo",
                "supersuit",
                "gymnasium",
                "numpy",
                "pymunk",
            ),
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
