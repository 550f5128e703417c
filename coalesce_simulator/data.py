"""The simulated organisation: generated data plus the mutations tests and demo mode apply.

All data lives in plain JSON-ready dicts so the HTTP layer can serve it without translation.
Every public method takes ``self.lock`` (an RLock, so methods may call each other); readers
such as the HTTP layer hold the same lock while rendering a response.

Determinism: the initial build threads one ``random.Random(seed)`` through users, projects,
environments, nodes and historical runs in a fixed order. Run lifecycle code draws from a
per-run RNG seeded with ``(seed, run id, phase)``, so a run's results do not depend on what
else happened in between. Timestamps come from :class:`SimClock`, which is deterministic until
demo mode switches it to real time.

Scale: a large organisation (20 environments x 2,000 nodes, 20,000 runs x 50 results) must start in
seconds and fit in a few hundred MB. So the results of runs that finished in the generated history
are never stored: ``results`` (a :class:`~.results.RunResults` mapping) rebuilds them on access from
the seed and the run record, which the per-run RNG makes exact; historical runs share one node
snapshot per node; lineage is built with an incremental index; and per-environment run lists keep
status bookkeeping from scanning every run.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import random
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from .config import SimulatorConfig
from .faults import Faults
from .generation import (
    LineageIndex,
    error_text,
    job_definition,
    make_environment,
    make_job,
    make_node,
    make_project,
    make_result,
    make_user,
    make_workspace,
    new_hex,
    run_node_snapshot,
)
from .results import RunResults
from .selectors import select_nodes
from .timeutil import BASE_TIME, RUN_SPACING, UTC, SimClock, parse_iso, to_iso

RUN_STATUSES = ("waitingToRun", "running", "completed", "failed", "canceled")
TERMINAL_STATUSES = frozenset({"completed", "failed", "canceled"})
RUN_TYPES = ("deploy", "refresh")

# Share of historical / demo runs that end badly.
_HISTORY_OUTCOMES = (("completed", 0.78), ("failed", 0.93), ("canceled", 1.0))
_DEMO_FAILURE_RATE = 0.2
_DEPLOY_SHARE = 0.15
_COMMIT_MESSAGES = ["Add customer dimension", "Fix join on orders", "Rename columns", "New fact table"]

F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: SimulatorState, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return cast(F, wrapper)


@dataclass
class _Schedule:
    """Demo-mode plan for one run: wait, run, then end with ``outcome``."""

    created: datetime
    duration: float  # seconds from creation to the terminal state
    outcome: str


class SimulatorState:
    """Thread-safe in-memory Coalesce organisation.

    Public collections (read them under ``lock`` if other threads may be mutating):
    ``environments`` env id -> Environment; ``nodes`` env id -> node id -> Node;
    ``runs`` run id -> run record; ``results`` run id -> RunResult list (a mapping that rebuilds
    the results of historical runs on access, see :class:`~.results.RunResults`);
    ``users`` user id -> User; ``projects`` project id -> Project (with workspaces and jobs).

    A run record carries the RunSummary/RunInfo fields (``environmentID`` top-level) plus
    ``_nodes`` (snapshots of the nodes it executes, in order) and ``_runningSince``.

    ``faults`` are the knobs of the server presenting this state (:class:`CoalesceSimulator`
    shares its own); the state reads only those that shape values it hands out, such as
    ``run_link_style`` in :meth:`run_link`.
    """

    def __init__(self, config: SimulatorConfig | None = None, faults: Faults | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.faults = faults or Faults()
        self.lock = threading.RLock()
        # Notified whenever a run is started (startRun, rerun): tests wait on it, never sleep.
        self.run_started = threading.Condition(self.lock)
        self.started_run_ids: list[int] = []
        # New runs start after the generated history.
        self.clock = SimClock(BASE_TIME + RUN_SPACING * (self.config.runs + 1))
        self.public_base_url = self.config.public_base_url or "http://127.0.0.1"
        self.environments: dict[str, dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, dict[str, Any]]] = {}
        self.runs: dict[int, dict[str, Any]] = {}
        self.results = RunResults(self._historical_results)
        self._runs_by_env: dict[str, list[dict[str, Any]]] = {}  # env id -> its runs, oldest first
        self.users: dict[str, dict[str, Any]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        # Demo mode: when set, runs started through the API are driven to completion over
        # this many seconds by advance_all().
        self.auto_drive_seconds: float | None = None
        self._schedules: dict[int, _Schedule] = {}
        self._last_run_id = 0  # ids only grow, even past deleted runs
        self._rng = random.Random(self.config.seed)
        with self.lock:
            self._generate()

    # ---------------------------------------------------------------------------------------
    # clock and small lookups

    def now(self) -> datetime:
        """Deterministic, strictly increasing timestamp (real UTC time in demo mode)."""
        return self.clock.now()

    def use_real_clock(self) -> None:
        self.clock.use_real_time()

    def run_link(self, run_id: int) -> str:
        """The ``runLink`` /scheduler/runStatus gives for ``run_id``, in the active ``run_link_style``."""
        if self.faults.run_link_style == "uuid":
            return f"{self.public_base_url}/runs/{self.run_uuid(run_id)}"
        return f"{self.public_base_url}/runs/{run_id}"

    def run_uuid(self, run_id: int) -> str:
        """The UUID standing for ``run_id`` in a "uuid"-style run link.

        Real run URLs carry a UUID that no other field of the API reveals, so a client cannot
        rebuild them from the run counter. Hashing (seed, run id) keeps it stable per run.
        """
        digest = hashlib.sha256(f"{self.config.seed}/run-link/{int(run_id)}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))

    @_locked
    def environment_nodes(self, environment_id: str) -> list[dict[str, Any]]:
        """Nodes of an environment in execution order (upstreams first)."""
        self._environment(environment_id)
        return list(self.nodes[environment_id].values())

    @_locked
    def environment_jobs(self, environment_id: str) -> list[dict[str, Any]]:
        """The saved jobs an environment can run: its project's, in id order."""
        env = self._environment(environment_id)
        return list(self.projects[env["project"]]["jobs"])

    @_locked
    def find_job(self, job_id: str | int) -> dict[str, Any] | None:
        for project in self.projects.values():
            for job in project["jobs"]:
                if str(job["id"]) == str(job_id):
                    return cast(dict[str, Any], job)
        return None

    def _environment(self, environment_id: str) -> dict[str, Any]:
        try:
            return self.environments[str(environment_id)]
        except KeyError:
            raise KeyError(f"Environment {environment_id} not found") from None

    def _run(self, run_id: int) -> dict[str, Any]:
        try:
            return self.runs[int(run_id)]
        except (KeyError, ValueError):
            raise KeyError(f"Run {run_id} not found") from None

    def _node(self, environment_id: str, node_id: str) -> dict[str, Any]:
        self._environment(environment_id)
        try:
            return self.nodes[str(environment_id)][node_id]
        except KeyError:
            raise KeyError(f"Node {node_id} not found in environment {environment_id}") from None

    def _run_rng(self, run_id: int, phase: str) -> random.Random:
        return random.Random(f"{self.config.seed}/run/{run_id}/{phase}")

    def _api_user_id(self) -> str | None:
        # The API token belongs to one user; the first generated user plays that part.
        return next(iter(self.users), None)

    # ---------------------------------------------------------------------------------------
    # initial generation

    def _generate(self) -> None:
        cfg, rng = self.config, self._rng
        origin = BASE_TIME - timedelta(days=90)
        for index in range(1, cfg.users + 1):
            user = make_user(rng, index, origin + timedelta(days=index))
            self.users[user["id"]] = user
        users = list(self.users.values())

        workspace_id = job_id = 0
        for index in range(1, cfg.projects + 1):
            project = make_project(index, origin)
            for label in ("Development", "Feature"):
                workspace_id += 1
                project["workspaces"].append(make_workspace(workspace_id, project["id"], label))
            for number in range(1, cfg.jobs_per_project + 1):
                job_id += 1
                project["jobs"].append(make_job(job_id, *job_definition(number), project["id"]))
            self.projects[project["id"]] = project

        for index in range(1, cfg.environments + 1):
            project = self.projects[str((index - 1) % cfg.projects + 1)]
            creator = rng.choice(users) if users else None
            env = make_environment(rng, index, project, creator, origin + timedelta(days=index))
            self.environments[env["id"]] = env
            project["environments"].append(env["id"])
            self.nodes[env["id"]] = self._generate_nodes(env)

        self._generate_runs()
        for env_id in self.environments:
            self._sync_environment(env_id)

    def _generate_nodes(self, env: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        count = self.config.nodes_per_environment
        sources = max(1, count // 5) if count else 0
        built: list[dict[str, Any]] = []
        taken: set[str] = set()
        lineage = LineageIndex()
        for index in range(count):
            node = make_node(self._rng, env, built, taken, as_source=index < sources, lineage=lineage)
            built.append(node)
            lineage.add(node)
        return {node["id"]: node for node in built}

    def _generate_runs(self) -> None:
        cfg, rng = self.config, self._rng
        env_ids = list(self.environments)
        if not env_ids:
            return
        in_flight = min(cfg.in_flight_runs, cfg.runs)
        # One snapshot per node, shared by every historical run that executed it (snapshots are
        # never mutated; a later rename changes the node, not what old runs remember).
        snapshots = {
            env_id: [run_node_snapshot(n) for n in self.nodes[env_id].values()] for env_id in env_ids
        }
        user_ids = list(self.users)
        for run_id in range(1, cfg.runs + 1):
            env_id = rng.choice(env_ids)
            run_type = "deploy" if rng.random() < _DEPLOY_SHARE else "refresh"
            roll = rng.random()
            outcome = next(status for status, bound in _HISTORY_OUTCOMES if roll < bound)
            duration = timedelta(minutes=rng.randint(2, 30))
            start = BASE_TIME + RUN_SPACING * run_id
            if run_type == "deploy":
                details: dict[str, Any] = {
                    "deployCommit": new_hex(rng, 40),
                    "deployCommitMessage": rng.choice(_COMMIT_MESSAGES),
                }
            else:
                details = {"refreshDescription": f"Scheduled refresh of {self.environments[env_id]['name']}"}
            run = self._create_run(
                env_id,
                run_type,
                start,
                self._sample_nodes(rng, env_id, snapshots[env_id]),
                details=details,
                user_id=rng.choice(user_ids) if user_ids else None,
            )
            newest_rank = cfg.runs - run_id  # 0 for the newest run
            if newest_rank < in_flight:
                # The newest in-flight run is still queued; older ones are half done.
                if newest_rank > 0:
                    self._begin_running(run, start, already_done=len(run["_nodes"]) // 2)
            else:
                # Straight to the end, as if _finish() had written every result from the start
                # time; the results themselves are rebuilt on access (_historical_results).
                run["_runningSince"] = run["runStartTime"]
                self._finish(run, outcome, start + duration, lazy=True)

    def _sample_nodes(
        self, rng: random.Random, env_id: str, snapshots: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """Snapshots of ``results_per_run`` of the environment's nodes, in execution order.

        ``snapshots``: ready-made snapshots of every node of the environment, in order, to share.
        """
        if snapshots is None:
            ordered = list(self.nodes[env_id].values())
            count = min(self.config.results_per_run, len(ordered))
            picked = sorted(rng.sample(range(len(ordered)), count))
            return [run_node_snapshot(ordered[i]) for i in picked]
        count = min(self.config.results_per_run, len(snapshots))
        return [snapshots[i] for i in sorted(rng.sample(range(len(snapshots)), count))]

    def _historical_results(self, run_id: int) -> list[dict[str, Any]]:
        """The results _finish() would have written for a run that finished in the generated history.

        Pure function of the seed and the run record (both fixed once the run is terminal), so it
        can be called again whenever the results are needed instead of keeping them.
        """
        run = self.runs[run_id]
        status = run["runStatus"]
        rng, fail_index = self._finish_plan(run, status, {})
        return self._final_results(run, status, parse_iso(run["runEndTime"]), {}, rng, fail_index)

    # ---------------------------------------------------------------------------------------
    # run lifecycle internals

    def _create_run(
        self,
        env_id: str,
        run_type: str,
        at: datetime,
        nodes: list[dict[str, Any]],
        *,
        details: Mapping[str, Any],
        user_id: str | None,
        parameters: Mapping[str, Any] | None = None,
        credentials: Mapping[str, Any] | None = None,
        rerun_of: int | None = None,
    ) -> dict[str, Any]:
        env = self.environments[env_id]
        self._last_run_id = run_id = self._last_run_id + 1
        credentials = credentials or {}
        user = self.users.get(user_id) if user_id else None
        run_details: dict[str, Any] = {"parallelism": 16}
        if run_type == "refresh":
            run_details["forceIgnoreEnvironmentStatus"] = False
        run_details.update(details)
        run_details.update(nodesInRun=len(nodes), canceled=False)
        record: dict[str, Any] = {
            "id": run_id,
            "runType": run_type,
            "runStatus": "waitingToRun",
            "environmentID": env_id,
            "runStartTime": to_iso(at),
            "runEndTime": None,
            "runFailureReason": None,
            "reRunID": str(rerun_of) if rerun_of is not None else None,
            "version": 1,
            "runDetails": run_details,
            "runHistory": [rerun_of] if rerun_of is not None else [],
            "runTimeParameters": dict(parameters or {}),
            # Secrets are never echoed back, only who/where (doc §3.3).
            "userCredentials": {
                "snowflakeAccount": env["connectionAccount"],
                "snowflakeAuthType": credentials.get("snowflakeAuthType")
                or ("OAuth" if env["oauthEnabled"] else "Basic"),
                "snowflakeUsername": credentials.get("snowflakeUsername")
                or (user["email"].upper() if user else "SIMULATOR"),
                "snowflakeRole": credentials.get("snowflakeRole") or "TRANSFORMER",
                "snowflakeWarehouse": credentials.get("snowflakeWarehouse") or "COMPUTE_WH",
            },
            "userID": user_id,
            "_nodes": nodes,
            "_runningSince": None,
        }
        self.runs[run_id] = record
        self._runs_by_env.setdefault(env_id, []).append(record)
        self.results[run_id] = []
        return record

    def _begin_running(self, run: dict[str, Any], at: datetime, already_done: int = 0) -> None:
        run["runStatus"] = "running"
        run["_runningSince"] = to_iso(at)
        rng = self._run_rng(run["id"], "running")
        step = timedelta(seconds=45)
        results = []
        for index, node in enumerate(run["_nodes"]):
            if index < already_done:
                start, state = at + step * index, "complete"
            else:
                start, state = at + step * already_done, "running"
            results.append(make_result(rng, node, run["runType"], state, start, start + step))
        self.results[run["id"]] = results

    def _finish(
        self,
        run: dict[str, Any],
        status: str,
        at: datetime,
        failure_reason: str | None = None,
        *,
        lazy: bool = False,
        failed_node: str | None = None,
    ) -> None:
        """End ``run`` in ``status`` at ``at`` and finalise its results.

        ``lazy``: only for a run that never had results (generated history): leave its results to
        be rebuilt on access by :meth:`_historical_results`, which gives the very same list.
        """
        previous = {} if lazy else {result["nodeID"]: result for result in self.results.get(run["id"], [])}
        rng, fail_index = self._finish_plan(run, status, previous, failed_node)
        run["runEndTime"] = to_iso(at)
        if lazy:
            self.results.mark_lazy(run["id"])
        else:
            self.results[run["id"]] = self._final_results(run, status, at, previous, rng, fail_index)
        run["runStatus"] = status
        if status == "canceled":
            run["runDetails"]["canceled"] = True
        if status == "failed" and failure_reason is None:
            if fail_index is not None:
                node = run["_nodes"][fail_index]
                failure_reason = f"Error executing node {node['name']}: {error_text(node)}"
            else:
                failure_reason = "Run failed"
        run["runFailureReason"] = failure_reason

    @staticmethod
    def _done(previous: Mapping[str, Mapping[str, Any]], node: Mapping[str, Any]) -> bool:
        return previous.get(node["id"], {}).get("runState") == "complete"

    def _finish_plan(
        self,
        run: Mapping[str, Any],
        status: str,
        previous: Mapping[str, Mapping[str, Any]],
        failed_node: str | None = None,
    ) -> tuple[random.Random, int | None]:
        """The run's finishing RNG and, for a failed run, the index of the node that fails: the one
        named by ``failed_node`` (id or name) if given, else one of the unfinished nodes at random."""
        rng = self._run_rng(run["id"], status)
        if status != "failed":
            if failed_node is not None:
                raise ValueError(f"failed_node only applies to a run that fails, not to {status!r}")
            return rng, None
        if previous:
            pending = [index for index, node in enumerate(run["_nodes"]) if not self._done(previous, node)]
        else:
            pending = list(range(len(run["_nodes"])))
        if failed_node is not None:
            named = [i for i in pending if failed_node in (run["_nodes"][i]["id"], run["_nodes"][i]["name"])]
            if not named:
                raise ValueError(f"run {run['id']} has no unfinished node {failed_node!r} that could fail")
            rng.choice(pending)  # drawn as without the choice, so the rest of the results stay the same
            return rng, named[0]
        return rng, rng.choice(pending) if pending else None

    def _final_results(
        self,
        run: Mapping[str, Any],
        status: str,
        at: datetime,
        previous: Mapping[str, dict[str, Any]],
        rng: random.Random,
        fail_index: int | None,
    ) -> list[dict[str, Any]]:
        nodes: list[dict[str, Any]] = run["_nodes"]
        started = run["_runningSince"] is not None
        begin = parse_iso(run["_runningSince"]) if started else at
        slot = max(at - begin, timedelta(0)) / max(len(nodes), 1)
        results = []
        for index, node in enumerate(nodes):
            if self._done(previous, node):
                results.append(previous[node["id"]])  # finished work stays finished
                continue
            if status == "canceled":
                if not started:
                    continue  # canceled while queued: nothing ever ran
                state = "skipped"
            elif fail_index is None or index < fail_index:
                state = "complete"
            else:
                state = "error" if index == fail_index else "skipped"
            start = begin + slot * index
            results.append(make_result(rng, node, run["runType"], state, start, start + slot))
        return results

    def _transition(
        self,
        run: dict[str, Any],
        status: str,
        failure_reason: str | None = None,
        failed_node: str | None = None,
    ) -> None:
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}; expected one of {RUN_STATUSES}")
        current = run["runStatus"]
        if status == current:
            return
        if current in TERMINAL_STATUSES:
            raise ValueError(f"run {run['id']} is already {current}")
        if status == "waitingToRun":
            raise ValueError(f"run {run['id']} cannot go back from {current} to waitingToRun")
        if status == "running":
            self._begin_running(run, self.now())
        else:
            if current == "waitingToRun" and status != "canceled":
                # Jumping straight to the end still produces results as if it had run.
                self._begin_running(run, self.now())
            self._finish(run, status, self.now(), failure_reason, failed_node=failed_node)
            self._schedules.pop(run["id"], None)
        self._sync_environment(run["environmentID"])

    def _sync_environment(self, env_id: str) -> None:
        """Recompute the environment's status and currentlyRunningJobs from its runs."""
        env = self.environments.get(env_id)
        if env is None:
            return
        runs = self._runs_by_env.get(env_id, [])
        running = [run for run in runs if run["runStatus"] == "running"]
        env["currentlyRunningJobs"] = sorted(run["id"] for run in running)
        if any(run["runType"] == "deploy" for run in running):
            env["status"] = "Deploying"
        elif running:
            env["status"] = "Refreshing"
        else:
            finished = [run for run in runs if run["runStatus"] in TERMINAL_STATUSES]
            last = max(finished, key=lambda run: run["id"], default=None)
            if last is not None and last["runStatus"] == "failed":
                env["status"] = "Failed Deploy" if last["runType"] == "deploy" else "Failed Refresh"
            else:
                env["status"] = "Waiting"

    def _after_start(self, run: dict[str, Any]) -> int:
        self._sync_environment(run["environmentID"])
        if self.auto_drive_seconds is not None:
            self.schedule_run(run["id"], self.auto_drive_seconds)
        self.started_run_ids.append(int(run["id"]))
        self.run_started.notify_all()
        return int(run["id"])

    def wait_for_started_run(self, count: int, timeout: float = 60.0) -> int:
        """Block until at least ``count`` runs were started (startRun or rerun) since this state was
        made; return the id of the ``count``-th. Raises TimeoutError."""
        with self.run_started:
            if not self.run_started.wait_for(lambda: len(self.started_run_ids) >= count, timeout):
                raise TimeoutError(f"no run #{count} was started within {timeout:g} s")
            return self.started_run_ids[count - 1]

    # ---------------------------------------------------------------------------------------
    # run mutations (public)

    @_locked
    def start_run(
        self,
        environment_id: str,
        job_id: str | None = None,
        include: str | None = None,
        exclude: str | None = None,
        *,
        parallelism: int = 16,
        parameters: Mapping[str, Any] | None = None,
        credentials: Mapping[str, Any] | None = None,
        force_ignore_environment_status: bool = False,
    ) -> int:
        """Queue a refresh run like ``POST /scheduler/startRun``; returns the new run id.

        Raises KeyError for an unknown environment/job, ValueError for a bad selector.
        """
        env = self._environment(environment_id)
        env_id = env["id"]
        job = None
        if job_id is not None:
            job = self.find_job(job_id)
            if job is None or job["projectID"] != env["project"]:
                raise KeyError(f"Job {job_id} not found for environment {env_id}")
            # Explicit selectors override the job's own (doc §7.1).
            include = include if include is not None else (job["includeSelector"] or None)
            exclude = exclude if exclude is not None else (job["excludeSelector"] or None)
        selected = select_nodes(self.nodes[env_id].values(), include, exclude)
        details = {
            "jobID": job["id"] if job else None,
            "includeNodesSelector": include,
            "excludeNodesSelector": exclude,
            "parallelism": parallelism,
            "forceIgnoreEnvironmentStatus": force_ignore_environment_status,
            "refreshDescription": f"Job {job['name']}" if job else f"Refresh of {env['name']}",
        }
        run = self._create_run(
            env_id,
            "refresh",
            self.now(),
            [run_node_snapshot(node) for node in selected],
            details=details,
            user_id=self._api_user_id(),
            parameters=parameters,
            credentials=credentials,
        )
        return self._after_start(run)

    @_locked
    def rerun(
        self,
        run_id: int,
        *,
        parameters: Mapping[str, Any] | None = None,
        credentials: Mapping[str, Any] | None = None,
        force_ignore_environment_status: bool = False,
    ) -> int:
        """Re-run the nodes of a failed/canceled refresh that did not complete (doc §7.2)."""
        original = self._run(run_id)
        if original["runType"] != "refresh" or original["runStatus"] not in ("failed", "canceled"):
            raise ValueError(
                f"Run {run_id} is a {original['runStatus']} {original['runType']} run; "
                "only failed or canceled refresh runs can be re-run"
            )
        if original["environmentID"] not in self.environments:
            raise KeyError(f"Environment {original['environmentID']} not found")
        finished = {r["nodeID"] for r in self.results.get(original["id"], []) if r["runState"] == "complete"}
        nodes = [node for node in original["_nodes"] if node["id"] not in finished]
        keep = ("jobID", "includeNodesSelector", "excludeNodesSelector", "parallelism")
        details = {key: original["runDetails"].get(key) for key in keep}
        details.update(
            forceIgnoreEnvironmentStatus=force_ignore_environment_status,
            refreshDescription=f"Re-run of run {original['id']}",
        )
        run = self._create_run(
            original["environmentID"],
            "refresh",
            self.now(),
            nodes,
            details=details,
            user_id=self._api_user_id(),
            parameters=parameters if parameters is not None else original["runTimeParameters"],
            credentials=credentials,
            rerun_of=original["id"],
        )
        return self._after_start(run)

    @_locked
    def set_run_status(
        self, run_id: int, status: str, failure_reason: str | None = None, *, failed_node: str | None = None
    ) -> None:
        """Move a run along waitingToRun -> running -> completed|failed|canceled.

        Entering ``running`` creates results with ``isRunning=true``; entering a terminal
        state sets ``runEndTime`` and finalises every result. Terminal runs cannot move again.
        ``failed_node`` (a node id or name, with ``failed``): the node that fails, instead of one
        drawn at random; the nodes before it complete and the later ones are skipped.
        """
        run = self._run(run_id)
        if failed_node is not None:
            if status != "failed":
                raise ValueError("failed_node only applies to status 'failed'")
            done = {r["nodeID"] for r in self.results.get(run["id"], []) if r["runState"] == "complete"}
            if not any(
                failed_node in (node["id"], node["name"]) and node["id"] not in done for node in run["_nodes"]
            ):
                raise ValueError(f"run {run['id']} has no unfinished node {failed_node!r} that could fail")
        self._transition(run, status, failure_reason, failed_node)

    @_locked
    def set_environment_oauth(self, environment_id: str, enabled: bool) -> None:
        """Whether the environment uses Snowflake OAuth: then startRun and rerun need no
        ``userCredentials`` (generated: only the Production environment does)."""
        self._environment(environment_id)["oauthEnabled"] = bool(enabled)

    @_locked
    def add_runs(self, count: int, environment_id: str | None = None, status: str = "completed") -> list[int]:
        """Append ``count`` refresh runs (round-robin over environments unless one is given)."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        if environment_id is not None:
            env_ids = [self._environment(environment_id)["id"]]
        else:
            env_ids = list(self.environments)
        if not env_ids:
            raise KeyError("no environments to add runs to")
        created = []
        for _ in range(count):
            run_id = self._last_run_id + 1  # the id _create_run will assign
            env_id = env_ids[run_id % len(env_ids)]
            nodes = self._sample_nodes(self._run_rng(run_id, "sample"), env_id)
            details = {"refreshDescription": f"Scheduled refresh of {self.environments[env_id]['name']}"}
            run = self._create_run(
                env_id, "refresh", self.now(), nodes, details=details, user_id=self._api_user_id()
            )
            self._transition(run, status)
            created.append(run["id"])
        return created

    @_locked
    def deploy(
        self,
        environment_id: str,
        *,
        add: int = 0,
        remove: Iterable[str] = (),
        status: str = "completed",
        message: str = "Deploy from the simulator",
    ) -> tuple[int, list[str]]:
        """A deploy run in ``environment_id`` that removes the nodes ``remove`` (ids) and adds ``add``
        new ones, left in ``status``; returns the run id and the added node ids.

        Nodes change only through deploys in Coalesce, so tests change them this way. The change is
        visible as soon as the run exists: a deploy left ``running`` plays one in progress whose
        changes have started to land."""
        env = self._environment(environment_id)
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        removed = list(remove)
        for node_id in removed:
            self._node(env["id"], node_id)  # every one exists, or nothing changes
        for node_id in removed:
            self.delete_node(env["id"], node_id)
        added = [self.add_node(env["id"]) for _ in range(add)]
        details = {"deployCommit": new_hex(self._rng, 40), "deployCommitMessage": message}
        nodes = [run_node_snapshot(node) for node in self.nodes[env["id"]].values()]
        run = self._create_run(
            env["id"], "deploy", self.now(), nodes, details=details, user_id=self._api_user_id()
        )
        self._transition(run, status)
        return int(run["id"]), added

    # ---------------------------------------------------------------------------------------
    # demo driving

    @_locked
    def schedule_run(
        self, run_id: int, duration_seconds: float, outcome: str | None = None, start: datetime | None = None
    ) -> None:
        """Have advance_all() drive ``run_id`` to ``outcome`` over ``duration_seconds`` of real time."""
        run = self._run(run_id)
        if outcome is None:
            unlucky = random.Random(f"{self.config.seed}/demo/{run['id']}").random() < _DEMO_FAILURE_RATE
            outcome = "failed" if unlucky else "completed"
        if outcome not in TERMINAL_STATUSES:
            raise ValueError(f"outcome must be terminal, got {outcome!r}")
        self._schedules[run["id"]] = _Schedule(start or datetime.now(UTC), float(duration_seconds), outcome)

    @_locked
    def advance_all(self, now: datetime | None = None) -> list[int]:
        """Apply due transitions of scheduled runs; returns the ids that changed.

        A scheduled run waits for the first fifth of its duration, then runs, then ends.
        """
        now = now or datetime.now(UTC)
        changed = []
        for run_id, plan in list(self._schedules.items()):
            run = self.runs.get(run_id)
            if run is None or run["runStatus"] in TERMINAL_STATUSES:
                self._schedules.pop(run_id, None)  # finished or canceled by someone else
                continue
            elapsed = (now - plan.created).total_seconds()
            if elapsed >= plan.duration:
                self._transition(run, plan.outcome)
                changed.append(run_id)
            elif elapsed >= plan.duration / 5 and run["runStatus"] == "waitingToRun":
                self._transition(run, "running")
                changed.append(run_id)
        return changed

    # ---------------------------------------------------------------------------------------
    # node and environment mutations (schema/lineage drift for tests)

    @_locked
    def add_node(self, environment_id: str) -> str:
        env = self._environment(environment_id)
        existing = list(self.nodes[env["id"]].values())
        node = make_node(self._rng, env, existing, {n["name"] for n in existing}, as_source=not existing)
        self.nodes[env["id"]][node["id"]] = node
        return str(node["id"])

    @_locked
    def rename_node(self, environment_id: str, node_id: str, new_name: str) -> None:
        """Rename a node and rewrite references to it, as Coalesce does for refs."""
        node = self._node(environment_id, node_id)
        siblings = self.nodes[str(environment_id)].values()
        if any(other["name"] == new_name and other is not node for other in siblings):
            raise ValueError(f"a node named {new_name!r} already exists in environment {environment_id}")
        old, location = node["name"], node["locationName"]
        node["name"] = new_name
        for other in siblings:
            for mapping in other["metadata"]["sourceMapping"]:
                if other is node and mapping["name"] == old:
                    mapping["name"] = new_name
                for dependency in mapping["dependencies"]:
                    if dependency["nodeName"] == old and dependency["locationName"] == location:
                        dependency["nodeName"] = new_name
                join = mapping["join"]
                join["joinCondition"] = (
                    join["joinCondition"]
                    .replace(f"ref('{location}', '{old}')", f"ref('{location}', '{new_name}')")
                    .replace(f'"{old}"', f'"{new_name}"')
                )
            if other is not node:
                for column in other["metadata"]["columns"]:
                    column["transform"] = column["transform"].replace(f'"{old}".', f'"{new_name}".')
                    for source in column["sources"]:
                        source["transform"] = source["transform"].replace(f'"{old}".', f'"{new_name}".')

    @_locked
    def delete_node(self, environment_id: str, node_id: str) -> None:
        """Remove a node and the lineage references other nodes held to it."""
        node = self._node(environment_id, node_id)
        del self.nodes[str(environment_id)][node_id]
        for other in self.nodes[str(environment_id)].values():
            for column in other["metadata"]["columns"]:
                kept_sources = []
                for source in column["sources"]:
                    refs = [ref for ref in source["columnReferences"] if ref["nodeID"] != node_id]
                    if refs or not source["columnReferences"]:
                        kept_sources.append({**source, "columnReferences": refs})
                column["sources"] = kept_sources
            for mapping in other["metadata"]["sourceMapping"]:
                mapping["dependencies"] = [
                    dep
                    for dep in mapping["dependencies"]
                    if (dep["locationName"], dep["nodeName"]) != (node["locationName"], node["name"])
                ]
                mapping["aliases"] = {k: v for k, v in mapping["aliases"].items() if v != node_id}

    @_locked
    def delete_environment(self, environment_id: str) -> None:
        """Remove an environment and its nodes; its runs stay in the history."""
        env = self._environment(environment_id)
        del self.environments[env["id"]]
        del self.nodes[env["id"]]
        project = self.projects.get(env["project"])
        if project is not None and env["id"] in project["environments"]:
            project["environments"].remove(env["id"])

    @_locked
    def delete_run(self, run_id: int) -> None:
        """Make a run unknown to the API (every view of it answers 404), as a client sees a run
        that disappeared between two of its requests. Ids are not reused."""
        run = self._run(run_id)
        del self.runs[run["id"]]
        del self.results[run["id"]]
        self._schedules.pop(run["id"], None)
        env_runs = self._runs_by_env.get(str(run["environmentID"]), [])
        env_runs[:] = [other for other in env_runs if other is not run]

    # ---------------------------------------------------------------------------------------
    # snapshots

    @_locked
    def sizes(self) -> dict[str, int]:
        """Row counts of what a complete load of this organisation brings in, per table.

        Counted without rebuilding any historical results (a historical run has one result per
        node it executed).
        """
        results = 0
        for run_id, run in self.runs.items():
            if self.results.is_lazy(run_id):
                results += len(run["_nodes"])
            elif run_id in self.results:
                results += len(self.results[run_id])
        return {
            "environments": len(self.environments),
            "environment": len(self.environments),
            "environment_nodes": sum(len(nodes) for nodes in self.nodes.values()),
            "runs": len(self.runs),
            "run_results": results,
            "run_status": len(self.runs),
            "projects": len(self.projects),
            "users": len(self.users),
            "jobs": sum(len(self.projects[env["project"]]["jobs"]) for env in self.environments.values()),
        }

    @_locked
    def snapshot(self) -> dict[str, Any]:
        """Deep, JSON-ready copy of everything (handy for determinism checks and debugging)."""

        def public_runs(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: v for k, v in run.items() if not k.startswith("_")} for run in runs]

        return copy.deepcopy(
            {
                "environments": self.environments,
                "nodes": self.nodes,
                "runs": public_runs(self.runs.values()),
                "results": {str(k): v for k, v in self.results.items()},
                "users": self.users,
                "projects": self.projects,
            }
        )
