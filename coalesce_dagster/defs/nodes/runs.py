"""Build node assets from Dagster: one Coalesce run for the selected nodes, followed to the end.

Materializing a selection of an environment's node assets starts one `POST /scheduler/startRun`
whose `includeNodesSelector` names exactly those nodes (or, with `job_id` in the run config, that
saved job). The run is polled with backoff; each node is reported as it lands: a materialization
with its run figures when Coalesce built it, a passed or failed `coalesce_run` check. Failed nodes
can be rerun (`/scheduler/rerun`) up to `reruns` times; if any still failed, the step fails naming
them and quoting Coalesce's error. Terminating the Dagster run cancels the Coalesce run
(`cancel_on_termination`), so no Coalesce run is left orphaned. At the end the run tables (`runs`,
`run_results`, `run_status`) are loaded for the runs started, in the same Dagster run.

The Dagster run is tagged `coalesce/started_run/<id>` for each Coalesce run it started, so the
run-status sensor, which sees those runs finish too, does not report their nodes a second time.
"""

import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial

import dagster as dg
from dagster._utils.interrupts import capture_interrupts, pop_captured_interrupt
from pydantic import Field

from ...coalesce.errors import explain, is_transient
from ...coalesce.nodes import CoalesceNode, EnvironmentNodes
from ...coalesce.run_control import CoalesceRunControl, node_selector
from ...coalesce.run_report import NodeOutcome, RunReport
from ...coalesce.types import is_terminal
from ...pipeline import (
    in_process_normalize,
    loading_pipeline,
    preferred_file_format,
    private_working_dir,
)
from ...progress import LoadProgress
from ..resources import CoalesceConfigurationError, CoalesceResource
from ..translator import asset_key
from .checks import coalesce_test_results, node_test_checks
from .events import node_metadata
from .translator import RUN_CHECK_NAME

STARTED_RUN_TAG_PREFIX = "coalesce/started_run/"
# How long after starting a run its status may still be unknown (404) before that means it is gone:
# clients of real accounts wait 10 s after startRun before they first ask (docs/coalesce-api.md §10).
NOT_YET_KNOWN_SECONDS = 60.0
RUN_TABLES = ("runs", "run_results", "run_status")

NodeResult = dg.MaterializeResult | dg.AssetCheckResult


class CoalesceNodeRunConfig(dg.Config):
    """How Dagster runs the selected nodes in Coalesce."""

    job_id: str | None = Field(
        default=None,
        description="Run this saved Coalesce job instead of exactly the selected nodes; only what "
        "the job built is reported.",
    )
    parallelism: int | None = Field(default=None, ge=1, description="Coalesce's parallelism for the run.")
    parameters: dict[str, str] = Field(default_factory=dict, description="Coalesce runtime parameters.")
    reruns: int = Field(
        default=0, ge=0, description="Rerun failed nodes up to this many times before failing."
    )
    cancel_on_termination: bool = Field(
        default=True, description="Cancel the Coalesce run when this Dagster run is terminated."
    )
    poll_interval_seconds: float = Field(default=5.0, gt=0, description="First wait between status polls.")
    max_poll_interval_seconds: float = Field(default=30.0, gt=0, description="Longest wait between polls.")
    timeout_seconds: float | None = Field(
        default=None, gt=0, description="Give up (and cancel) after this long; default: wait for Coalesce."
    )


def started_by_dagster(instance: dg.DagsterInstance, coalesce_run_id: int) -> bool:
    """Whether a Dagster run of this code location started that Coalesce run (and reported it)."""
    tag = {f"{STARTED_RUN_TAG_PREFIX}{coalesce_run_id}": "true"}
    return bool(instance.get_run_records(filters=dg.RunsFilter(tags=tag), limit=1))


def run_selected_nodes(
    context: dg.AssetExecutionContext,
    coalesce: CoalesceResource,
    config: CoalesceNodeRunConfig,
    environment: EnvironmentNodes,
    keys: Mapping[str, dg.AssetKey],
    account: str | None,
) -> Iterator[NodeResult]:
    """The body of an environment's node multi-asset (module docstring). `keys`: node id -> key;
    `account`: the canonical base URL the node snapshot was made for."""
    _refuse_another_account(coalesce, environment, account)
    control = coalesce.run_control()
    _refuse_an_environment_changed_since_the_snapshot(control, environment)
    nodes = {node.id: node for node in environment.nodes if node.id in keys}
    selected = {node_id for node_id, key in keys.items() if key in context.selected_asset_keys}
    credentials = coalesce.credentials()
    if config.job_id:
        selector = None
    else:
        selector = node_selector(sorted((nodes[i].location_name, nodes[i].name) for i in selected))
    follower = _RunFollower(context, control, config, environment, nodes, keys, selected, coalesce.org_id)
    try:
        run_id = follower.start(
            lambda: control.start_run(
                environment.id,
                include_nodes_selector=selector,
                job_id=config.job_id,
                parallelism=config.parallelism,
                parameters=config.parameters or None,
                credentials=credentials,
            )
        )
        for attempt in range(config.reruns + 1):
            yield from follower.follow(run_id)
            if not follower.failed or follower.status == "canceled" or attempt == config.reruns:
                break
            run_id = follower.start(
                partial(control.rerun, run_id, credentials=credentials, parameters=config.parameters or None)
            )
            context.log.info(f"Rerunning the failed nodes as Coalesce run {run_id} (rerun {attempt + 1}).")
    except dg.DagsterExecutionInterruptedError:
        follower.cancel("the Dagster run was terminated")
        raise
    except (dg.Failure, CoalesceConfigurationError):
        raise
    except Exception as error:  # Coalesce unreachable or refusing: one actionable sentence
        explanation = explain(error)
        if explanation is None:
            raise
        still = f" Coalesce run {follower.run_ids[-1]} may still be running." if follower.running else ""
        # Not retried while a run it started may still be going: a retry would start a second one.
        retry = is_transient(error) and not follower.running
        raise dg.Failure(description=explanation + still, allow_retries=retry) from error
    finally:
        _load_run_tables(context, coalesce, follower.run_ids)
    yield from follower.final_checks()
    follower.raise_if_failed()


def _refuse_an_environment_changed_since_the_snapshot(
    control: CoalesceRunControl, environment: EnvironmentNodes
) -> None:
    """Ask Coalesce for the environment by the snapshot's id just before starting work there, and
    start nothing unless it still has the snapshot's name: a rename, or another organisation's token
    on the same host (where ids are small numbers that other accounts use too), would otherwise send
    the run to an environment nobody chose."""
    refresh = (
        "Refresh the node snapshot (`dg utils refresh-defs-state` or the coalesce_environments_job) and "
        "reload the code location."
    )
    current = control.environment(environment.id)
    if current is None:
        raise dg.Failure(
            description=f"Coalesce does not know environment {environment.name!r} (id {environment.id}) any "
            f"more; no run was started. {refresh}",
            allow_retries=False,
        )
    name = current.get("name")
    if isinstance(name, str) and name != environment.name:
        raise dg.Failure(
            description=f"Coalesce environment {environment.id} is named {name!r} now, but the node assets "
            f"were defined for {environment.name!r}; no run was started. {refresh}",
            allow_retries=False,
        )


def _refuse_another_account(
    coalesce: CoalesceResource, environment: EnvironmentNodes, account: str | None
) -> None:
    """Environment ids mean something only in the account they came from: never start a run with
    one in another account (the configuration changed since the code location loaded)."""
    configured = coalesce.resolved_base_url()
    if account == configured:
        return
    made_for = f"the Coalesce account at {account}" if account else "an unknown Coalesce account"
    raise dg.Failure(
        description=f"The node assets of environment {environment.name!r} were defined from a node "
        f"snapshot of {made_for}, but Coalesce is now configured at {configured}; no run was started. "
        "Refresh the snapshot (`dg utils refresh-defs-state` or the coalesce_environments_job) and "
        "reload the code location.",
        allow_retries=False,
    )


class _RunFollower:
    """Follows Coalesce runs of one selection, reporting each node once."""

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        control: CoalesceRunControl,
        config: CoalesceNodeRunConfig,
        environment: EnvironmentNodes,
        nodes: Mapping[str, CoalesceNode],
        keys: Mapping[str, dg.AssetKey],
        selected: set[str],
        org_id: str | None,
    ) -> None:
        self.context, self.control, self.config, self.org_id = context, control, config, org_id
        self.environment, self.nodes, self.keys, self.selected = environment, nodes, keys, selected
        self.run_ids: list[int] = []
        self.status: str | None = None
        self.link: str | None = None
        self.built: set[str] = set()
        self.failed: dict[str, NodeOutcome] = {}
        self._finished = True
        self._deadline = time.monotonic() + config.timeout_seconds if config.timeout_seconds else None
        self._started_at = time.monotonic()

    def start(self, start: Callable[[], int]) -> int:
        """Start a run (startRun or rerun) and record it. A termination that arrives meanwhile waits
        until the run's id is known, so the run it started can be canceled, never orphaned."""
        with capture_interrupts():
            run_id = start()
            self._started(run_id)
            interrupted = pop_captured_interrupt()
        if interrupted:
            raise dg.DagsterExecutionInterruptedError()
        return run_id

    def _started(self, run_id: int) -> None:
        self._started_at = time.monotonic()
        self.run_ids.append(run_id)
        self._finished = False
        self.status, self.link = None, None
        self.context.instance.add_run_tags(self.context.run_id, {f"{STARTED_RUN_TAG_PREFIX}{run_id}": "true"})
        what = f"job {self.config.job_id}" if self.config.job_id else f"{len(self.selected)} node(s)"
        self.context.log.info(
            f"Started Coalesce run {run_id} in environment {self.environment.name!r}: {what}."
        )

    def follow(self, run_id: int) -> Iterator[NodeResult]:
        """Poll until the run ends, reporting nodes as they finish."""
        wait = self.config.poll_interval_seconds
        known = False
        while True:
            answer = self.control.run_status(run_id)
            if answer is None:
                self._unknown(run_id, known)  # raises unless the run has only just started
            else:
                known = True
                self.status, self.link = answer.status, answer.link or self.link
                finished = is_terminal(answer.status)
                yield from self._report(run_id, self.control.node_outcomes(run_id))
                if finished:
                    self._finished = True
                    self.context.log.info(
                        f"Coalesce run {run_id} {answer.status}" + (f": {self.link}" if self.link else ".")
                    )
                    return
            if self._deadline is not None and time.monotonic() >= self._deadline:
                self.cancel(f"it ran longer than {self.config.timeout_seconds:g} s")
                raise dg.Failure(
                    f"Coalesce run {run_id} did not finish within {self.config.timeout_seconds:g} s; canceled.",
                    allow_retries=False,
                )
            time.sleep(wait)
            wait = min(wait * 2, self.config.max_poll_interval_seconds)

    def _unknown(self, run_id: int, known: bool) -> None:
        """Coalesce answered 404 for the run: fail, unless it has only just been started and the
        scheduler may not know it yet (then it is asked again)."""
        if known:
            raise dg.Failure(f"Coalesce no longer knows run {run_id} (404).", allow_retries=False)
        waited = time.monotonic() - self._started_at
        if waited >= NOT_YET_KNOWN_SECONDS:
            raise dg.Failure(
                f"Coalesce does not know run {run_id} (404) {waited:.0f} s after starting it.",
                allow_retries=False,
            )
        self.context.log.debug(f"Coalesce does not know run {run_id} yet (404); asking again.")

    def _report(self, run_id: int, outcomes: tuple[NodeOutcome, ...]) -> Iterator[NodeResult]:
        report = RunReport(
            run_id=run_id,
            status=self.status,
            run_type="refresh",
            environment_id=self.environment.id,
            job_id=self.config.job_id,
            link=self.link,
            outcomes=outcomes,
        )
        for outcome in outcomes:
            key = self.keys.get(outcome.node_id)
            if key is None or outcome.node_id in self.built or not outcome.completed:
                if key is not None and outcome.failed and not outcome.is_running:
                    self.failed[outcome.node_id] = outcome
                continue
            self.built.add(outcome.node_id)
            self.failed.pop(outcome.node_id, None)
            metadata = node_metadata(report, outcome)
            if outcome.node_id in self.selected:
                yield dg.MaterializeResult(asset_key=key, metadata=metadata)
                if self._check_selected(key):
                    yield dg.AssetCheckResult(
                        asset_key=key, check_name=RUN_CHECK_NAME, passed=True, metadata=metadata
                    )
                yield from self._test_results(run_id, key, outcome)
            else:  # built by a job beyond the selection: reported all the same
                self.context.log_event(dg.AssetMaterialization(asset_key=key, metadata=metadata))

    @property
    def running(self) -> bool:
        """Whether a run this follower started may still be going."""
        return bool(self.run_ids) and not self._finished

    def _check_selected(self, key: dg.AssetKey, name: str = RUN_CHECK_NAME) -> bool:
        return dg.AssetCheckKey(key, name) in self.context.selected_asset_check_keys

    def _test_results(self, run_id: int, key: dg.AssetKey, outcome: NodeOutcome) -> Iterator[NodeResult]:
        """The node's Coalesce tests this result reports, each once (a node reported here is final)."""
        checks = node_test_checks(self.nodes[outcome.node_id])
        for result in coalesce_test_results(run_id, outcome, checks):
            if self._check_selected(key, result.check_name):
                yield result.as_result(key)

    def final_checks(self) -> Iterator[NodeResult]:
        for node_id, outcome in self.failed.items():
            key = self.keys[node_id]
            if node_id in self.selected and self._check_selected(key):
                yield dg.AssetCheckResult(
                    asset_key=key,
                    check_name=RUN_CHECK_NAME,
                    passed=False,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={
                        "coalesce/run_id": dg.MetadataValue.int(self.run_ids[-1]),
                        "coalesce/node_state": dg.MetadataValue.text(outcome.state),
                        "coalesce/error": dg.MetadataValue.text(outcome.error or ""),
                    },
                    description=f"Coalesce run {self.run_ids[-1]}: {_first_line(outcome.error)}",
                )
            if node_id in self.selected:
                yield from self._test_results(self.run_ids[-1], key, outcome)

    def raise_if_failed(self) -> None:
        if not self.failed and self.status == "completed":
            return
        names = [
            f"{self.nodes[i].location_name}.{self.nodes[i].name}: {_first_line(o.error)}"
            for i, o in self.failed.items()
        ]
        run = self.run_ids[-1]
        detail = "; ".join(names) if names else "no node reported an error"
        raise dg.Failure(
            description=f"Coalesce run {run} {self.status or 'ended'}. Failed node(s): {detail}",
            metadata={"coalesce/run_ids": dg.MetadataValue.json(self.run_ids)}
            | ({"coalesce/run_link": dg.MetadataValue.url(self.link)} if self.link else {}),
            allow_retries=False,
        )

    def cancel(self, why: str) -> None:
        if self._finished or not self.run_ids:
            return
        run_id = self.run_ids[-1]
        if not self.config.cancel_on_termination:
            self.context.log.warning(
                f"Coalesce run {run_id} keeps running ({why}; cancel_on_termination is off)."
            )
            return
        self.control.cancel_run(run_id, self.environment.id, self.org_id)
        self._finished = True
        self.context.log.warning(f"Canceled Coalesce run {run_id}: {why}.")


def _first_line(error: str | None) -> str:
    return (error or "no error text given").splitlines()[0][:300]


def _load_run_tables(
    context: dg.AssetExecutionContext, coalesce: CoalesceResource, run_ids: list[int]
) -> None:
    """Load the runs started into `runs`, `run_results` and `run_status`, as the sensor's loads do.

    Best effort: a failure is logged, and the run-status sensor loads these runs when it sees them
    finish (the rows are merged on their keys, so loading twice never duplicates them)."""
    if not run_ids:
        return
    with private_working_dir(f"nodes-{context.run_id[:8]}-") as working_dir:
        try:
            source = coalesce.build_source(run_ids=run_ids).with_resources(*RUN_TABLES)
            with in_process_normalize(), loading_pipeline(working_dir, LoadProgress(context.log)) as pipeline:
                file_format = preferred_file_format(pipeline)
                if file_format is None:
                    pipeline.run(source)
                else:
                    pipeline.run(source, loader_file_format=file_format)
            for table in RUN_TABLES:
                context.log_event(
                    dg.AssetMaterialization(
                        asset_key=asset_key(table),
                        metadata={"coalesce/run_ids": dg.MetadataValue.json(run_ids)},
                    )
                )
        except Exception as error:  # never hide the Coalesce outcome behind a bookkeeping failure
            context.log.warning(
                f"Could not load Coalesce run(s) {run_ids} into the run tables ({type(error).__name__}: "
                f"{error}); the run-status sensor loads them when it sees them finish."
            )
