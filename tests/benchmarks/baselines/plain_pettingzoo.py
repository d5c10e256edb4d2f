"""The env's own step rate: a plain PettingZoo loop with random actions, no learning.

Prints ONE JSON line. The denominators for "training rate / env step rate".

    .venv/bin/python tests/benchmarks/baselines/plain_pettingzoo.py --env pistonball --seconds 20
    .venv/bin/python tests/benchmarks/baselines/plain_pettingzoo.py --env tictactoe --seconds 20
    # the same loops under the Sample Factory venv (pettingzoo 1.24.3, pymunk 6.2):
    .bench/sf/bin/python tests/benchmarks/baselines/plain_pettingzoo.py --env pistonball

Adapters (`--adapter`):
  none  the PettingZoo env itself (pistonball: `parallel_env` + the shared
        preprocessing in _common.py; tic-tac-toe: the AEC `env()` stepped with
        `agent_iter`-style turns, dead steps (action None) not counted).
  sb3   pistonball through SuperSuit's `pettingzoo_env_to_vec_env_v1` +
        `concat_vec_envs_v1(..., num_envs, base_class="stable_baselines3")`,
        i.e. what sb3_supersuit.py steps (no policy).
  sf    the env through this folder's Sample Factory adapter (_sf_envs.py),
        one instance, i.e. what one of sf_pettingzoo.py's envs costs.

A seat-step is one decision of a live seat (pistonball: 20 per env step;
tic-tac-toe: one per move). Random actions: uniform floats u, then
low + u * (high - low) (Box) or floor(u * n) (Discrete); tic-tac-toe picks a
uniformly random LEGAL move from the action mask (so games run their normal
length). Setup (env construction, first reset) is not timed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    TreeRss,
    emit,
    machine,
    peak_rss_mb,
    pistonball,
    preprocessing_text,
    quiet,
    versions,
)


def random_actions(space, u: np.ndarray):
    """Actions for len(u) seats from uniform floats u (one per seat)."""
    if hasattr(space, "n"):
        return np.minimum((u * space.n).astype(np.int64), space.n - 1)
    low, high = space.low.ravel()[0], space.high.ravel()[0]
    return (low + u * (high - low)).astype(np.float32).reshape(len(u), *space.shape)


def run_parallel(env, seconds: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    space = env.action_space(env.possible_agents[0])
    seat_steps = env_steps = episodes = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        agents = env.agents
        acts = random_actions(space, rng.random(len(agents)))
        env.step(dict(zip(agents, acts, strict=True)))
        seat_steps += len(agents)
        env_steps += 1
        if not env.agents:
            episodes += 1
            env.reset()
        if (env_steps & 15) == 0 and time.perf_counter() >= deadline:
            break
    return dict(
        seat_steps=seat_steps,
        env_steps=env_steps,
        episodes=episodes,
        seconds=time.perf_counter() - start,
    )


def run_aec(env, seconds: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    seat_steps = env_steps = episodes = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        agent = env.agent_selection
        if env.terminations[agent] or env.truncations[agent]:
            env.step(None)  # dead step: not a decision
            if not env.agents:
                episodes += 1
                env.reset()
            continue
        mask = env.observe(agent)["action_mask"]
        legal = np.flatnonzero(mask)
        env.step(int(legal[int(rng.random() * len(legal))]))
        seat_steps += 1
        env_steps += 1
        if (env_steps & 63) == 0 and time.perf_counter() >= deadline:
            break
    return dict(
        seat_steps=seat_steps,
        env_steps=env_steps,
        episodes=episodes,
        seconds=time.perf_counter() - start,
    )


def run_sb3_vec(env_fn, num_envs: int, seconds: float, seed: int) -> dict:
    import supersuit as ss

    vec = ss.pettingzoo_env_to_vec_env_v1(env_fn())
    vec = ss.concat_vec_envs_v1(vec, num_envs, num_cpus=0, base_class="stable_baselines3")
    vec.venv.reset(seed=seed)  # SB3VecEnvWrapper.seed() fails on ConcatVecEnv (supersuit 3.11)
    vec.reset()
    rng = np.random.default_rng(seed)
    n = vec.num_envs  # seats over all envs
    env_steps = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        vec.step(random_actions(vec.action_space, rng.random(n)))
        env_steps += 1
        if (env_steps & 3) == 0 and time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    vec.close()
    return dict(
        seat_steps=env_steps * n, env_steps=env_steps * num_envs, episodes=None, seconds=elapsed
    )


def run_sf_adapter(env, seconds: float, seed: int, turn_based: bool) -> dict:
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    n = env.num_agents
    space = env.action_space
    seat_steps = samples = env_steps = episodes = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        if turn_based:  # a random legal move for the seat to move, anything for the other
            legal = np.flatnonzero(env.mask)
            acts = [int(legal[int(rng.random() * len(legal))])] * n
            seat_steps += 1
        else:
            acts = list(random_actions(space, rng.random(n)))
            seat_steps += n
        _, _, term, trunc, _ = env.step(acts)
        samples += n
        env_steps += 1
        if term[0] or trunc[0]:
            episodes += 1
        if (env_steps & 15) == 0 and time.perf_counter() >= deadline:
            break
    return dict(
        seat_steps=seat_steps,
        sf_samples=samples,
        env_steps=env_steps,
        episodes=episodes,
        seconds=time.perf_counter() - start,
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--env", choices=["pistonball", "tictactoe"], default="pistonball")
    p.add_argument("--adapter", choices=["none", "sb3", "sf"], default="none")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument(
        "--obs", default="84", help='pistonball obs side: "84", "small" (=32) or a number'
    )
    p.add_argument("--frame-stack", type=int, default=1)
    p.add_argument(
        "--raw", action="store_true", help="pistonball without any preprocessing (457x120x3)"
    )
    p.add_argument("--discrete", action="store_true", help="pistonball with Discrete(3) actions")
    p.add_argument("--max-cycles", type=int, default=125)
    p.add_argument(
        "--num-envs", type=int, default=1, help="envs in the SuperSuit vec env (--adapter sb3)"
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    quiet()

    opts = dict(
        env=args.env,
        max_cycles=args.max_cycles,
        obs=args.obs,
        frame_stack=args.frame_stack,
        discrete=args.discrete,
        illegal="random",
    )
    with TreeRss() as tree:
        if args.env == "pistonball":

            def env_fn():
                return pistonball(
                    args.max_cycles, args.obs, args.frame_stack, not args.discrete, raw=args.raw
                )

            if args.adapter == "none":
                r = run_parallel(env_fn(), args.seconds, args.seed)
            elif args.adapter == "sb3":
                r = run_sb3_vec(env_fn, args.num_envs, args.seconds, args.seed)
            else:
                from _sf_envs import make_pistonball

                r = run_sf_adapter(make_pistonball(opts), args.seconds, args.seed, turn_based=False)
            config = dict(
                preprocessing=preprocessing_text(args.obs, args.frame_stack, args.raw),
                obs=None if args.raw else args.obs,
                frame_stack=args.frame_stack,
                actions="Discrete(3)" if args.discrete else "Box(-1,1,(1,))",
                max_cycles=args.max_cycles,
                seats_per_env=20,
            )
        else:
            if args.adapter == "sb3":
                p.error(
                    "--adapter sb3: Stable-Baselines3/SuperSuit cannot step turn-based AEC games"
                )
            if args.adapter == "none":
                from pettingzoo.classic import tictactoe_v3

                r = run_aec(tictactoe_v3.env(), args.seconds, args.seed)
                config = dict(preprocessing="AEC env(), random legal moves", seats_per_env=2)
            else:
                from _sf_envs import make_tictactoe

                r = run_sf_adapter(
                    make_tictactoe(opts, seed=args.seed), args.seconds, args.seed, turn_based=True
                )
                config = dict(
                    preprocessing="TurnBasedSeats(env()): 18 board planes + to-move flag; "
                    "random legal moves",
                    seats_per_env=2,
                )
    result = {
        "name": "plain_pettingzoo" + ("" if args.adapter == "none" else f"+{args.adapter}_adapter"),
        "env": args.env,
        "seat_steps_per_s": round(r["seat_steps"] / r["seconds"], 1),
        "env_steps": r["env_steps"],
        "seconds": round(r["seconds"], 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_tree_pss_mb": round(tree.peak_mb, 1),
        "seat_steps": r["seat_steps"],
        "env_steps_per_s": round(r["env_steps"] / r["seconds"], 1),
        "episodes": r["episodes"],
        "adapter": args.adapter,
        "num_envs": args.num_envs if args.adapter == "sb3" else 1,
        **config,
    }
    if "sf_samples" in r:
        result["sf_samples_per_s"] = round(r["sf_samples"] / r["seconds"], 1)
    result["versions"] = versions(
        "pettingzoo", "supersuit", "gymnasium", "numpy", "pymunk", "pygame", "pygame-ce"
    )
    result["machine"] = machine()
    emit(result)


if __name__ == "__main__":
    main()
