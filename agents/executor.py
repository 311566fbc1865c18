"""Executes one agent run: every node as soon as the nodes it depends on are done, so independent branches
run at the same time (one task per node, gathered), each node's input, output, status and timing saved.

A node that fails fails the run; nodes downstream of it are skipped, other branches finish. A cancel is heard
at once (core.broadcast) and stops the nodes in flight; a heartbeat keeps the run alive for the reaper, and
also notices when the run stopped running elsewhere (the reaper, or a cancel that was not heard). Nothing
here touches a socket; the run's end goes to its chat session as a report (agents.reports).

Node states are saved in groups (`NodeWrites`): what the nodes do within NODE_WRITE_GROUP_SECONDS goes in one
transaction, and what is left when the run ends goes in the run's last one. A commit costs far more than a
statement, so a run of quick nodes costs a handful of commits, not two per node; a slow node still shows as
running a moment after it starts. Times are taken around each block, not when its write gets its turn.

Blocks run through `agents.blocks.run_block`, as the copilot's tool runs them: every output is at most
BLOCK_MAX_OUTPUT_BYTES as JSON. What a node's links bring it is held to the same bound (`check_linked_size`), so a
node's input is at most its own and the run's (each bounded with the graph) plus one output's worth.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from channels.db import database_sync_to_async
from django.utils import timezone

from agents import actions
from agents.blocks import BlockError, json_size, max_output_bytes, run_block, too_large
from agents.graphs import Graph, GraphError, Link, Node, check_block_input, check_graph, resolve_input
from agents.models import NodeStatus, RunStatus
from agents.selectors import run_is_running
from agents.tasks import RUN_CANCELLED
from core import broadcast
from core.conf import copilot_setting
from core.process import PROCESS_NAME

logger = logging.getLogger(__name__)

WORKER_STOPPED = "the worker stopped during this run"
MAX_ERRORS_SHOWN = 3
NODE_WRITE_GROUP_SECONDS = 0.05
# The runs this process is executing: its reaper leaves them alone, whatever their heartbeat says.
running_here: set[uuid.UUID] = set()

start_run = database_sync_to_async(actions.do_start_run)
touch_run = database_sync_to_async(actions.do_touch_run)
record_nodes = database_sync_to_async(actions.do_record_nodes)
finish_run = database_sync_to_async(actions.do_finish_run)


def storable(value: Any) -> Any:
    """A block's output as it can be saved: NUL characters (a fetched binary page) become U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    return value


def check_linked_size(links: list[Link], outputs: dict[str, dict[str, Any]]) -> None:
    """Refuse, before they are copied into an input, linked values that add up to more than one output may be."""
    limit, total = max_output_bytes(), 0
    for counted, link in enumerate(links, start=1):
        total += json_size(outputs.get(link.source, {}).get(link.output))
        if total > limit:  # stop counting: the rest would only cost time
            raise too_large("what its links bring", total, at_least=counted < len(links))


def heartbeat_seconds() -> float:
    return min(copilot_setting("RUN_HEARTBEAT_SECONDS"), copilot_setting("STALE_RUN_SECONDS") / 4)


class NodeWrites:
    """A run's node updates, saved in groups: one transaction for what arrives within NODE_WRITE_GROUP_SECONDS."""

    def __init__(self, run_id: uuid.UUID) -> None:
        self.run_id = run_id
        self.pending: actions.NodeUpdates = {}
        self._timer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one group at a time, in order

    def add(self, node_id: str, **fields: Any) -> None:
        self.pending.setdefault(node_id, {}).update(fields)  # a start and an end in one group: one UPDATE
        if self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._write_soon(), name=f"run={self.run_id} node writes")

    async def _write_soon(self) -> None:
        await asyncio.sleep(NODE_WRITE_GROUP_SECONDS)
        await asyncio.shield(self._write())  # once started, a group is written even if the run is cancelled

    async def _write(self) -> None:
        async with self._lock:
            group, self.pending = self.pending, {}
            if not group:
                return
            try:
                await record_nodes(run_id=self.run_id, updates=group)
            except Exception:
                logger.exception("run=%s saving node states failed; they go with the run's end", self.run_id)
                for node_id, fields in group.items():  # older first, newer over them
                    self.pending[node_id] = {**fields, **self.pending.get(node_id, {})}

    async def close(self) -> actions.NodeUpdates:
        """Stop writing; returns what is left to write (it goes in the run's last transaction)."""
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
        async with self._lock:  # a group being written is written first
            group, self.pending = self.pending, {}
        return group


class RunExecution:
    def __init__(self, plan: actions.RunPlan, graph: Graph) -> None:
        self.plan = plan
        self.graph = graph
        self.node_writes = NodeWrites(plan.run_id)
        self.outputs: dict[str, dict[str, Any]] = {}
        self.statuses: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.done = {node.id: asyncio.Event() for node in graph.nodes}
        self.node_tasks: list[asyncio.Task[None]] = []

    @property
    def log_prefix(self) -> str:
        return f"run={self.plan.run_id}"

    async def run_nodes(self) -> None:
        self.node_tasks = [asyncio.create_task(self._run_node(node), name=f"{self.log_prefix} node {node.id}")
                           for node in self.graph.nodes]
        # return_exceptions: a node cancelled by the heartbeat ends its own task, not this gather.
        await asyncio.gather(*self.node_tasks, return_exceptions=True)

    def outcome(self) -> tuple[str, str]:
        failed = [node for node in self.graph.nodes if self.statuses.get(node.id) == NodeStatus.FAILED]
        if not failed:
            return RunStatus.COMPLETED, ""
        shown = "; ".join(f"node {node.id!r} ({node.block.name}) failed: {self.errors[node.id]}"
                          for node in failed[:MAX_ERRORS_SHOWN])
        more = f"; and {len(failed) - MAX_ERRORS_SHOWN} more" if len(failed) > MAX_ERRORS_SHOWN else ""
        return RunStatus.FAILED, shown + more

    def run_outputs(self) -> dict[str, Any]:
        return {node_id: self.outputs[node_id] for node_id in self.graph.sinks() if node_id in self.outputs}

    async def _run_node(self, node: Node) -> None:
        try:
            upstream = self.graph.upstream(node.id)
            for name in upstream:
                await self.done[name].wait()
            blocked = [name for name in upstream if self.statuses.get(name) != NodeStatus.COMPLETED]
            if blocked:
                self._end(node, NodeStatus.SKIPPED, error=f"not run: upstream node {blocked[0]!r} did not complete")
                return
            block_input = None
            try:
                check_linked_size(self.graph.incoming(node.id), self.outputs)
                block_input = resolve_input(node, self.plan.inputs.get(node.id, {}), self.graph.incoming(node.id),
                                            self.outputs)
                check_block_input(node.block, block_input)
            except BlockError as exc:
                # The input is saved to show what the block would have been given; the block never ran.
                self._end(node, NodeStatus.FAILED, error=f"bad input, not run: {exc}", input=block_input)
                return
            started_at = timezone.now()
            self.node_writes.add(node.id, status=NodeStatus.RUNNING, input=block_input, started_at=started_at)
            try:
                # run_block refuses an output that is not JSON or is too large, here rather than in the database.
                output = storable(await run_block(node.block.name, block_input))
            except BlockError as exc:
                self._end(node, NodeStatus.FAILED, error=str(exc))
            except Exception as exc:
                logger.exception("%s node %s (%s) raised", self.log_prefix, node.id, node.block.name)
                self._end(node, NodeStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
            else:
                self.outputs[node.id] = output
                self._end(node, NodeStatus.COMPLETED, output=output)
        finally:
            self.done[node.id].set()

    def _end(self, node: Node, status: str, *, output: Any = None, error: str = "", **fields: Any) -> None:
        self.statuses[node.id] = status
        self.errors[node.id] = error
        self.node_writes.add(node.id, status=status, output=output, error=error, finished_at=timezone.now(), **fields)

    async def keep_heartbeat(self) -> None:
        """Beat until cancelled; when the run is no longer running (cancelled, reaped), stop its nodes."""
        while True:
            await asyncio.sleep(heartbeat_seconds())
            try:
                alive = await touch_run(run_id=self.plan.run_id)
            except Exception:
                logger.exception("%s heartbeat failed; trying again", self.log_prefix)
                continue
            if not alive:
                self.stop_nodes("stopped running elsewhere (cancelled or reaped)")
                return

    async def stop_when_cancelled(self) -> None:
        """Stop the nodes as soon as the run is cancelled (a run cancelled before this listened is seen at once)."""
        async with broadcast.listen(RUN_CANCELLED) as inbox:
            if not await run_is_running(self.plan.run_id):
                self.stop_nodes("was cancelled")
                return
            while True:
                _, message = await inbox.get()
                if message.get("run_id") == str(self.plan.run_id):
                    self.stop_nodes("was cancelled")
                    return

    def stop_nodes(self, why: str) -> None:
        logger.info("%s %s: stopping its nodes", self.log_prefix, why)
        for task in self.node_tasks:
            task.cancel()


async def end_run(run_id: uuid.UUID, status: str, error: str, outputs: dict[str, Any] | None,
                  node_writes: NodeWrites | None = None) -> str | None:
    """Save the run's end (with its nodes' last updates) and append its report; None when it had ended already."""
    node_updates = await node_writes.close() if node_writes is not None else {}
    ended = await finish_run(run_id=run_id, status=status, error=error, outputs=outputs, node_updates=node_updates)
    if ended:
        logger.info("run=%s ended %s%s", run_id, status, f": {error}" if error else "")
    return status if ended else None


async def execute_run(run_id: uuid.UUID) -> str | None:
    """Run a queued run to its end. Returns the status it ended with, or None when it was not this call's to end.

    Cancelled itself (the worker is stopping), it ends the run failed, then lets the cancellation through.
    """
    plan = await start_run(run_id=run_id, process=PROCESS_NAME)
    if plan is None:
        logger.info("run=%s is not queued (cancelled before it started): nothing to do", run_id)
        return None
    try:
        graph = check_graph(plan.graph)
    except GraphError as exc:  # saved valid, but a block it uses has changed or gone since
        return await end_run(run_id, RunStatus.FAILED, f"the agent's graph no longer checks: {exc.message}", {})
    execution = RunExecution(plan, graph)
    watchers = [asyncio.create_task(execution.keep_heartbeat(), name=f"run={run_id} heartbeat"),
                asyncio.create_task(execution.stop_when_cancelled(), name=f"run={run_id} cancel listener")]
    running_here.add(run_id)
    try:
        try:
            await execution.run_nodes()
        except asyncio.CancelledError:
            await asyncio.shield(end_run(run_id, RunStatus.FAILED, WORKER_STOPPED, execution.run_outputs(),
                                         execution.node_writes))
            raise
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
        status, error = execution.outcome()
        return await end_run(run_id, status, error, execution.run_outputs(), execution.node_writes)
    finally:
        running_here.discard(run_id)
