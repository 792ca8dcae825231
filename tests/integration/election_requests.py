"""`odradek partitions` as a subprocess, and raw ElectLeaders, AlterPartitionReassignments and
ListPartitionReassignments requests for the cluster tests (kio entities over a plain socket,
`cluster_processes.raw`), answers as plain dicts keyed by (topic, partition)."""

from __future__ import annotations

import datetime
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from cluster_processes import raw

PREFERRED = 0
UNCLEAN = 1


def connection_options(port: int) -> list[str]:
    return ["--bootstrap-server", f"127.0.0.1:{port}", "--timeout", "20"]


def partitions_cli(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    """`odradek partitions ARGS` against the broker on `port`."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "odradek",
            "partitions",
            *args,
            "--bootstrap-server",
            f"127.0.0.1:{port}",
            "--timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def elect(
    port: int,
    partitions: Mapping[str, Sequence[int]] | None,
    election_type: int = PREFERRED,
    version: int = 2,
) -> tuple[int, dict[tuple[str, int], int]]:
    """ElectLeaders: the top-level error code (v1+; 0 for v0) and the code per partition."""
    import importlib

    kio: Any = importlib.import_module(f"kio.schema.elect_leaders.v{version}.request")
    fields: dict[str, Any] = {"election_type": election_type} if version >= 1 else {}
    answer = raw(
        port,
        kio.ElectLeadersRequest(
            topic_partitions=None
            if partitions is None
            else tuple(
                kio.TopicPartitions(topic=name, partitions=tuple(ids))
                for name, ids in partitions.items()
            ),
            timeout=datetime.timedelta(seconds=15),
            **fields,
        ),
    )
    codes = {
        (topic.topic, int(p.partition_id)): int(p.error_code)
        for topic in answer.replica_election_results
        for p in topic.partition_result
    }
    return int(getattr(answer, "error_code", 0)), codes


def reassign(
    port: int,
    targets: Mapping[tuple[str, int], Sequence[int] | None],
    *,
    allow_replication_factor_change: bool = True,
) -> tuple[int, dict[tuple[str, int], tuple[int, str | None]]]:
    """AlterPartitionReassignments v1 (replicas None cancels): the top-level error code and
    (code, message) per partition."""
    from kio.schema.alter_partition_reassignments.v1 import request as kio

    by_topic: dict[str, list[Any]] = {}
    for (name, partition), replicas in targets.items():
        by_topic.setdefault(name, []).append(
            kio.ReassignablePartition(
                partition_index=partition,  # type: ignore[arg-type]
                replicas=None if replicas is None else tuple(replicas),  # type: ignore[arg-type]
            )
        )
    answer = raw(
        port,
        kio.AlterPartitionReassignmentsRequest(
            timeout=datetime.timedelta(seconds=15),
            allow_replication_factor_change=allow_replication_factor_change,
            topics=tuple(
                kio.ReassignableTopic(name=name, partitions=tuple(parts))  # type: ignore[arg-type]
                for name, parts in by_topic.items()
            ),
        ),
    )
    return int(answer.error_code), {
        (topic.name, int(p.partition_index)): (int(p.error_code), p.error_message)
        for topic in answer.responses
        for p in topic.partitions
    }


def ongoing(
    port: int, topics: Mapping[str, Sequence[int]] | None = None
) -> dict[tuple[str, int], tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """ListPartitionReassignments: (replicas, adding, removing) per partition in progress."""
    from kio.schema.list_partition_reassignments.v0 import request as kio

    answer = raw(
        port,
        kio.ListPartitionReassignmentsRequest(
            timeout=datetime.timedelta(seconds=15),
            topics=None
            if topics is None
            else tuple(
                kio.ListPartitionReassignmentsTopics(
                    name=name,  # type: ignore[arg-type]
                    partition_indexes=tuple(ids),  # type: ignore[arg-type]
                )
                for name, ids in topics.items()
            ),
        ),
    )
    assert answer.error_code == 0, answer
    return {
        (topic.name, int(p.partition_index)): (
            tuple(int(b) for b in p.replicas),
            tuple(int(b) for b in p.adding_replicas),
            tuple(int(b) for b in p.removing_replicas),
        )
        for topic in answer.topics
        for p in topic.partitions
    }
