"""`KafkaCluster`: a replicated Odradek cluster of N broker processes, for tests.

Each node is a `ProcessBroker` (`odradek serve` plus the control endpoint, forked from the fork
server) on 127.0.0.1 and a port chosen before any node starts, since every node must know every
voter's address: node ids 1..N, all of them `broker,controller` voters of the metadata quorum
unless `controllers=` names fewer (the others are broker-only observers). One cluster id; the
same settings for every node (`overrides`), then each node's own (`node_overrides[id]`).

Settings for tests, besides the plugin's (`broker.TEST_DEFAULTS`): elections and fencing in
about a second rather than ten (`CLUSTER_TEST_SETTINGS`), replication factor min(N, 3) for new
and internal topics, `min.insync.replicas` 2 when that factor is 2 or more.

`start()` starts every process at once and returns when every node lists every broker. The
questions tests ask (`leader_of`, `isr_of`, `active_controller`, `wait_healthy`, ...) are asked
of one node over a plain socket (`cluster_metadata.py`): the partition questions of the active
controller, whose metadata is the newest. `close()` kills (SIGKILL) every process it started,
by pid, paused ones included, and waits for each.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from odradek.testing.broker import BrokerError, ProcessBroker
from odradek.testing.cluster_metadata import (
    MetadataView,
    NodeUnreachable,
    PartitionState,
    metadata_of,
    quorum_leader,
)

DEFAULT_NODES = 3
MAX_VOTERS = 3
WAIT_TIMEOUT_S = 30.0
_POLL_S = 0.05

# Kafka's defaults are tuned for production (election timeout 1 s, broker session 9 s,
# heartbeat every 2 s); a test waits for each of them, so they are a few hundred ms here.
CLUSTER_TEST_SETTINGS: dict[str, object] = {
    "controller.quorum.election.timeout.ms": 500,
    "controller.quorum.fetch.timeout.ms": 1000,
    "broker.session.timeout.ms": 2000,
    "broker.heartbeat.interval.ms": 200,
}

T = TypeVar("T")


class ClusterBroker(ProcessBroker):
    """One node of a `KafkaCluster`: a `ProcessBroker` on a fixed port, with its node id and
    roles, that remembers whether it is paused (a paused node is not asked anything)."""

    def __init__(
        self,
        node_id: int,
        roles: str,
        data_dir: Path,
        overrides: Mapping[str, object],
        *,
        port: int,
        start_method: str | None = None,
    ) -> None:
        super().__init__(data_dir, overrides, start_method=start_method, port=port)
        self.node_id = node_id
        self.roles = roles
        self.paused = False
        self.started_pids: list[int] = []  # every process this node has been, restarts too

    @property
    def is_voter(self) -> bool:
        return "controller" in self.roles.split(",")

    @property
    def answering(self) -> bool:
        """Running and not paused: it can be asked something."""
        return self.running and not self.paused

    def start(self) -> ClusterBroker:
        self.paused = False
        try:
            super().start()
        finally:
            if self.proc is not None and self.proc.pid not in self.started_pids:
                self.started_pids.append(self.proc.pid)
        return self

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets and answers nothing, its heartbeats stop."""
        if self.running:
            super().pause()
            self.paused = True

    def resume(self) -> None:
        super().resume()
        self.paused = False

    def kill(self) -> None:
        super().kill()
        self.paused = False

    def __repr__(self) -> str:
        return f"ClusterBroker(node {self.node_id}, {self.bootstrap_servers}, {self.roles})"


class KafkaCluster:
    """N Odradek broker processes forming one cluster (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        nodes: int = DEFAULT_NODES,
        *,
        controllers: int | Iterable[int] | None = None,
        replication_factor: int | None = None,
        min_insync_replicas: int | None = None,
        overrides: Mapping[str, object] | None = None,
        node_overrides: Mapping[int, Mapping[str, object]] | None = None,
        start_method: str | None = None,
    ) -> None:
        from odradek.cli.cluster_file import new_cluster_id

        if nodes < 1:
            raise ValueError(f"a cluster has at least one node: {nodes}")
        ids = list(range(1, nodes + 1))
        if controllers is None:
            voters = ids[:MAX_VOTERS]
        elif isinstance(controllers, int):
            voters = ids[:controllers]
        else:
            voters = sorted(set(controllers))
        if not voters or not set(voters) <= set(ids):
            raise ValueError(f"controllers must name 1 to {nodes} of the nodes 1..{nodes}")
        self.replication_factor = (
            min(nodes, 3) if replication_factor is None else replication_factor
        )
        if not 1 <= self.replication_factor <= nodes:
            raise ValueError(f"replication_factor must be 1..{nodes}: {self.replication_factor}")
        if min_insync_replicas is None:
            min_insync_replicas = 2 if self.replication_factor >= 2 else 1
        if not 1 <= min_insync_replicas <= self.replication_factor:
            raise ValueError(
                f"min_insync_replicas must be 1..{self.replication_factor}: {min_insync_replicas}"
            )
        self.min_insync_replicas = min_insync_replicas
        self.root = Path(root)
        self.cluster_id = new_cluster_id()
        factor = str(self.replication_factor)
        self._shared: dict[str, object] = {
            **CLUSTER_TEST_SETTINGS,
            "default.replication.factor": factor,
            "offsets.topic.replication.factor": factor,
            "transaction.state.log.replication.factor": factor,
            "min.insync.replicas": str(min_insync_replicas),
            "transaction.state.log.min.isr": str(min_insync_replicas),
            **(overrides or {}),
        }
        self._per_node = {i: dict(o) for i, o in (node_overrides or {}).items()}
        unknown = set(self._per_node) - set(ids)
        if unknown:
            raise ValueError(f"node_overrides names nodes that are not in the cluster: {unknown}")
        self._voters = voters
        self._start_method = start_method
        self._earlier_pids: set[int] = set()  # of a start that was given up (a port taken)
        self.brokers: dict[int, ClusterBroker] = {}
        self.controller_quorum_voters = ""
        self._plan(ids)

    def _plan(self, ids: list[int]) -> None:
        """A broker per node id, on ports free right now (each node is told every voter's)."""
        from odradek.cli.cluster_file import pick_ports

        ports = dict(zip(ids, pick_ports(0, len(ids)), strict=True))
        self.controller_quorum_voters = ",".join(f"{i}@127.0.0.1:{ports[i]}" for i in self._voters)
        self.brokers = {}
        for node_id in ids:
            roles = "broker,controller" if node_id in self._voters else "broker"
            self.brokers[node_id] = ClusterBroker(
                node_id,
                roles,
                self.root / f"node-{node_id}",
                {
                    **self._shared,
                    **self._per_node.get(node_id, {}),
                    "cluster.id": self.cluster_id,
                    "node.id": node_id,
                    "process.roles": roles,
                    "controller.quorum.voters": self.controller_quorum_voters,
                },
                port=ports[node_id],
                start_method=self._start_method,
            )

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout_s: float = WAIT_TIMEOUT_S) -> KafkaCluster:
        """Start every node at once; return when every node lists every broker.

        The ports were free when chosen, but another process may bind one before its node
        does: then the cluster is planned again on other ports, once."""
        for attempt in (1, 2):
            try:
                self._each(lambda broker: broker.start(), self.brokers.values())
            except BrokerError as exc:
                self.close()
                if attempt == 2 or "address already in use" not in str(exc).lower():
                    raise
                self._earlier_pids |= self.pids
                for broker in self.brokers.values():
                    shutil.rmtree(broker.data_dir, ignore_errors=True)
                self._plan(sorted(self.brokers))
                continue
            except BaseException:
                self.close()
                raise
            break
        try:
            self.wait_for_brokers(set(self.brokers), timeout_s)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Kill every process this cluster started (by pid), paused ones too, and wait."""
        self._each(lambda broker: broker.kill(), self.brokers.values())

    def __enter__(self) -> KafkaCluster:
        return self.start() if not any(b.running for b in self.brokers.values()) else self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def pids(self) -> set[int]:
        """Every process id this cluster has started, restarts included."""
        return self._earlier_pids | {pid for b in self.brokers.values() for pid in b.started_pids}

    def _each(
        self, action: Callable[[ClusterBroker], object], brokers: Iterable[ClusterBroker]
    ) -> None:
        """Run `action` on each broker at once; the first failure is raised after all end."""
        chosen = list(brokers)
        if not chosen:
            return
        with ThreadPoolExecutor(len(chosen), thread_name_prefix="odradek-cluster") as pool:
            futures = [pool.submit(action, b) for b in chosen]
        errors = [error for f in futures if (error := f.exception()) is not None]
        if errors:
            raise errors[0]

    # -- addresses ------------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """Every node's address, for any client library."""
        return ",".join(b.bootstrap_servers for b in self.brokers.values())

    def log(self) -> str:
        """The last lines each node printed."""
        return "\n".join(f"--- node {i}\n{b.log()}" for i, b in self.brokers.items())

    def _answering(self) -> list[ClusterBroker]:
        return [b for b in self.brokers.values() if b.answering]

    # -- what the cluster says ------------------------------------------------------------------

    def metadata(self, node_id: int | None = None) -> MetadataView:
        """The Metadata answer of node `node_id`, or of the active controller (the newest)."""
        if node_id is None:
            node_id = self.active_controller()
        broker = self.brokers[node_id]
        if not broker.answering:
            raise NodeUnreachable(f"node {node_id} is {'paused' if broker.paused else 'down'}")
        return metadata_of(node_id, "127.0.0.1", broker.port)

    def active_controller(self, timeout_s: float = WAIT_TIMEOUT_S) -> int:
        """The node id of the metadata quorum's leader (waits out an election under way)."""

        def leader() -> int | None:
            voters = ",".join(b.bootstrap_servers for b in self._answering() if b.is_voter)
            if not voters:
                return None
            found = quorum_leader(voters)
            return found if found in self.brokers and self.brokers[found].answering else None

        return self._wait(leader, "the metadata quorum to have a leader", timeout_s)

    def partition(self, topic: str, partition: int) -> PartitionState:
        """The partition as the active controller's metadata shows it."""
        state = self.metadata().partitions.get((topic, partition))
        if state is None:
            raise KeyError(f"{topic}-{partition} is not in the cluster's metadata")
        return state

    def leader_of(self, topic: str, partition: int = 0) -> int:
        """The node id of the partition's leader (-1: it has none)."""
        return self.partition(topic, partition).leader

    def isr_of(self, topic: str, partition: int = 0) -> set[int]:
        """The node ids of the partition's in-sync replicas."""
        return set(self.partition(topic, partition).isr)

    def replicas_of(self, topic: str, partition: int = 0) -> list[int]:
        """The node ids of the partition's replicas, the preferred leader first."""
        return list(self.partition(topic, partition).replicas)

    # -- waiting --------------------------------------------------------------------------------

    def wait_for_brokers(self, node_ids: set[int], timeout_s: float = WAIT_TIMEOUT_S) -> None:
        """Wait until every answering node lists exactly `node_ids` as its live brokers."""

        def listed() -> bool:
            for broker in self._answering():
                shown = self.metadata(broker.node_id).brokers
                if shown != node_ids:
                    raise _NotYet(f"node {broker.node_id} lists {sorted(shown)}")
            return True

        self._wait(listed, f"every node to list brokers {sorted(node_ids)}", timeout_s)

    def wait_for_isr(
        self,
        topic: str,
        size: int,
        timeout_s: float = WAIT_TIMEOUT_S,
        *,
        partition: int | None = None,
    ) -> None:
        """Wait until every partition of `topic` (or just `partition`) has a leader and `size`
        in-sync replicas, in the active controller's metadata."""

        def settled() -> bool:
            states = self.metadata().topic(topic)
            if partition is not None:
                states = [p for p in states if p.partition == partition]
            if not states:
                raise _NotYet(f"the controller does not know {topic}")
            for p in states:
                if p.leader < 0 or len(p.isr) != size:
                    raise _NotYet(_describe(p))
            return True

        self._wait(settled, f"{topic}: an ISR of {size} for every partition", timeout_s)

    def wait_healthy(self, timeout_s: float = WAIT_TIMEOUT_S) -> None:
        """Wait until every node runs and answers, each lists every broker, and each shows
        every partition (internal topics too) with a live leader, every replica in sync, and
        the leader the active controller shows."""
        self._wait(self._healthy, "a healthy cluster (every replica in sync)", timeout_s)

    def _healthy(self) -> bool:
        everyone = set(self.brokers)
        for broker in self.brokers.values():
            if not broker.answering:
                raise _NotYet(f"node {broker.node_id} is {'paused' if broker.paused else 'down'}")
        controller = self.metadata()
        for node_id in sorted(everyone):
            view = self.metadata(node_id)
            if view.brokers != everyone:
                raise _NotYet(f"node {node_id} lists brokers {sorted(view.brokers)}")
            if set(view.partitions) != set(controller.partitions):
                raise _NotYet(f"node {node_id} does not know the controller's partitions yet")
            for key, state in sorted(view.partitions.items()):
                if not state.fully_replicated or state.leader not in everyone:
                    raise _NotYet(f"node {node_id} shows {_describe(state)}")
                if state.leader != controller.partitions[key].leader:
                    raise _NotYet(f"node {node_id} shows an old leader: {_describe(state)}")
        return True

    def _wait(self, check: Callable[[], T | None], what: str, timeout_s: float) -> T:
        deadline = time.monotonic() + timeout_s
        last = ""
        while True:
            try:
                result = check()
                if result:
                    return result
            except (NodeUnreachable, _NotYet) as exc:
                last = f" (last: {exc})"
            if time.monotonic() >= deadline:
                raise TimeoutError(f"waited {timeout_s:g} s for {what}{last}")
            time.sleep(_POLL_S)

    # -- topics ---------------------------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int | None = None,
        config: Mapping[str, str] | None = None,
        *,
        timeout_s: float = WAIT_TIMEOUT_S,
    ) -> str:
        """Create a topic (the cluster's replication factor unless given); return its name
        once every answering node shows each partition with a leader and a full ISR."""
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        factor = self.replication_factor if replication_factor is None else replication_factor
        futures = admin.create_topics(
            [NewTopic(name, partitions, factor, config=dict(config or {}))],
            operation_timeout=timeout_s,
            request_timeout=timeout_s,
        )
        futures[name].result(timeout_s)

        def visible() -> bool:
            for broker in self._answering():
                states = self.metadata(broker.node_id).topic(name)
                if len(states) != partitions:
                    raise _NotYet(f"node {broker.node_id} shows {len(states)} partitions")
                for state in states:
                    if not state.fully_replicated:
                        raise _NotYet(f"node {broker.node_id} shows {_describe(state)}")
            return True

        self._wait(visible, f"topic {name} on every node", timeout_s)
        return name

    def __repr__(self) -> str:
        return f"KafkaCluster({self.bootstrap_servers}, cluster id {self.cluster_id})"


class _NotYet(Exception):
    """What a wait is still waiting for (the message says)."""


def _describe(state: PartitionState) -> str:
    return (
        f"{state.topic}-{state.partition}: leader {state.leader}, isr {sorted(state.isr)},"
        f" replicas {list(state.replicas)}"
    )
