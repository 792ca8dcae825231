"""The controller's broker duties as a core without I/O: registration, heartbeats, fencing.

A broker registers (Kafka's BrokerRegistrationRequest); its broker epoch is the offset at which
the batch holding its RegisterBrokerRecord starts, which the caller knows and passes in. It
then heartbeats; each heartbeat moves it through Kafka's states, judged from the image:

    FENCED --caught up, not asking to be fenced--> UNFENCED
    UNFENCED --want_fence--> FENCED
    UNFENCED --want_shutdown, leads a partition--> CONTROLLED_SHUTDOWN
    UNFENCED / FENCED --want_shutdown, leads nothing--> SHUTDOWN_NOW
    CONTROLLED_SHUTDOWN --leads nothing, every active broker has replayed the shutdown
                          records--> SHUTDOWN_NOW

"Caught up" means its metadata offset has reached its broker epoch, i.e. it has replayed the
batch of its own registration (batches are replayed whole). Leaving
UNFENCED (fencing, shutting down, or a session that expired after broker.session.timeout.ms
without a heartbeat) produces in one batch the PartitionChange records that move every
leadership off the broker and take it out of every ISR, plus its registration change.

Time comes in as `now_ms`; the heartbeat tracker is the controller's soft state (last contact
per broker, its metadata offset, the offset at which its controlled shutdown was written), never
written to the log, as Kafka's BrokerHeartbeatManager. The image passed in must hold every
record the controller has produced so far, committed or not, as Kafka's controller reasons
over its uncommitted in-memory state.

Where this differs from Kafka, on purpose: a new incarnation of a broker that is still
unfenced (its session has expired, or it would have been DUPLICATE_BROKER_REGISTRATION) is
fenced in the same batch before it re-registers, so leaderships never rest on a registration
that no longer runs; Kafka leaves that to KIP-966's unclean-shutdown handling, which needs ELR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.image import BrokerRegistration, MetadataImage
from odradek.metadata.partition_change import leader_and_isr_updates
from odradek.metadata.records import (
    FENCE,
    UNFENCE,
    BrokerEndpoint,
    BrokerFeature,
    BrokerRegistrationChangeRecord,
    MetadataRecord,
    RegisterBrokerRecord,
    UnregisterBrokerRecord,
)

DEFAULT_SESSION_TIMEOUT_MS = 9000  # broker.session.timeout.ms
_LONG_MAX = 2**63 - 1


class BrokerState(StrEnum):
    FENCED = "FENCED"
    UNFENCED = "UNFENCED"
    CONTROLLED_SHUTDOWN = "CONTROLLED_SHUTDOWN"
    SHUTDOWN_NOW = "SHUTDOWN_NOW"

    @property
    def fenced(self) -> bool:
        return self in (BrokerState.FENCED, BrokerState.SHUTDOWN_NOW)


@dataclass(frozen=True, slots=True)
class BrokerRegistrationRequest:
    broker_id: int
    incarnation_id: bytes
    listeners: tuple[BrokerEndpoint, ...] = ()
    rack: str | None = None
    features: tuple[BrokerFeature, ...] = ()


@dataclass(frozen=True, slots=True)
class BrokerHeartbeat:
    broker_id: int
    broker_epoch: int
    current_metadata_offset: int
    want_fence: bool = False
    want_shutdown: bool = False


@dataclass(frozen=True, slots=True)
class HeartbeatReply:
    is_caught_up: bool
    is_fenced: bool
    in_controlled_shutdown: bool
    should_shut_down: bool


@dataclass(slots=True)
class _Session:
    last_contact_ms: int
    metadata_offset: int = -1
    controlled_shutdown_offset: int = -1


@dataclass(slots=True)
class HeartbeatTracker:
    """Last contact and metadata offset of each broker, fed by heartbeats."""

    session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS
    sessions: dict[int, _Session] = field(default_factory=dict)

    def start(self, image: MetadataImage, now_ms: int) -> None:
        """On becoming the active controller: every registered broker gets a fresh session,
        as Kafka's controller does, so a failover does not fence the whole cluster."""
        self.sessions = {broker_id: _Session(now_ms) for broker_id in image.brokers}

    def touch(self, broker_id: int, now_ms: int, metadata_offset: int) -> None:
        session = self.sessions.setdefault(broker_id, _Session(now_ms))
        session.last_contact_ms = max(session.last_contact_ms, now_ms)
        session.metadata_offset = metadata_offset

    def forget(self, broker_id: int) -> None:
        self.sessions.pop(broker_id, None)

    def session_alive(self, broker_id: int, now_ms: int) -> bool:
        session = self.sessions.get(broker_id)
        return session is not None and session.last_contact_ms + self.session_timeout_ms >= now_ms

    def expired(self, image: MetadataImage, now_ms: int) -> list[int]:
        """Unfenced brokers whose last heartbeat is older than the session timeout."""
        return sorted(
            broker_id
            for broker_id, registration in image.brokers.items()
            if not registration.fenced
            and broker_id in self.sessions
            and not self.session_alive(broker_id, now_ms)
        )

    def next_expiry(self, image: MetadataImage) -> int | None:
        """When the earliest session of an unfenced broker expires (None: no such session)."""
        deadlines = [
            session.last_contact_ms + self.session_timeout_ms
            for broker_id, session in self.sessions.items()
            if (registration := image.broker(broker_id)) is not None and not registration.fenced
        ]
        return min(deadlines, default=None)

    def lowest_active_offset(self, image: MetadataImage) -> int:
        offsets = [
            session.metadata_offset
            for broker_id, session in self.sessions.items()
            if image.is_active(broker_id)
        ]
        return min(offsets, default=_LONG_MAX)


def current_state(registration: BrokerRegistration) -> BrokerState:
    if registration.in_controlled_shutdown:
        return BrokerState.SHUTDOWN_NOW if registration.fenced else BrokerState.CONTROLLED_SHUTDOWN
    return BrokerState.FENCED if registration.fenced else BrokerState.UNFENCED


def has_leaderships(image: MetadataImage, broker_id: int) -> bool:
    return any(partition.leader == broker_id for _, partition in image.all_partitions())


def check_broker_epoch(image: MetadataImage, broker_id: int, broker_epoch: int) -> None:
    registration = image.broker(broker_id)
    if registration is None:
        raise KafkaError(
            f"No broker registration found for broker id {broker_id}",
            ErrorCode.STALE_BROKER_EPOCH,
        )
    if registration.epoch != broker_epoch:
        raise KafkaError(
            f"Expected broker epoch {registration.epoch}, but got broker epoch {broker_epoch}",
            ErrorCode.STALE_BROKER_EPOCH,
        )


def fence_records(
    image: MetadataImage, broker_id: int, unclean_default: bool | None = None
) -> list[MetadataRecord]:
    """Kafka's handleBrokerFenced: leaderships moved and ISRs left, then the fence."""
    registration = image.broker(broker_id)
    assert registration is not None
    records: list[MetadataRecord] = list(
        leader_and_isr_updates(image, broker_to_remove=broker_id, unclean_default=unclean_default)
    )
    records.append(BrokerRegistrationChangeRecord(broker_id, registration.epoch, fenced=FENCE))
    return records


@dataclass(slots=True)
class BrokerControl:
    tracker: HeartbeatTracker = field(default_factory=HeartbeatTracker)
    unclean_default: bool | None = None  # the controller's unclean.leader.election.enable

    def register(
        self,
        image: MetadataImage,
        request: BrokerRegistrationRequest,
        new_broker_epoch: int,
        now_ms: int,
    ) -> tuple[int, list[MetadataRecord]]:
        """The broker epoch granted and the records. `new_broker_epoch` is the offset of the
        first record of this batch (Kafka's nextWriteOffset), so when the old incarnation is
        fenced first, the epoch is the offset of that batch rather than of the registration
        record itself, as in Kafka."""
        broker_id = request.broker_id
        existing = image.broker(broker_id)
        records: list[MetadataRecord] = []
        if existing is not None and existing.incarnation_id == request.incarnation_id:
            # a retried registration amends the current one: epoch and state are kept
            records.append(
                RegisterBrokerRecord(
                    broker_id,
                    request.incarnation_id,
                    existing.epoch,
                    request.listeners,
                    request.features,
                    request.rack,
                    existing.fenced,
                    existing.in_controlled_shutdown,
                )
            )
            self.tracker.touch(broker_id, now_ms, -1)
            return existing.epoch, records
        if existing is not None:
            if not existing.fenced and self.tracker.session_alive(broker_id, now_ms):
                raise KafkaError(
                    "Another broker is registered with that broker id.",
                    ErrorCode.DUPLICATE_BROKER_REGISTRATION,
                )
            if not existing.fenced or has_leaderships(image, broker_id):
                records.extend(fence_records(image, broker_id, self.unclean_default))
        records.append(
            RegisterBrokerRecord(
                broker_id,
                request.incarnation_id,
                new_broker_epoch,
                request.listeners,
                request.features,
                request.rack,
                fenced=True,
                in_controlled_shutdown=False,
            )
        )
        self.tracker.forget(broker_id)
        self.tracker.touch(broker_id, now_ms, -1)
        return new_broker_epoch, records

    def heartbeat(
        self, image: MetadataImage, request: BrokerHeartbeat, now_ms: int, next_offset: int
    ) -> tuple[HeartbeatReply, list[MetadataRecord]]:
        """Kafka's processBrokerHeartbeat; `next_offset` is the offset the first record of
        this batch will have (a controlled shutdown completes once every active broker has
        replayed past it)."""
        broker_id = request.broker_id
        check_broker_epoch(image, broker_id, request.broker_epoch)
        registration = image.brokers[broker_id]
        state = current_state(registration)
        caught_up = request.current_metadata_offset >= registration.epoch
        nxt = self._next_state(image, state, request, caught_up)
        records: list[MetadataRecord] = []
        if nxt != state and not (state.fenced and nxt.fenced):
            if nxt.fenced:
                records = fence_records(image, broker_id, self.unclean_default)
            elif nxt == BrokerState.UNFENCED:
                records = [
                    BrokerRegistrationChangeRecord(broker_id, registration.epoch, fenced=UNFENCE)
                ]
                records.extend(
                    leader_and_isr_updates(
                        image, broker_to_add=broker_id, unclean_default=self.unclean_default
                    )
                )
            else:
                records = [
                    BrokerRegistrationChangeRecord(
                        broker_id, registration.epoch, in_controlled_shutdown=1
                    )
                ]
                records.extend(
                    leader_and_isr_updates(
                        image, broker_to_remove=broker_id, unclean_default=self.unclean_default
                    )
                )
        self.tracker.touch(broker_id, now_ms, request.current_metadata_offset)
        session = self.tracker.sessions[broker_id]
        if nxt == BrokerState.CONTROLLED_SHUTDOWN and session.controlled_shutdown_offset < 0:
            session.controlled_shutdown_offset = next_offset
        reply = HeartbeatReply(
            is_caught_up=caught_up,
            is_fenced=nxt.fenced,
            in_controlled_shutdown=nxt in (BrokerState.CONTROLLED_SHUTDOWN,),
            should_shut_down=nxt == BrokerState.SHUTDOWN_NOW,
        )
        return reply, records

    def _next_state(
        self, image: MetadataImage, state: BrokerState, request: BrokerHeartbeat, caught_up: bool
    ) -> BrokerState:
        broker_id = request.broker_id
        if state == BrokerState.FENCED:
            if request.want_shutdown:
                return BrokerState.SHUTDOWN_NOW
            if not request.want_fence and caught_up:
                return BrokerState.UNFENCED
            return BrokerState.FENCED
        if state == BrokerState.UNFENCED:
            if request.want_fence:
                return BrokerState.SHUTDOWN_NOW if request.want_shutdown else BrokerState.FENCED
            if request.want_shutdown:
                if has_leaderships(image, broker_id):
                    return BrokerState.CONTROLLED_SHUTDOWN
                return BrokerState.SHUTDOWN_NOW
            return BrokerState.UNFENCED
        if state == BrokerState.CONTROLLED_SHUTDOWN:
            if has_leaderships(image, broker_id):
                return BrokerState.CONTROLLED_SHUTDOWN
            session = self.tracker.sessions.get(broker_id)
            offset = -1 if session is None else session.controlled_shutdown_offset
            if offset <= self.tracker.lowest_active_offset(image):
                return BrokerState.SHUTDOWN_NOW
            return BrokerState.CONTROLLED_SHUTDOWN
        return BrokerState.SHUTDOWN_NOW

    def fence_expired(self, image: MetadataImage, now_ms: int) -> list[MetadataRecord]:
        """Fence every unfenced broker whose session expired. Each fencing is reasoned over
        the image with the previous ones applied, so a partition losing two brokers at once
        never elects the second."""
        records: list[MetadataRecord] = []
        scratch = image
        for broker_id in self.tracker.expired(image, now_ms):
            fenced = fence_records(scratch, broker_id, self.unclean_default)
            records.extend(fenced)
            scratch = scratch.apply(fenced)
        return records

    def unregister(self, image: MetadataImage, broker_id: int) -> list[MetadataRecord]:
        """Kafka's UnregisterBroker: leave every ISR, then the registration goes."""
        registration = image.broker(broker_id)
        if registration is None:
            raise KafkaError(
                f"Broker ID {broker_id} is not currently registered",
                ErrorCode.BROKER_ID_NOT_REGISTERED,
            )
        records: list[MetadataRecord] = list(
            leader_and_isr_updates(
                image, broker_to_remove=broker_id, unclean_default=self.unclean_default
            )
        )
        records.append(UnregisterBrokerRecord(broker_id, registration.epoch))
        self.tracker.forget(broker_id)
        return records
