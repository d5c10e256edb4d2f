"""Sample Factory 2.1.1 APPO on PettingZoo envs (pistonball; tic-tac-toe made simultaneous).

Run with the Sample Factory venv (tests/benchmarks/setup_baselines.sh makes it):

    .bench/sf/bin/python tests/benchmarks/baselines/sf_pettingzoo.py --env pistonball --seconds 30
    .bench/sf/bin/python tests/benchmarks/baselines/sf_pettingzoo.py --env tictactoe --seconds 30

Prints ONE JSON line on stdout (Sample Factory's own log goes to stderr).

Envs go through this folder's adapters (_sf_envs.py, documented there):
pistonball with the same preprocessing as sb3_supersuit.py (_common.py), one
policy shared by all 20 seats; tic-tac-toe as a simultaneous-move env (only the
seat to move is played; the waiting seat gets a zero observation and its action
is ignored), one policy shared by both seats (self-play), illegal moves lose
(or, `--illegal random`, are replaced by a random legal move).

Model and PPO settings chosen to match our trainer's defaults: an MLP
(`--hidden`, Tanh) for the actor and another for the critic
(`actor_critic_share_weights=False`), no RNN, no input normalisation;
minibatch `--batch-size`, `--num-batches-per-epoch` minibatches per epoch,
`--num-epochs` epochs; lr 2.5e-4, gamma 0.99, GAE 0.95, clip 0.2, entropy 0.01,
value 0.5, grad norm 0.5. Everything else is Sample Factory's default (APPO,
async, non-batched sampling, 2 worker splits, returns normalisation on).

Timing: Sample Factory 2.1.1 ignores --train_for_seconds, so training runs in
this process (`make_runner` + `runner.run()`) with an AlgoObserver that stamps
the clock at every finished learner iteration and stops the runner at the
first iteration end `--seconds` after the end of the first `--warmup-iters`
iterations. Each iteration trains on exactly batch_size * num_batches_per_epoch
samples (one sample = one seat of one env step: what Sample Factory's FPS
counts), so the count is exact. `seat_steps_per_s` counts decisions: for
pistonball every sample is one; for tic-tac-toe only the sample of the seat to
move is (half of them); `sf_samples_per_s` is Sample Factory's own count.
Start-up (spawning processes, env creation, decorrelation) is not timed.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    TreeRss,
    emit,
    machine,
    obs_size,
    peak_rss_mb,
    preprocessing_text,
    quiet,
    versions,
)
from _sf_envs import sf_env_factory


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--env", choices=["pistonball", "tictactoe"], default="pistonball")
    p.add_argument(
        "--seconds", type=float, default=30.0, help="timed training window (whole iterations)"
    )
    p.add_argument("--num-workers", type=int, default=2, help="rollout worker processes")
    p.add_argument(
        "--num-envs-per-worker",
        type=int,
        default=0,
        help="0 = 2 for pistonball, 16 for tic-tac-toe",
    )
    p.add_argument(
        "--worker-num-splits",
        type=int,
        default=2,
        help="SF double buffering (envs per worker split)",
    )
    p.add_argument("--rollout", type=int, default=64, help="trajectory length per seat")
    p.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="SGD minibatch in samples; 0 = one collection round "
        "(workers x envs x seats x rollout) "
        "/ --num-batches-per-epoch, so one learner iteration = one round (what sync mode needs)",
    )
    p.add_argument("--num-batches-per-epoch", type=int, default=4)
    p.add_argument("--num-epochs", type=int, default=4)
    p.add_argument(
        "--hidden", type=int, nargs="+", default=[64, 64], help="MLP sizes (actor and critic each)"
    )
    p.add_argument(
        "--obs", default="84", help='pistonball obs side: "84", "small" (=32) or a number'
    )
    p.add_argument("--frame-stack", type=int, default=1)
    p.add_argument("--discrete", action="store_true", help="pistonball with Discrete(3) actions")
    p.add_argument("--max-cycles", type=int, default=125)
    p.add_argument(
        "--illegal",
        choices=["lose", "random"],
        default="lose",
        help="tic-tac-toe illegal-move rule",
    )
    p.add_argument("--sync", action="store_true", help="--async_rl False (collect, then train)")
    p.add_argument(
        "--serial-mode", action="store_true", help="everything in one process (--serial_mode True)"
    )
    p.add_argument("--batched-sampling", action="store_true", help="--batched_sampling True")
    p.add_argument(
        "--warmup-iters",
        type=int,
        default=1,
        help="learner iterations left out of the rate (at least 1)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--keep-dir", action="store_true", help="keep the SF train_dir (printed on stderr)"
    )
    p.add_argument(
        "--extra",
        nargs=argparse.REMAINDER,
        default=[],
        help="more Sample Factory arguments, verbatim",
    )
    args = p.parse_args()
    if not args.num_envs_per_worker:
        args.num_envs_per_worker = 2 if args.env == "pistonball" else 16
    if not args.batch_size:
        seats = 20 if args.env == "pistonball" else 2
        per_round = args.num_workers * args.num_envs_per_worker * seats * args.rollout
        args.batch_size = max(1, per_round // args.num_batches_per_epoch)
    return args


def main() -> None:
    args = parse_args()
    # Keep stdout for the JSON line only: everything else (Sample Factory's log,
    # its worker processes) writes to stderr through fd 1.
    json_out = os.fdopen(os.dup(1), "w")
    sys.stdout.flush()
    os.dup2(2, 1)
    quiet()

    from sample_factory.algo.runners.runner import AlgoObserver
    from sample_factory.algo.utils.misc import ExperimentStatus
    from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args
    from sample_factory.envs.env_utils import register_env
    from sample_factory.train import make_runner

    opts = dict(
        env=args.env,
        max_cycles=args.max_cycles,
        obs=args.obs,
        frame_stack=args.frame_stack,
        discrete=args.discrete,
        illegal=args.illegal,
    )
    env_name = f"pz_{args.env}"
    register_env(env_name, functools.partial(sf_env_factory, opts))

    train_dir = tempfile.mkdtemp(prefix="sf_bench_")
    tf = lambda b: "True" if b else "False"  # noqa: E731
    argv = [
        "--algo=APPO",
        f"--env={env_name}",
        "--experiment=bench",
        f"--train_dir={train_dir}",
        "--restart_behavior=overwrite",
        "--device=cpu",
        f"--seed={args.seed}",
        f"--num_workers={args.num_workers}",
        f"--num_envs_per_worker={args.num_envs_per_worker}",
        f"--worker_num_splits={args.worker_num_splits}",
        f"--rollout={args.rollout}",
        f"--batch_size={args.batch_size}",
        f"--num_batches_per_epoch={args.num_batches_per_epoch}",
        f"--num_epochs={args.num_epochs}",
        "--num_policies=1",
        f"--async_rl={tf(not args.sync)}",
        f"--serial_mode={tf(args.serial_mode)}",
        f"--batched_sampling={tf(args.batched_sampling)}",
        "--use_rnn=False",
        "--normalize_input=False",
        "--actor_critic_share_weights=False",
        "--nonlinearity=tanh",
        "--encoder_mlp_layers",
        *[str(h) for h in args.hidden],
        "--learning_rate=0.00025",
        "--gamma=0.99",
        "--gae_lambda=0.95",
        "--ppo_clip_ratio=0.2",
        "--exploration_loss_coeff=0.01",
        "--value_loss_coeff=0.5",
        "--max_grad_norm=0.5",
        "--train_for_env_steps=1000000000000",
        "--save_every_sec=1000000",
        "--save_best_every_sec=1000000",
        "--keep_checkpoints=1",
        "--with_wandb=False",
        *args.extra,
    ]
    parser, _ = parse_sf_args(argv=argv, evaluation=False)
    cfg = parse_full_cfg(parser, argv)
    samples_per_iter = args.batch_size * args.num_batches_per_epoch

    class Clock(AlgoObserver):
        def __init__(self) -> None:
            self.started = None
            self.marks: list[float] = []  # end time of learner iteration i+1
            self.deadline = None

        def on_start(self, runner) -> None:
            self.started = time.perf_counter()

        def on_training_step(self, runner, training_iteration_since_resume: int) -> None:
            now = time.perf_counter()
            self.marks.append(now)
            if len(self.marks) == max(1, args.warmup_iters):
                self.deadline = now + args.seconds
            if self.deadline is not None and now >= self.deadline:
                runner._stop_training()  # what the runner does itself when train_for_* is reached

    clock = Clock()
    setup_start = time.perf_counter()
    cfg, runner = make_runner(cfg)
    runner.register_observer(clock)
    try:
        with TreeRss() as tree:
            status = runner.init()
            if status == ExperimentStatus.SUCCESS:
                status = runner.run()
    finally:
        if args.keep_dir:
            print(f"train_dir: {train_dir}", file=sys.stderr)
        else:
            shutil.rmtree(train_dir, ignore_errors=True)
    end = time.perf_counter()
    if not clock.marks:  # refused the config (see the log on stderr) or failed
        sys.stdout = json_out
        emit(
            {
                "name": "sf_pettingzoo",
                "env": args.env,
                "error": f"Sample Factory status {int(status)}; see stderr",
            }
        )
        sys.exit(1)
    learner_steps = sum(runner.env_steps.values()) if runner.env_steps else 0
    main_loop = runner.timing.get("main_loop", 0.0)
    sf_main_loop_fps = (runner.total_env_steps_since_resume or 0) / main_loop if main_loop else 0.0

    marks = clock.marks
    first = max(1, args.warmup_iters) - 1  # index of the end of the last warm-up iteration
    if len(marks) > first + 1:
        iters = len(marks) - 1 - first
        seconds = marks[-1] - marks[first]
    else:  # too short to leave warm-up out: from the start of the runner
        iters = len(marks)
        seconds = (marks[-1] - clock.started) if marks else 0.0
    samples = iters * samples_per_iter
    decisions_per_sample = 0.5 if args.env == "tictactoe" else 1.0
    seats = 2 if args.env == "tictactoe" else 20
    seat_steps = int(samples * decisions_per_sample)
    num_envs = args.num_workers * args.num_envs_per_worker
    config = dict(
        num_workers=args.num_workers,
        num_envs_per_worker=args.num_envs_per_worker,
        num_envs=num_envs,
        seats_per_env=seats,
        worker_num_splits=args.worker_num_splits,
        rollout=args.rollout,
        batch_size=args.batch_size,
        num_batches_per_epoch=args.num_batches_per_epoch,
        samples_per_iteration=samples_per_iter,
        num_epochs=args.num_epochs,
        hidden=list(args.hidden),
        network="separate actor and critic MLPs, Tanh, no RNN",
        mode="serial" if args.serial_mode else ("sync" if args.sync else "async"),
        sampling="batched" if args.batched_sampling else "non-batched",
        device="cpu",
        torch_threads_per_process=1,
    )
    if args.env == "pistonball":
        config.update(
            obs=args.obs,
            obs_dim=obs_size(args.obs) ** 2 * args.frame_stack,
            frame_stack=args.frame_stack,
            preprocessing=preprocessing_text(args.obs, args.frame_stack),
            actions="Discrete(3)"
            if args.discrete
            else "Box(-1,1,(1,)) Gaussian, clipped by the adapter",
            max_cycles=args.max_cycles,
        )
    else:
        config.update(
            obs_dim=19,
            preprocessing="turn-based conversion: mover sees 18 board planes + to-move flag 1; "
            "waiting seat all zeros",
            illegal=args.illegal,
        )
    emit_to = sys.stdout
    sys.stdout = json_out
    emit(
        {
            "name": "sf_pettingzoo",
            "env": args.env,
            "seat_steps_per_s": round(seat_steps / seconds, 1) if seconds else 0.0,
            "env_steps": int(samples / seats),
            "seconds": round(seconds, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "peak_tree_pss_mb": round(tree.peak_mb, 1),
            "seat_steps": seat_steps,
            "sf_samples_per_s": round(samples / seconds, 1) if seconds else 0.0,
            "sf_samples": samples,
            "iterations_timed": iters,
            "learner_env_steps_total": learner_steps,
            "sf_main_loop_fps": round(sf_main_loop_fps, 1),
            "wall_seconds_total": round(end - setup_start, 3),
            "status": int(status),
            **config,
            "versions": versions(
                "sample-factory", "torch", "pettingzoo", "supersuit", "gymnasium", "numpy", "pymunk"
            ),
            "machine": machine(),
        }
    )
    sys.stdout = emit_to


if __name__ == "__main__":
    main()
