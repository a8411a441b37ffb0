"""A thin asyncio adapter over etcd's v3 gRPC API.

It uses the generated etcd stubs that ship with aetcd directly, because the
coordinator needs request options aetcd's wrappers omit (limit, count_only,
create-revision compares). Every gRPC failure is translated here, once:
unreachable or timed out becomes StoreUnavailableError, keeping the cause.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc
from aetcd import rpc

from taskscheduler.errors import StoreUnavailableError

Compare = rpc.Compare
Op = rpc.RequestOp

_UNAVAILABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: list[KeyValue]
    count: int
    more: bool
    revision: int


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    responses: list[rpc.ResponseOp]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    deleted: bool
    kv: KeyValue


class WatchCompactedError(Exception):
    """The watch's start revision was compacted away; resync from a fresh read."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"watch start revision compacted; oldest available is {compact_revision}")
        self.compact_revision = compact_revision


def prefix_end(prefix: str) -> bytes:
    """Return the range end that covers every key starting with `prefix`."""
    raw = bytearray(prefix.encode())
    for index in range(len(raw) - 1, -1, -1):
        if raw[index] < 0xFF:
            raw[index] += 1
            return bytes(raw[: index + 1])
    return b"\0"


def grpc_target(endpoints: Sequence[str]) -> str:
    """Return one gRPC target for all endpoints; IP literals share a pick-first channel."""
    hosts = [endpoint.rpartition(":")[0] for endpoint in endpoints]
    try:
        for host in hosts:
            ipaddress.IPv4Address(host)
    except ValueError:
        # NOTE: a host name uses only the first endpoint; list IP addresses to fail over.
        return f"dns:///{endpoints[0]}"
    return "ipv4:" + ",".join(endpoints)


def put(key: str, value: bytes, lease: int = 0) -> Op:
    return Op(request_put=rpc.PutRequest(key=key.encode(), value=value, lease=lease))


def delete(key: str) -> Op:
    return Op(request_delete_range=rpc.DeleteRangeRequest(key=key.encode()))


def delete_prefix(prefix: str) -> Op:
    request = rpc.DeleteRangeRequest(key=prefix.encode(), range_end=prefix_end(prefix))
    return Op(request_delete_range=request)


def created_at_revision(key: str, revision: int) -> Compare:
    """Compare: the key exists with this create revision (0 means it does not exist)."""
    return Compare(
        key=key.encode(),
        target=Compare.CompareTarget.CREATE,
        result=Compare.CompareResult.EQUAL,
        create_revision=revision,
    )


def exists(key: str) -> Compare:
    return Compare(
        key=key.encode(),
        target=Compare.CompareTarget.VERSION,
        result=Compare.CompareResult.GREATER,
        version=0,
    )


def absent(key: str) -> Compare:
    return created_at_revision(key, 0)


def modified_at_revision(key: str, revision: int) -> Compare:
    return Compare(
        key=key.encode(),
        target=Compare.CompareTarget.MOD,
        result=Compare.CompareResult.EQUAL,
        mod_revision=revision,
    )


class Etcd:
    """A connection to one etcd cluster; every call has a deadline."""

    def __init__(self, endpoints: Sequence[str], *, request_timeout_s: float = 5.0) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is required")
        self.endpoints = tuple(endpoints)
        self._timeout_s = request_timeout_s
        self._channel = grpc.aio.insecure_channel(
            grpc_target(endpoints),
            options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        )
        self._kv = rpc.KVStub(self._channel)
        self._lease = rpc.LeaseStub(self._channel)
        self._watch = rpc.WatchStub(self._channel)
        self._maintenance = rpc.MaintenanceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def get(self, key: str) -> KeyValue | None:
        request = rpc.RangeRequest(key=key.encode())
        response = await self._call(self._kv.Range, request)
        return _to_key_value(response.kvs[0]) if response.kvs else None

    async def range(
        self,
        start: str,
        end: bytes,
        *,
        limit: int = 0,
        descending: bool = False,
        count_only: bool = False,
        keys_only: bool = False,
    ) -> RangeResult:
        """Read keys in [start, end), ascending by key unless `descending`."""
        request = rpc.RangeRequest(
            key=start.encode(),
            range_end=end,
            limit=limit,
            count_only=count_only,
            keys_only=keys_only,
            sort_order=rpc.RangeRequest.DESCEND if descending else rpc.RangeRequest.NONE,
            sort_target=rpc.RangeRequest.KEY,
        )
        response = await self._call(self._kv.Range, request)
        return RangeResult(
            kvs=[_to_key_value(kv) for kv in response.kvs],
            count=response.count,
            more=response.more,
            revision=response.header.revision,
        )

    async def range_prefix(self, prefix: str, **options: object) -> RangeResult:
        return await self.range(prefix, prefix_end(prefix), **options)  # type: ignore[arg-type]

    async def pages(self, prefix: str, *, page_size: int = 1000) -> AsyncIterator[RangeResult]:
        """Yield every key under `prefix` in key order, `page_size` keys per range read.

        Each page is read at its own revision; a caller that needs one
        consistent view watches from the first page's revision + 1.
        """
        start = prefix
        end = prefix_end(prefix)
        while True:
            page = await self.range(start, end, limit=page_size)
            yield page
            if not page.more or not page.kvs:
                return
            start = page.kvs[-1].key + "\0"

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        request = rpc.TxnRequest(
            compare=list(compares), success=list(success), failure=list(failure)
        )
        response = await self._call(self._kv.Txn, request)
        return TxnResult(
            succeeded=response.succeeded,
            revision=response.header.revision,
            responses=list(response.responses),
        )

    async def grant_lease(self, ttl_s: int) -> int:
        response = await self._call(self._lease.LeaseGrant, rpc.LeaseGrantRequest(TTL=ttl_s))
        return int(response.ID)

    async def keep_alive_once(self, lease_id: int) -> int:
        """Refresh a lease once; return its remaining TTL in seconds, 0 when it has expired."""
        try:
            call = self._lease.LeaseKeepAlive(
                iter([rpc.LeaseKeepAliveRequest(ID=lease_id)]), timeout=self._timeout_s
            )
            async for reply in call:
                return int(reply.TTL)
        except grpc.aio.AioRpcError as error:
            raise _translate(error) from error
        return 0

    async def revoke_lease(self, lease_id: int) -> None:
        await self._call(self._lease.LeaseRevoke, rpc.LeaseRevokeRequest(ID=lease_id))

    async def db_size_bytes(self) -> int:
        response = await self._call(self._maintenance.Status, rpc.StatusRequest())
        return int(response.dbSize)

    async def alarms(self) -> list[str]:
        request = rpc.AlarmRequest(action=rpc.AlarmRequest.GET)
        response = await self._call(self._maintenance.Alarm, request)
        return [rpc.AlarmType.Name(alarm.alarm) for alarm in response.alarms]

    async def compact(self, revision: int) -> None:
        await self._call(self._kv.Compact, rpc.CompactionRequest(revision=revision))

    async def watch_prefix(
        self, prefix: str, start_revision: int
    ) -> AsyncIterator[list[WatchEvent]]:
        """Yield the events under `prefix` from `start_revision` on, one list per etcd response.

        Raises WatchCompactedError when that revision is gone, and
        StoreUnavailableError when the stream breaks; the caller resyncs.
        """
        create = rpc.WatchCreateRequest(
            key=prefix.encode(), range_end=prefix_end(prefix), start_revision=start_revision
        )
        call = self._watch.Watch(iter([rpc.WatchRequest(create_request=create)]))
        try:
            async for response in call:
                if response.compact_revision:
                    raise WatchCompactedError(response.compact_revision)
                if response.canceled:
                    raise StoreUnavailableError(
                        f"etcd canceled the watch: {response.cancel_reason}"
                    )
                if response.events:
                    yield [_to_watch_event(event) for event in response.events]
        except grpc.aio.AioRpcError as error:
            raise _translate(error) from error
        finally:
            call.cancel()
        raise StoreUnavailableError("etcd closed the watch stream")

    async def _call(self, method, request):  # type: ignore[no-untyped-def]
        try:
            return await method(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as error:
            raise _translate(error) from error


def _translate(error: grpc.aio.AioRpcError) -> Exception:
    if error.code() in _UNAVAILABLE_CODES:
        return StoreUnavailableError(f"etcd request failed: {error.code().name}: {error.details()}")
    return error


def _to_key_value(kv: rpc.KeyValue) -> KeyValue:
    return KeyValue(
        key=kv.key.decode(),
        value=kv.value,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        lease=kv.lease,
    )


def _to_watch_event(event: rpc.Event) -> WatchEvent:
    return WatchEvent(deleted=event.type == rpc.Event.DELETE, kv=_to_key_value(event.kv))
