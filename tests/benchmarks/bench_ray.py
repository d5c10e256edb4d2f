"""The Ray backend against the multiprocessing backend: training rate in one run, as a ratio.

Both backends train the same league with the same env workers and envs for the
same wall time, in this process, interleaved round by round (multiprocessing
first in even rounds, Ray first in odd ones) so that a slow stretch of the
machine hits both. Ray starts once, before the first round, and every Ray run
reuses it: its start-up is reported on its own line, not in a round.

    .venv/bin/python tests/benchmarks/bench_ray.py --seconds 60 --rounds 2
    .venv/bin/python tests/benchmarks/bench_ray.py --scaling --seconds 60
    .venv/bin/python tests/benchmarks/bench_ray.py --calls --seconds 2 --rounds 3

Rate = env steps per second of training-loop time (trainer.json's env_steps /
elapsed, as bench_population.py), so building the run, its workers and Ray's
actors is excluded; `startup_s` is the rest of the `league.train` call.
Checkpoints, plots, the ladder, TensorBoard and the progress bar are off.

Where the time goes (sync mode's loop, both backends): the wall time inside
the vector env's `send` (handing actions to the workers; Ray: one remote call
per worker) and `recv` (waiting for the workers' envs), the collector's
acting (forward passes), and the population's `learn` (Ray: the batches to
the learner actor, its update, the new weights back), each as a fraction of
the training-loop time; `other` is the rest (matchmaking, bookkeeping).

`--calls` times Ray's own cost per env-worker call: one round trip to two
actors that answer at once, with numpy arrays against bytes both ways.

`--scaling` starts a simulated two-node cluster on this machine (two
`ray start --block` processes, each in its own process group, ended by
signalling those groups) and trains with 1, 2 and 4 env workers on it,
reporting the rate and the node each env worker was placed on. Each env
worker actor asks Ray for one CPU, so the nodes offer `--node-cpus` logical
CPUs each (default 2: room for 4 workers); on a machine with fewer cores than
workers they share cores, which bounds the scaling.

One JSON line per measurement is appended to `--out` (ray_start, round and
summary lines; cluster_start and scaling lines), and a markdown table of the
rounds and the ratio of their medians is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from league.training import Observer

ROOT = Path(__file__).resolve().parents[2]
BASELINES = ROOT / "tests" / "benchmarks" / "baselines"
sys.path.insert(0, str(BASELINES))

BACKENDS = ("multiprocessing", "ray")
# The default chosen at start for envs cheaper than 1 ms a step (league.training.plan),
# fixed here so that both backends (and every worker count) step the same envs; the MLP
# learners, without connect four's preset, as bench_population measures.
CONNECT_FOUR = {"num_policies": 6, "num_envs": 192, "preset": False}
# tests/benchmarks/bench_training.py's pistonball: one shared policy for the 20 pistons.
PISTONBALL = {
    "policies": [
        {
            "algo": "ppo",
            "hidden_sizes": [64, 64],
            "encoder": "mlp",
            "update_epochs": 4,
            "num_minibatches": 4,
        }
    ],
    "opponents": [],
    "teams": {f"piston_{i}": "pistons" for i in range(20)},
    "num_envs": 4,
    "rollout": 64,
    "batch_size": 5120,
}
QUIET = {
    "progress": False,
    "tensorboard": False,
    "plots": False,
    "ladder_seconds": 0,
    "checkpoint_seconds": 10**9,
}
PARTS = ("env_send", "env_wait", "acting", "learning")


def _pistonball() -> Any:
    sys.path.insert(0, str(BASELINES))  # also in Ray's workers, which unpickle this function
    import _common

    return _common.pistonball(max_cycles=125, obs="84", continuous=True)


def env_setup(name: str) -> tuple[Any, dict]:
    """(env function, train options) of a benchmark env."""
    if name == "pistonball":
        return _pistonball, PISTONBALL
    from pettingzoo.classic import connect_four_v3

    return connect_four_v3.env, CONNECT_FOUR


class Timing(Observer):
    """An observer that times pieces of the training loop by wrapping them on the run's
    own objects at `on_start` (the library has no timers of its own), and records the
    Ray node of each env worker."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PARTS, 0.0)
        self.worker_nodes: list[str] = []

    def on_start(self, trainer: Any) -> None:
        collector = trainer.loop.collector
        self._wrap(collector.vec, "send", "env_send")
        self._wrap(collector.vec, "recv", "env_wait")
        self._wrap(collector, "_act", "acting")
        self._wrap(trainer.population, "learn", "learning")
        if hasattr(collector.vec, "worker_nodes"):
            self.worker_nodes = collector.vec.worker_nodes()

    def _wrap(self, owner: Any, name: str, part: str) -> None:
        inner = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - started

        setattr(owner, name, timed)

    def fractions(self, elapsed: float) -> dict[str, float]:
        shares = {part: s / elapsed for part, s in self.seconds.items()}
        shares["other"] = max(0.0, 1.0 - sum(shares.values()))
        return {part: round(share, 4) for part, share in shares.items()}


def train(env: str, backend: str, seconds: float, workers: int, **extra: Any) -> dict:
    """One training run in this process; its rate, time shares and worker placement."""
    import league

    env_fn, options = env_setup(env)
    timing = Timing()
    output = io.StringIO()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(output):
        try:
            league.train(
                env_fn,
                backend=backend,
                num_workers=workers,
                max_seconds=seconds,
                total_steps=0,
                run_dir=f"{tmp}/run",
                observers=[timing],
                **QUIET,
                **options,
                **extra,
            )
        except Exception:
            sys.stderr.write(output.getvalue()[-3000:])
            raise
        commit = json.loads(Path(f"{tmp}/run/trainer.json").read_text())
        config = json.loads(Path(f"{tmp}/run/config.json").read_text())
    wall = time.perf_counter() - started
    elapsed = commit["elapsed"]
    return {
        "env": env,
        "backend": backend,
        "seconds": round(elapsed, 3),
        "env_steps": commit["env_steps"],
        "steps_per_s": round(commit["env_steps"] / elapsed, 1),
        "trained_samples": sum(commit["learner_steps"].values()),
        "num_workers": config["num_workers"],
        "num_envs": config["num_envs"],
        "startup_s": round(wall - elapsed, 2),
        "time_shares": timing.fractions(elapsed),
        "worker_nodes": timing.worker_nodes,
    }


def cores() -> int:
    from league.training.plan import available_cores

    return available_cores()


def compare(args: argparse.Namespace, log: Any) -> None:
    """Rounds of multiprocessing and Ray on each env, and their ratio."""
    import ray

    n = cores()
    started = time.perf_counter()
    # Each env worker actor asks for one CPU: at least as many as workers, or Ray waits.
    ray.init(num_cpus=max(n, args.workers), include_dashboard=False, log_to_driver=False)
    startup = {"kind": "ray_start", "seconds": round(time.perf_counter() - started, 2), "cores": n}
    emit(log, startup)
    time.sleep(args.settle)  # Ray's idle workers start after init: not in the first round
    try:
        for env in args.envs:
            runs: dict[str, list[dict]] = {b: [] for b in BACKENDS}
            for r in range(args.rounds):
                for backend in BACKENDS if r % 2 == 0 else BACKENDS[::-1]:
                    result = measure(env, backend, args.seconds, args.workers)
                    # Ray replaces the killed actors' worker processes: not in the next run.
                    time.sleep(args.settle)
                    if result is not None:
                        result.update(kind="round", round=r, cores=n, loadavg=os.getloadavg()[0])
                        runs[backend].append(result)
                        emit(log, result)
            summary = summarise(env, runs, n)
            if summary is not None:
                emit(log, summary)
            table(env, runs, summary)
    finally:
        ray.shutdown()
    print(f"\nRay start-up (once, not in any round): {startup['seconds']:.1f} s; {n} cores")


class CallTarget:
    """A Ray actor that answers a step request at once with a connect-four-sized buffer
    (96 envs: 38,240 bytes), as an array in a tuple or as bytes."""

    def __init__(self) -> None:
        import numpy as np

        self.buffer = np.zeros(38_240, np.uint8)

    def arrays(self, actions: dict, flags: Any) -> tuple:
        return self.buffer, None

    def packed(self, payload: bytes) -> bytes:
        return self.buffer.tobytes()


def calls(args: argparse.Namespace, log: Any) -> None:
    """What Ray spends per env-worker call, apart from stepping: two actors asked at
    once (one step of the sync loop's two halves), the actions going out as a dict of
    arrays and the result coming back as an array (how `wrappers.ray_vector` talked
    before), against both as bytes (how it talks now). Rounds interleaved."""
    import numpy as np
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        actors = [ray.remote(num_cpus=1)(CallTarget).remote() for _ in range(2)]
        actions = {"agent": np.zeros((96, 2), np.int64)}
        flags = np.ones(96, bool)
        payload = b"".join([actions["agent"].tobytes(), flags.tobytes()])
        ray.get([a.packed.remote(payload) for a in actors])
        kinds = {
            "arrays": lambda: ray.get([a.arrays.remote(actions, flags) for a in actors]),
            "bytes": lambda: ray.get([a.packed.remote(payload) for a in actors]),
        }
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(args.rounds):
            for kind, call in kinds.items():
                count, started = 0, time.perf_counter()
                while time.perf_counter() - started < args.seconds:
                    call()
                    count += 1
                times[kind].append(1000 * (time.perf_counter() - started) / count)
        for kind, ms in times.items():
            line = {
                "kind": "calls",
                "payload": kind,
                "ms_per_round_trip": [round(x, 3) for x in ms],
            }
            emit(log, {**line, "actors": 2, "cores": cores()})
            print(f"{kind}: {statistics.median(ms):.2f} ms per round trip (two actors)")
    finally:
        ray.shutdown()


def measure(env: str, backend: str, seconds: float, workers: int, **extra: Any) -> dict | None:
    try:
        return train(env, backend, seconds, workers, **extra)
    except Exception:
        print(f"# {env} {backend} {workers} workers failed:", file=sys.stderr)
        traceback.print_exc()
        return None


def summarise(env: str, runs: dict[str, list[dict]], n: int) -> dict | None:
    medians = {b: median(runs[b], "steps_per_s") for b in BACKENDS}
    if None in medians.values():
        return None
    return {
        "kind": "summary",
        "env": env,
        "backend": "ray/multiprocessing",
        "ratio": round(medians["ray"] / medians["multiprocessing"], 3),
        "steps_per_s": medians,
        "rounds": {b: len(runs[b]) for b in BACKENDS},
        "num_workers": runs["ray"][0]["num_workers"],
        "num_envs": runs["ray"][0]["num_envs"],
        "cores": n,
    }


def median(results: list[dict], key: str) -> float | None:
    values = [r[key] for r in results]
    return statistics.median(values) if values else None


def table(env: str, runs: dict[str, list[dict]], summary: dict | None) -> None:
    ratio = f"{summary['ratio']:.2f}x" if summary else "-"
    print(f"\n### {env}: Ray / multiprocessing = {ratio} (median env steps/s)\n")
    print(
        "| backend | round | env steps/s | start-up s | send | wait for envs | acting | "
        "learning | other |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for backend in BACKENDS:
        for r in runs[backend]:
            shares = " | ".join(f"{r['time_shares'][p]:.0%}" for p in (*PARTS, "other"))
            print(
                f"| {backend} | {r['round']} | {r['steps_per_s']:,.0f} | {r['startup_s']:.1f} "
                f"| {shares} |"
            )


# -- scaling on a simulated two-node cluster -------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(args: list[str], logs: Path, name: str) -> subprocess.Popen:
    """`ray start --block` in its own process group, so that it and every process it
    starts can be ended together, and only those."""
    ray_cli = str(Path(sys.executable).with_name("ray"))
    command = [ray_cli, "start", "--block", "--disable-usage-stats", *args]
    with open(logs / f"{name}.log", "w") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def cluster_token() -> None:
    """One token for the nodes and this driver. Ray 2.5x's `ray start --head` turns token
    authentication on, but a node joining with `--address`, and `ray.init(address=...)`,
    only send a token when told to (without it: InvalidAuthToken). The nodes inherit it."""
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)


def stop_nodes(nodes: list[subprocess.Popen]) -> None:
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, sig)
        deadline = time.monotonic() + grace
        for node in nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(timeout=max(0.1, deadline - time.monotonic()))
        if all(node.poll() is not None for node in nodes):
            return


def wait_for(what: str, ready: Any, timeout: float, logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not up within {timeout:.0f} s; see the logs in {logs}")
        time.sleep(0.5)


def scaling(args: argparse.Namespace, log: Any) -> None:
    """The Ray backend with 1, 2, 4 env workers on a two-node cluster on this machine."""
    cluster_token()  # before Ray is imported: it reads its settings once
    import ray

    n = cores()
    port = free_port()
    address = f"127.0.0.1:{port}"
    logs = Path(tempfile.mkdtemp(prefix="bench_ray_nodes_"))
    node_args = ["--num-cpus", str(args.node_cpus)]
    nodes: list[subprocess.Popen] = []
    try:
        started = time.perf_counter()
        # Its own temp dir: the cluster's address is written there, not to the
        # /tmp/ray/ray_current_cluster that a plain `ray.init()` on this machine would join.
        head = [
            "--head",
            "--port",
            str(port),
            "--temp-dir",
            str(logs / "ray"),
            "--include-dashboard=false",
            *node_args,
        ]
        nodes.append(start_node(head, logs, "head"))

        def reachable() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for("the head node", reachable, 60, logs)
        nodes.append(start_node(["--address", address, *node_args], logs, "node2"))
        ray.init(address=address, log_to_driver=False)
        wait_for("the second node", lambda: len(alive_nodes()) >= 2, 60, logs)
        labels = node_labels()
        cluster_cpus = int(ray.cluster_resources().get("CPU", 0))
        startup = {
            "kind": "cluster_start",
            "seconds": round(time.perf_counter() - started, 2),
            "nodes": len(labels),
            "cluster_cpus": cluster_cpus,
            "cores": n,
        }
        emit(log, startup)
        results = []
        for env in args.envs:
            for workers in args.scaling_workers:
                if workers > cluster_cpus:
                    print(
                        f"# {env}, {workers} workers: skipped; each env worker asks Ray for one "
                        f"CPU and the cluster has {cluster_cpus} (Ray would wait for them "
                        "forever): raise --node-cpus",
                        file=sys.stderr,
                    )
                    continue
                result = measure(env, "ray", args.seconds, workers, ray_address=address)
                time.sleep(args.settle)
                if result is None:
                    continue
                result["worker_nodes"] = [labels.get(x, x) for x in result["worker_nodes"]]
                result.update(kind="scaling", cores=n, loadavg=os.getloadavg()[0])
                results.append(result)
                emit(log, result)
    finally:
        ray.shutdown()
        stop_nodes(nodes)
    shutil.rmtree(logs, ignore_errors=True)  # kept when the cluster failed
    print(
        f"\n### scaling: Ray backend on {startup['nodes']} nodes x {args.node_cpus} CPUs, "
        f"this machine has {n} cores (cluster start {startup['seconds']:.1f} s)\n"
    )
    print("| env | env workers | env steps/s | / 1 worker | workers on | start-up s |")
    print("| --- | ---: | ---: | ---: | --- | ---: |")
    for r in results:
        one = next((x for x in results if x["env"] == r["env"] and x["num_workers"] == 1), None)
        speedup = f"{r['steps_per_s'] / one['steps_per_s']:.2f}x" if one else "-"
        placed = ", ".join(r["worker_nodes"])
        print(
            f"| {r['env']} | {r['num_workers']} | {r['steps_per_s']:,.0f} | {speedup} | "
            f"{placed} | {r['startup_s']:.1f} |"
        )


def alive_nodes() -> list[dict]:
    import ray

    return [node for node in ray.nodes() if node["Alive"]]


def node_labels() -> dict[str, str]:
    """Node id -> "head", "node2", "node3", ..."""
    labels = {}
    for node in alive_nodes():
        if "node:__internal_head__" in node.get("Resources", {}):
            labels[node["NodeID"]] = "head"
        else:
            labels[node["NodeID"]] = f"node{sum(x != 'head' for x in labels.values()) + 2}"
    return labels


def emit(log: Any, result: dict) -> None:
    line = json.dumps(result)
    print(line, flush=True)
    log.write(line + "\n")
    log.flush()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--envs",
        nargs="+",
        choices=["connect_four", "pistonball"],
        default=["connect_four", "pistonball"],
    )
    parser.add_argument("--seconds", type=float, default=60, help="training time per run")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both backends per env")
    parser.add_argument("--workers", type=int, default=2, help="env workers of every round")
    parser.add_argument(
        "--scaling", action="store_true", help="only the scaling runs on a two-node cluster"
    )
    parser.add_argument(
        "--scaling-workers",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2, 4],
        help="env worker counts of --scaling (default 1,2,4)",
    )
    parser.add_argument(
        "--node-cpus", type=int, default=2, help="logical CPUs of each simulated node"
    )
    parser.add_argument(
        "--calls",
        action="store_true",
        help="only the cost of one step's round trip to two actors: arrays against bytes",
    )
    parser.add_argument(
        "--settle", type=float, default=5, help="seconds of pause after Ray starts and each run"
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "ray_backend.jsonl"))
    args = parser.parse_args()

    import _common

    _common.quiet()
    print(f"# {cores()} CPU cores; load average {os.getloadavg()[0]:.2f}", flush=True)
    with open(args.out, "a") as log:
        if args.calls:
            calls(args, log)
        elif args.scaling:
            scaling(args, log)
        else:
            compare(args, log)


if __name__ == "__main__":
    main()
