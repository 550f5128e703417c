"""Command line entry point: ``python -m coalesce_simulator``.

Once it accepts connections it prints one line, the first on stdout and flushed,
``Coalesce API simulator listening on <base URL> (token: <token>)``, so a parent process can read
the URL (with ``--port 0`` the port is picked freely); then it serves until Ctrl-C or SIGTERM.
Logs go to stderr. ``--latency-ms`` delays every API response (``Faults.latency_ms``);
``--real-account`` serves what clients of real accounts see instead of the documented behaviour
(``faults.real_account_quirks``: 500 page-size cap, UUID run links, ``runState: "failed"``).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from .config import DEFAULT_TOKEN, SimulatorConfig
from .faults import Faults, real_account_quirks
from .server import CoalesceSimulator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m coalesce_simulator",
        description="Serve a simulated Coalesce REST API (stdlib only, deterministic data).",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    add("--port", type=int, default=8765, help="port to bind; 0 picks a free one (default: 8765)")
    add("--allow-remote", action="store_true", help="allow binding a non-loopback host")
    add("--token", default=DEFAULT_TOKEN, help=f"bearer token to accept (default: {DEFAULT_TOKEN})")
    add("--environments", type=int, default=3)
    add("--nodes-per-environment", type=int, default=25)
    add("--runs", type=int, default=40, help="historical runs")
    add("--results-per-run", type=int, default=8)
    add("--users", type=int, default=5)
    add("--projects", type=int, default=2)
    add(
        "--jobs-per-project",
        type=int,
        default=2,
        help="saved jobs per project (an environment's are its project's)",
    )
    add("--in-flight-runs", type=int, default=2, help="newest historical runs still in flight")
    add("--seed", type=int, default=0)
    add("--public-base-url", default=None, help="base for runLink (default: the server's URL)")
    add("--latency-ms", type=float, default=0.0, help="delay every response by this much")
    add("--real-account", action="store_true",
        help="behave as real accounts do where they differ from the docs: limit 1..500, "
             "UUID run links, runState 'failed'")  # fmt: skip
    add("--demo-run-interval", type=float, default=0.0, metavar="SECONDS",
        help="start a refresh run this often (0 = off)")  # fmt: skip
    add("--demo-run-duration", type=float, default=15.0, metavar="SECONDS",
        help="how long a demo run takes from queued to finished (default: 15)")  # fmt: skip
    add("--verbose", action="store_true", help="log every request to stderr")
    return parser


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name we cannot vouch for


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.allow_remote and not _is_loopback(args.host):
        parser.error(f"refusing to bind non-loopback host {args.host!r}; pass --allow-remote to do it anyway")
    if args.demo_run_interval < 0 or args.demo_run_duration <= 0:
        parser.error("--demo-run-interval must be >= 0 and --demo-run-duration > 0")
    try:
        config = SimulatorConfig(
            environments=args.environments,
            nodes_per_environment=args.nodes_per_environment,
            runs=args.runs,
            results_per_run=args.results_per_run,
            users=args.users,
            projects=args.projects,
            jobs_per_project=args.jobs_per_project,
            seed=args.seed,
            token=args.token,
            in_flight_runs=args.in_flight_runs,
            public_base_url=args.public_base_url,
        )
        faults = Faults(latency_ms=args.latency_ms)
        if args.real_account:
            faults.update(real_account_quirks())
    except ValueError as error:
        parser.error(str(error))

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    simulator = CoalesceSimulator(config, faults, host=args.host, port=args.port, verbose=args.verbose)
    try:
        simulator.start()
    except OSError as error:
        print(f"error: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        if args.demo_run_interval > 0:
            simulator.start_demo(args.demo_run_interval, args.demo_run_duration)
        print(f"Coalesce API simulator listening on {simulator.base_url} (token: {config.token})", flush=True)
        stop.wait()
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
