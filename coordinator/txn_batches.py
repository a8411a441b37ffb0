"""Many per-item etcd writes, grouped into as few transactions as etcd's limits allow.

Each item brings its own compares, its operations, and the reads ("probes")
that the transaction's failure branch runs. A transaction commits all of
its items or none, so when one item's compare fails the whole group fails,
and each item then gets the values its probes read, from which the caller
decides what to retry. Groups keep the items' order and are written
concurrently, with at most MAX_CONCURRENT_TXNS in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from aetcd import rpc

from taskscheduler.coordinator import etcd
from taskscheduler.errors import SchedulerError, StoreUnavailableError
from taskscheduler.logs import get_logger

log = get_logger(__name__)

# etcd 3.5 rejects a transaction whose compare, success or failure list is longer
# than --max-txn-ops, 128 by default.
MAX_TXN_OPS = 128
# etcd 3.5 rejects a request larger than --max-request-bytes, 1.5 MiB by default.
# The estimate below counts every compare and operation, so 1 MiB leaves room
# for the request's framing.
MAX_TXN_BYTES = 1024 * 1024
MAX_CONCURRENT_TXNS = 16
# Upper bound of the field tag and length prefix that a TxnRequest adds to each
# compare or operation (at most 4 bytes for a message under 2 MiB).
_FRAMING_BYTES = 6


@dataclass(frozen=True, slots=True, kw_only=True)
class TxnLimits:
    """How much one transaction may hold: list length and request size."""

    max_ops: int = MAX_TXN_OPS
    max_bytes: int = MAX_TXN_BYTES

    def __post_init__(self) -> None:
        if self.max_ops < 1:
            raise ValueError(f"max_ops must be at least 1, got {self.max_ops}")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {self.max_bytes}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemWrite:
    """One item's share of a transaction.

    `alone` puts the item in a transaction of its own, so that only its own
    compares can fail it.
    """

    compares: tuple[etcd.Compare, ...]
    operations: tuple[etcd.Op, ...]
    probes: tuple[etcd.Op, ...] = ()
    alone: bool = False

    @property
    def op_count(self) -> int:
        """The item's length in the longest of the transaction's three lists."""
        return max(len(self.compares), len(self.operations), len(self.probes))

    @property
    def size_bytes(self) -> int:
        """An upper estimate of the item's serialized size within a TxnRequest."""
        messages = (*self.compares, *self.operations, *self.probes)
        return sum(message.ByteSize() + _FRAMING_BYTES for message in messages)


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """The outcome of one item's write.

    Committed: `revision` is the transaction's revision. Failed on a compare:
    `probed` contains, per probe, the first key-value it read or None. Not
    attempted or outcome unknown: `error` is the reason.
    """

    committed: bool
    revision: int = 0
    probed: tuple[etcd.KeyValue | None, ...] = ()
    error: SchedulerError | None = None


def probe(key: str, *, keys_only: bool = False) -> etcd.Op:
    """Return a read of one key, for a failure branch or a batched read."""
    return etcd.Op(request_range=rpc.RangeRequest(key=key.encode(), keys_only=keys_only))


def split_into_txns(writes: Sequence[ItemWrite], limits: TxnLimits) -> list[list[int]]:
    """Group the writes' indexes into transactions, in order, within `limits`.

    An item marked `alone` gets a group of its own. So does an item that
    exceeds a limit by itself, which etcd then rejects.
    """
    groups: list[list[int]] = []
    current: list[int] = []
    ops = size = 0
    for index, write in enumerate(writes):
        if write.alone:
            groups.append([index])
            continue
        write_ops, write_size = write.op_count, write.size_bytes
        if current and (ops + write_ops > limits.max_ops or size + write_size > limits.max_bytes):
            groups.append(current)
            current, ops, size = [], 0, 0
        current.append(index)
        ops += write_ops
        size += write_size
    if current:
        groups.append(current)
    return groups


async def commit_writes(
    store: etcd.Etcd, writes: Sequence[ItemWrite], limits: TxnLimits
) -> list[WriteOutcome]:
    """Write every item in as few transactions as `limits` allow; one outcome per item.

    Store failures become per-item outcomes instead of exceptions, because
    other groups of the same call may have committed.
    """
    groups = split_into_txns(writes, limits)
    gate = asyncio.Semaphore(MAX_CONCURRENT_TXNS)

    async def commit(group: list[int]) -> list[WriteOutcome]:
        async with gate:
            return await _commit_group(store, [writes[index] for index in group])

    outcomes: list[WriteOutcome | None] = [None] * len(writes)
    group_outcomes = await asyncio.gather(*(commit(group) for group in groups))
    for group, results in zip(groups, group_outcomes, strict=True):
        for index, outcome in zip(group, results, strict=True):
            outcomes[index] = outcome
    return [outcome for outcome in outcomes if outcome is not None]


async def read_keys(
    store: etcd.Etcd, keys: Sequence[str], limits: TxnLimits, *, keys_only: bool = False
) -> list[etcd.KeyValue | None]:
    """Read many keys, `limits.max_ops` per transaction; None for each key that is absent.

    Raises StoreUnavailableError when etcd cannot be reached.
    """
    groups = [keys[start : start + limits.max_ops] for start in range(0, len(keys), limits.max_ops)]

    async def read(group: Sequence[str]) -> list[etcd.KeyValue | None]:
        result = await store.txn([], [probe(key, keys_only=keys_only) for key in group])
        return [_first_key_value(response) for response in result.responses]

    values: list[etcd.KeyValue | None] = []
    for group_values in await asyncio.gather(*(read(group) for group in groups)):
        values.extend(group_values)
    return values


async def _commit_group(store: etcd.Etcd, writes: Sequence[ItemWrite]) -> list[WriteOutcome]:
    compares = [compare for write in writes for compare in write.compares]
    operations = [operation for write in writes for operation in write.operations]
    probes = [read for write in writes for read in write.probes]
    try:
        result = await store.txn(compares, operations, probes)
    except StoreUnavailableError as error:
        unknown = StoreUnavailableError(
            f"{error}. The write may or may not have been applied; read the job back "
            "before retrying it"
        )
        return [WriteOutcome(committed=False, error=unknown)] * len(writes)
    except grpc.aio.AioRpcError as error:
        # etcd rejects a transaction over its limits with INVALID_ARGUMENT; the
        # limits above are meant to prevent that, so a person must look.
        log.error("etcd rejected a batched transaction", items=len(writes), error=error.details())
        rejected = SchedulerError(f"etcd rejected the write: {error.details()}")
        return [WriteOutcome(committed=False, error=rejected)] * len(writes)
    if result.succeeded:
        return [WriteOutcome(committed=True, revision=result.revision)] * len(writes)
    return _split_probes(writes, result.responses)


def _split_probes(
    writes: Sequence[ItemWrite], responses: Sequence[rpc.ResponseOp]
) -> list[WriteOutcome]:
    outcomes = []
    position = 0
    for write in writes:
        mine = responses[position : position + len(write.probes)]
        position += len(write.probes)
        outcomes.append(
            WriteOutcome(committed=False, probed=tuple(_first_key_value(item) for item in mine))
        )
    return outcomes


def _first_key_value(response: rpc.ResponseOp) -> etcd.KeyValue | None:
    kvs = response.response_range.kvs
    if not kvs:
        return None
    kv = kvs[0]
    return etcd.KeyValue(
        key=kv.key.decode(),
        value=kv.value,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        lease=kv.lease,
    )
