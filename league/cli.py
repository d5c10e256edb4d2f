"""`python -m league` (also installed as `league`): train, leaderboard, eval, play, plot,
check, demo."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import typing
from pathlib import Path
from typing import Any

from league.config import TrainConfig
from league.errors import ConfigError, RunDirError, UnknownPolicyError

DEMO_ENV = "classic/connect_four-v3"


def _parse_value(kind: Any) -> Any:
    """An argparse `type` for a config field's annotation (JSON for lists and dicts)."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if bool in args and str in args:  # bool | str (symmetries): true/false or a word
        return _bool_or_text
    if bool in args and len(args) > 1:  # bool | dict (pbt): true/false or a JSON object
        return _bool_or_json
    if args and typing.get_origin(kind) not in (list, dict):
        kind = args[0]  # X | None -> X
    if typing.get_origin(kind) in (list, dict) or kind in (list, dict):
        return json.loads
    if kind is bool:
        return _bool
    if kind in (int, float):
        return kind
    return str


def _bool_or_json(text: str) -> Any:
    return json.loads(text) if text.lstrip().startswith("{") else _bool(text)


def _bool_or_text(text: str) -> bool | str:
    try:
        return _bool(text)
    except argparse.ArgumentTypeError:
        return text


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name == "env":
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=_parse_value(hints[f.name]),
            default=argparse.SUPPRESS,
            help=f"{f.metadata.get('help', '')} (default: {json.dumps(default)})".replace(
                "%", "%%"
            ),
        )


def _escape(text: str) -> str:
    return text.replace("%", "%%")  # argparse formats help with %


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object such as '{{\"max_cycles\": 25}}', got {text!r}"
        )
    return value


ENV_HELP = (
    "the env, for runs trained from an env function that cannot be imported by name "
    "(a registry id such as classic/connect_four-v3, or an import path module:function)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="league", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train",
        help="train a league on an env",
        description="Train a population of policies. ENV is a PettingZoo registry id "
        "(classic/connect_four-v3) or an import path (pettingzoo.classic.connect_four_v3). "
        'Lists and dicts are given as JSON, e.g. --policies \'["ppo", "dqn"]\'.',
    )
    train.add_argument("env", metavar="ENV")
    train.add_argument("--resume", metavar="RUN", help="continue this run directory")
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="if --run-dir holds a run, move it aside to a dated backup first",
    )
    _add_config_options(train)

    board = sub.add_parser("leaderboard", help="print a run's leaderboard")
    board.add_argument("run", metavar="RUN")
    board.add_argument("--csv", metavar="FILE", help="also write the leaderboard to FILE")
    board.add_argument("--env", help=ENV_HELP)

    ev = sub.add_parser("eval", help="head-to-head games with a confidence interval")
    ev.add_argument("run", metavar="RUN")
    ev.add_argument("--env", help=ENV_HELP)
    ev.add_argument("--policy", help="policy to evaluate (default: the top learner)")
    ev.add_argument("--opponent", default="random", help="'random' or a policy id")
    ev.add_argument("--games", type=int, default=200, help="games per opponent (half per seat)")
    ev.add_argument(
        "--ladder",
        action="store_true",
        help="play every rung of the env's reference ladder (random, bots) instead of --opponent",
    )
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument(
        "--stochastic",
        action="store_true",
        help="sample actions from the policies instead of taking the most likely ones",
    )

    play = sub.add_parser("play", help="play a classic game against a policy in the terminal")
    play.add_argument("run", metavar="RUN")
    play.add_argument("--env", help=ENV_HELP)
    play.add_argument("--policy", help="opponent policy (default: the top learner)")
    play.add_argument("--seat", type=int, default=0, help="your seat index (0 moves first)")

    plot = sub.add_parser("plot", help="draw a run's ratings, payoff, returns and ladder (PNG)")
    plot.add_argument("run", metavar="RUN")
    plot.add_argument("--out", metavar="DIR", help="where to write the PNGs (default: RUN)")

    check = sub.add_parser(
        "check", help="run an env through the wrappers and report what would make training wrong"
    )
    check.add_argument("env", metavar="ENV")
    check.add_argument("--episodes", type=int, default=5, help="episodes per run (default: 5)")
    check.add_argument(
        "--env-kwargs", type=_json_object, default=None, metavar="JSON", help="env kwargs"
    )
    check.add_argument("--seed", type=int, default=0, help="seed of the env and the actions")
    check.add_argument("--pad", action="store_true", help="check the env as pad=True sees it")

    demo = sub.add_parser("demo", help="a short league on connect four, then the leaderboard")
    demo.add_argument("--seconds", type=float, default=180.0)
    demo.add_argument("--run-dir", default="runs/demo")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command. Expected errors (a wrong env, a config that cannot work, a damaged
    run) print as one line with the fix and exit 2; `--debug` shows the traceback."""
    from league.errors import EXPECTED_ERRORS

    args = build_parser().parse_args(argv)
    command = {
        "train": _train,
        "leaderboard": _leaderboard,
        "eval": _eval,
        "play": _play,
        "plot": _plot,
        "check": _check,
        "demo": _demo,
    }[args.command]
    try:
        return command(args)
    except EXPECTED_ERRORS as err:
        if args.debug:
            raise
        first, _, rest = str(err).partition("\n")
        more = " (the rest, with --debug)" if rest.strip() else ""
        print(f"league {args.command}: error: {first}{more}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130  # training printed how to resume


def _train(args: argparse.Namespace) -> int:
    import league

    skip = ("command", "env", "resume", "overwrite", "debug")
    options = {k: v for k, v in vars(args).items() if k not in skip}
    run = league.train(args.env, resume=args.resume, overwrite=args.overwrite, **options)
    _print_board(run)
    return 0


def _print_board(run: Any) -> None:
    import pandas as pd

    board = run.leaderboard()
    by_return = (board["ranked_by"] == "return").all()
    columns = ["rank", "policy"]
    if board["role"].nunique() > 1:  # ranks are per seat role
        columns.append("role")
    if board["league_role"].isin(["main", "main_exploiter", "league_exploiter"]).any():
        columns.append("league_role")
    columns += ["kind", "algo"]
    if by_return:
        columns += ["mean_return", "return_lo", "return_hi", "games"]
    else:
        columns += ["rating", "err_lo", "err_hi", "games", "score"]
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(board[columns].to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    if by_return:
        print("\nranked by mean episode return (95% interval): these matches are not contests")
    print(f"\nleaderboard: {Path(run.run_dir) / 'leaderboard.csv'}")


def _leaderboard(args: argparse.Namespace) -> int:
    import league

    run = league.load(args.run, env_fn=args.env)
    _print_board(run)
    if args.csv:
        run.leaderboard().to_csv(args.csv, index=False)
        print(f"written: {args.csv}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    import league
    from league.evaluate import play_games

    run = league.load(args.run, env_fn=args.env)
    env = _env(run, args)
    greedy = not args.stochastic
    policy_id = args.policy or run.best()
    if args.ladder:
        return _eval_ladder(run, policy_id, greedy, args)
    opponent_id = _random_id(run) if args.opponent == "random" else args.opponent
    result = play_games(
        env,
        run.policy(policy_id, deterministic=greedy),
        run.policy(opponent_id, deterministic=greedy),
        games=args.games,
        seed=args.seed,
        policy_name=policy_id,
        opponent_name=args.opponent,
        env_kwargs=run.config.env_kwargs or None,
    )
    print(result)
    return 0


def _env(run: Any, args: argparse.Namespace) -> Any:
    """The run's env: --env, or the reference its config.json recorded."""

    env = args.env or run.config.env
    if env is None:
        raise RunDirError(
            f"run {str(run.run_dir)!r} was trained from an env function that cannot be "
            "imported by name; say which env it is with --env (a registry id or module:function)"
        )
    return env


def _eval_ladder(run: Any, policy_id: str, greedy: bool, args: argparse.Namespace) -> int:
    from league.ladder import evaluate_ladder, ladder_rungs
    from league.training.plan import EnvInfo

    env_fn = _env(run, args)
    env = EnvInfo.probe(env_fn, run.config.pad, run.config.env_kwargs, measure=False)
    if len(env.role_names) != 1 or len(env.roles) < 2:
        raise ConfigError(
            f"env {env.name!r} has {'one seat' if len(env.roles) < 2 else 'seats of several roles'}"
            ": it has no ladder (a ladder is for games whose seats share one role)"
        )
    obs_space, action_space = env.spaces[env.roles[0]]
    results = evaluate_ladder(
        env_fn,
        {policy_id: run.policy(policy_id, deterministic=greedy)},
        ladder_rungs(env.name, action_space, obs_space),
        args.games,
        seed=args.seed,
        env_kwargs=run.config.env_kwargs or None,
        pad=run.config.pad,
    )
    print(f"{policy_id} ({'greedy' if greedy else 'sampled'}) on the {env.name} ladder:")
    print("| rung | games | wins | draws | losses | win rate (95% CI) | score | W/D/L by seat |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: | --- |")
    for r in results:
        lo, hi = r.interval()
        print(
            f"| {r.opponent} | {r.games} | {r.wins} | {r.draws} | {r.losses} | "
            f"{r.win_rate:.3f} ({lo:.3f}-{hi:.3f}) | {r.score:.3f} | {r.seats_text()} |"
        )
    return 0


def _random_id(run: Any) -> str:
    for pid, record in run.league.policies.items():
        if record.kind == "fixed" and pid.startswith("random"):
            return pid
    raise UnknownPolicyError(
        "this league has no random policy (it was trained with opponents=[]); "
        "pass --opponent ID, or --ladder"
    )


def _play(args: argparse.Namespace) -> int:
    import league
    from league.play import play_terminal

    run = league.load(args.run, env_fn=args.env)
    policy_id = args.policy or run.best()
    return play_terminal(run, policy_id, human_seat=args.seat, env_fn=_env(run, args))


def _plot(args: argparse.Namespace) -> int:
    from league.plots import plot_run

    for path in plot_run(args.run, args.out):
        print(f"written: {path}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from league.check import check_env

    report = check_env(
        args.env, episodes=args.episodes, seed=args.seed, env_kwargs=args.env_kwargs, pad=args.pad
    )
    print(report)
    return 0 if report.ok else 1


def _demo(args: argparse.Namespace) -> int:
    import league
    from league.training import RunDir

    options = {"max_seconds": args.seconds, "total_steps": 0}
    run_dir = RunDir(args.run_dir)
    resume = None
    if run_dir.holds_run():
        try:
            run_dir.read_commit()
            resume = args.run_dir
        except RunDirError:
            run_dir = RunDir(f"{args.run_dir}-{time.strftime('%Y%m%d-%H%M%S')}")
    if resume:
        print(
            f"league demo: {args.run_dir} holds an earlier demo run; training it on for "
            f"{args.seconds:.0f} s more"
        )
        run = league.train(DEMO_ENV, resume=resume, **options)
    else:
        print(
            f"league demo: 6 PPO learners on {DEMO_ENV} for {args.seconds:.0f} s "
            f"(new run directory {run_dir})"
        )
        run = league.train(DEMO_ENV, num_policies=6, run_dir=str(run_dir), **options)
    _print_board(run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
