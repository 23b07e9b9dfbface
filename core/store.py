"""The one SQLite file: inbox of deliveries, subscriptions, outbox of messages.

One aiosqlite connection in WAL mode, autocommit off by hand: every write runs in an
explicit `BEGIN IMMEDIATE` transaction under an asyncio lock, because the receiver and
the bot share the connection and their statements must not interleave inside one
transaction. A delivery is committed before the receiver answers 2xx: on a connection of
its own, with `synchronous=FULL` (the WAL is fsynced before the 2xx), so a webhook never
waits behind the bot's reads (a second asyncio lock orders the write transactions of both
connections), and deliveries arriving together share one INSERT and one fsync
(`GroupCommit`). A message is marked sent only after the homeserver accepted it.
While the daemon runs, WAL checkpoints happen on a third connection
(`checkpoint_forever`), never inside a request's commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import astuple, dataclass, replace
from pathlib import Path

import aiosqlite

from core import store_failures
from core.diagnostics import (
    IntakeEntry,
    IntakeSummary,
    LoggedDelivery,
    RoomPost,
    SendErrorSummary,
)
from core.group_commit import GroupCommit, GroupCommitClosed
from core.intake_batch import FLUSH_EVERY_S as INTAKE_FLUSH_S
from core.intake_batch import IntakeBatcher
from core.migrations import MIGRATIONS, TRUST_VERSION
from core.records import (
    Delivery,
    HeldGroup,
    NewDelivery,
    NewMessage,
    OutboxMessage,
    PairState,
    QueueStats,
    Route,
    Subscription,
)
from core.repo_spec import specs_matching

log = logging.getLogger(__name__)


class SubscribeResult(enum.Enum):
    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    dropped_held: int  # events held by the rate limit that will not be posted now


# The intake log keeps at most this many rows whatever the retention: a flood of forged
# requests must not grow the database without bound.
INTAKE_LOG_MAX_ROWS = 10_000

WAL_SIZE_LIMIT = 16 * 1024 * 1024  # bytes the WAL file is cut back to after a checkpoint
# The main connection (routing, sending, commands) fsyncs its commits too: a routing
# decision lost to a power cut after its message was sent would be routed again under a new
# transaction id, and posted twice. Routing commits once per batch, so this costs little.
MAIN_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
    f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}",
)
# The intake connection: a delivery is on disk (the WAL fsynced) before the receiver
# answers 2xx, one fsync per group commit. A database locked by another process answers
# 503 before the forge's own 5 s timeout gives up on the request: a request arriving while
# a batch waits out the lock waits for that batch and then its own, so twice this.
INTAKE_BUSY_S = 2.0
INTAKE_PRAGMAS = (
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={int(INTAKE_BUSY_S * 1000)}",
    f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}",
)
QUICK_CHECK_ROWS = 5  # problems reported at start: enough to tell corruption apart
# Rows per retention transaction: at most ~20 ms of write lock each, even for deliveries
# with 8 KB payloads (measured: 1,000 of those took ~40 ms to delete; see `prune`).
PRUNE_BATCH = 500
PRUNE_INTAKE_LOG = (
    "DELETE FROM intake_log WHERE id IN (SELECT id FROM intake_log WHERE at < ? LIMIT ?)"
)
PRUNE_HANDLED_COMMANDS = (
    "DELETE FROM handled_commands WHERE event_id IN (SELECT event_id FROM handled_commands"
    " WHERE handled_at < ? LIMIT ?)"
)
PRUNE_OUTBOX = (
    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status != 'pending'"
    " AND created_at < ? LIMIT ?)"
)
PRUNE_DELIVERIES = (
    "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE status != 'pending'"
    " AND received_at < ? AND NOT EXISTS (SELECT 1 FROM held"
    " WHERE held.delivery_row = deliveries.id) LIMIT ?)"
)
DROP_PAYLOADS = (
    "UPDATE deliveries SET payload = '' WHERE id IN (SELECT id FROM deliveries d"
    " WHERE d.id > ? AND d.status != 'pending' AND d.payload != ''"
    " AND NOT EXISTS (SELECT 1 FROM held h WHERE h.delivery_row = d.id)"
    " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.delivery_row = d.id"
    " AND o.status = 'pending') ORDER BY d.id LIMIT ?) RETURNING id"
)
# Deliveries per INSERT: 9 parameters each stays under SQLite's oldest limit of 999.
DELIVERY_BATCH = 110
# How often `checkpoint_forever` copies the WAL back into the database file.
CHECKPOINT_EVERY_S = 1.0
CHECKPOINT_LOG_EVERY = 600  # a failing checkpoint is logged at its 1st, 601st… round
SQLITE_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default, restored when checkpointing stops
_DELIVERY_COLUMNS = (
    "delivery_id, event, body_sha256, repo, payload, received_at, status, note, private"
)


class Store:
    """Async access to the daemon's durable state."""

    def __init__(self, path: Path, intake_flush_s: float = INTAKE_FLUSH_S) -> None:
        """Nothing is opened here: `open()` runs in the daemon's startup, before listening.

        `intake_flush_s`: how long refusals are counted in memory before a batch is written.
        """
        self.path = path
        self._intake_flush_s = intake_flush_s
        self._db: aiosqlite.Connection | None = None
        self._intake_db: aiosqlite.Connection | None = None  # only GroupCommit's writer uses it
        self._lock = asyncio.Lock()  # the main connection: one statement or transaction at once
        # Any write transaction, on either connection. Waiting here is an immediate hand-off;
        # left to SQLite, a writer finding the file locked sleeps 1, 2, 5, 10 ms… (its busy
        # handler), and the intake would sleep behind every routing transaction.
        self._write_lock = asyncio.Lock()
        self._routing_lock = asyncio.Lock()  # see `routing()`
        self._deliveries = self._delivery_writer()
        self._intake_batch = IntakeBatcher(self.log_intake, intake_flush_s)

    def _delivery_writer(self) -> GroupCommit[NewDelivery, bool]:
        return GroupCommit(
            self._insert_deliveries,
            lambda d: (d.delivery_id, (d.event, d.body_sha256)),  # the two unique keys
            DELIVERY_BATCH,
        )

    async def open(self) -> None:
        """Open (creating and migrating as needed) before the daemon listens.

        Raises StoreUnusable, one line for the operator, when the file is corrupt, read-only,
        from a newer version or cannot be opened. On every error path the connections opened
        so far are closed: aiosqlite's worker thread is not a daemon thread, and one left
        behind keeps the interpreter from exiting (it hung for good, deaf to SIGTERM).
        """
        try:
            await self._open()
        except BaseException as exc:
            await self._close_quietly()
            if isinstance(exc, sqlite3.Error | OSError):
                raise store_failures.describe(self.path, exc) from None
            raise

    async def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _create_private(self.path)
        self._deliveries = self._delivery_writer()
        self._intake_batch = IntakeBatcher(self.log_intake, self._intake_flush_s)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        self._db.row_factory = aiosqlite.Row
        version = await self._schema_version()  # the first read: "not a database" shows here
        if version > len(MIGRATIONS):
            raise store_failures.newer_schema(self.path, version, len(MIGRATIONS))
        for pragma in MAIN_PRAGMAS:
            await self._db.execute(pragma)
        await self._check_integrity()
        await self._check_writable(version)
        await self._migrate()
        self._intake_db = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in INTAKE_PRAGMAS:
            await self._intake_db.execute(pragma)
        for suffix in ("-wal", "-shm"):  # SQLite gives them the database's mode; be sure
            _make_private(self.path.with_name(self.path.name + suffix))

    async def _schema_version(self) -> int:
        async with self._conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def _check_integrity(self) -> None:
        """`quick_check`: the b-trees' structure and the pages' format, in one pass over the
        file, without the index-against-table comparison that makes `integrity_check` slow."""
        rows = await self._conn.execute_fetchall(f"PRAGMA quick_check({QUICK_CHECK_ROWS})")
        problems = [str(row[0]) for row in rows]
        if problems != ["ok"]:
            raise store_failures.corrupt(self.path, "quick_check: " + "; ".join(problems))

    async def _check_writable(self, version: int) -> None:
        """A read-only file opens and reads fine; only a write tells. This one changes nothing
        and is rolled back, so a read-only database is refused at start, not at the first
        webhook (which would get 503 for ever)."""
        await self._conn.execute("BEGIN IMMEDIATE")
        try:
            await self._conn.execute(f"PRAGMA user_version={version}")
        finally:
            await self._conn.execute("ROLLBACK")

    async def open_read_only(self) -> None:
        """Open for operator tools beside a running daemon: nothing created, migrated or written.

        Run as another user (root) against the daemon's state, an open that creates the WAL
        files (even a `mode=ro` one does) would leave them owned by that user, and the daemon
        could not open its database any more. With no WAL files, no writer is running and
        everything is in the main file, which is read without locking (`immutable=1`), so
        nothing is created; with them, they are the daemon's and are used as they are.
        """
        if not self.path.is_file():
            raise FileNotFoundError(f"no database at {self.path}")
        try:
            await self._open_read_only()
        except BaseException:
            await self._close_quietly()  # as in `open`: no worker thread left behind
            raise

    async def _open_read_only(self) -> None:
        wal = [self.path.with_name(self.path.name + suffix) for suffix in ("-wal", "-shm")]
        mode = "mode=ro" if any(file.exists() for file in wal) else "immutable=1"
        uri = f"{self.path.resolve().as_uri()}?{mode}"
        self._db = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        self._db.row_factory = aiosqlite.Row
        await self._db.execute("PRAGMA busy_timeout=5000")
        await self._db.execute("PRAGMA query_only=ON")
        version = await self._schema_version()
        if version < len(MIGRATIONS):
            raise RuntimeError(
                f"database schema {version} is older than this program's {len(MIGRATIONS)};"
                " restart the daemon once to migrate it"
            )

    async def close(self) -> None:
        """Deliveries already submitted are committed first; later ones are refused.

        Both connections are closed even when closing one fails (the disk, at the last
        checkpoint): each leaves a worker thread behind that would keep the process alive.
        """
        intake, main = self._intake_db, self._db
        try:
            await self._deliveries.close()
            if main is not None:
                await self._intake_batch.close()  # refusals counted in memory, written now
        finally:
            self._intake_db = self._db = None
            try:
                if intake is not None:
                    await intake.close()
            finally:
                if main is not None:
                    await main.close()

    async def _close_quietly(self) -> None:
        """On an error path: close whatever is open; the first error is the one to report."""
        for name in ("_intake_db", "_db"):
            connection = getattr(self, name)
            setattr(self, name, None)
            if connection is not None:
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await connection.close()

    @property
    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock, self._write_lock:
            # BEGIN inside the try, and ROLLBACK unconditionally: a cancelled statement still
            # runs in aiosqlite's thread, in order, so a BEGIN interrupted here may start
            # later; the ROLLBACK queued behind it ends it. Without this the shared
            # connection would stay inside a transaction for ever.
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
            except BaseException:
                with contextlib.suppress(sqlite3.OperationalError):  # none was active
                    await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")

    async def _migrate(self) -> None:
        async with self._conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        current = row[0] if row else 0
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            async with self._transaction() as conn:
                for statement in _statements(script):
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version={version}")
            log.info("database migrated to schema version %d", version)
            if version == TRUST_VERSION:
                await self._log_untrusted_rooms()

    async def _log_untrusted_rooms(self) -> None:
        """Subscriptions made before trust was recorded are "public only" now: say so once
        per room, so the operator knows which rooms an admin must re-subscribe."""
        rows = await self._fetchall(
            "SELECT room_id, COUNT(*) FROM subscriptions GROUP BY room_id ORDER BY room_id"
        )
        for room_id, count in rows:
            log.warning(
                "room %s: %d subscription(s) now see public repositories only; an admin's"
                " !subscribe there makes them trusted again",
                room_id,
                count,
            )

    async def _fetchall(self, sql: str, params: Sequence[object] = ()) -> list[aiosqlite.Row]:
        """Reads take the lock too: on the shared connection they would otherwise see another
        coroutine's uncommitted rows (and could send a message that is then rolled back)."""
        async with self._lock, self._conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    # --- inbox -------------------------------------------------------------------------

    async def record_delivery(self, delivery: NewDelivery) -> bool:
        """Commit a delivery; False when its id or its (event, body) was seen before.

        Returns once the row is committed, together with those submitted meanwhile.
        """
        try:
            return await self._deliveries.submit(delivery)
        except GroupCommitClosed as exc:
            raise sqlite3.OperationalError(str(exc)) from None

    async def _insert_deliveries(self, batch: Sequence[NewDelivery]) -> list[bool | Exception]:
        """One autocommitted INSERT for the batch; row by row if a row is at fault, so that
        one bad row fails only its own request."""
        try:
            return [*await self._insert_rows(batch)]
        except sqlite3.OperationalError:
            raise  # busy, full, I/O: the database's trouble, not a row's; each request gets it
        except sqlite3.Error:
            if len(batch) == 1:
                raise
        results: list[bool | Exception] = []
        for delivery in batch:
            try:
                results.extend(await self._insert_rows([delivery]))
            except sqlite3.Error as exc:
                results.append(exc)
        return results

    async def _insert_rows(self, batch: Sequence[NewDelivery]) -> list[bool]:
        """The batch has no two rows with the same unique key (GroupCommit sees to it), so
        the ids RETURNING gives back are exactly the rows that were new."""
        if self._intake_db is None:
            raise sqlite3.OperationalError("store is not open for writing")
        rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(batch))
        params = [value for delivery in batch for value in delivery.row()]
        # Not the main connection's lock: one autocommitted statement on the intake
        # connection, which only GroupCommit's single writer task uses.
        async with self._write_turn(INTAKE_BUSY_S):
            inserted = await self._intake_db.execute_fetchall(
                f"INSERT OR IGNORE INTO deliveries ({_DELIVERY_COLUMNS}) VALUES {rows}"
                " RETURNING delivery_id",
                params,
            )
        new = {row[0] for row in inserted}
        return [delivery.delivery_id in new for delivery in batch]

    @asynccontextmanager
    async def _write_turn(self, wait_s: float) -> AsyncIterator[None]:
        """The write lock, or "busy" after `wait_s`: like SQLite's busy_timeout for the
        process's own writers, so the intake answers 503 rather than outwait the forge."""
        try:
            async with asyncio.timeout(wait_s):
                await self._write_lock.acquire()
        except TimeoutError:
            busy = f"database is busy: no write turn in {wait_s} s"
            raise sqlite3.OperationalError(busy) from None
        try:
            yield
        finally:
            self._write_lock.release()

    async def pending_deliveries(self, limit: int = 100) -> list[Delivery]:
        rows = await self._fetchall(
            "SELECT * FROM deliveries WHERE status = 'pending' ORDER BY id LIMIT ?", (limit,)
        )
        return [Delivery.from_row(row) for row in rows]

    async def recent_deliveries(self, limit: int = 20) -> list[Delivery]:
        """Newest first, whatever their status: answers "did Gitea call us?"."""
        rows = await self._fetchall("SELECT * FROM deliveries ORDER BY id DESC LIMIT ?", (limit,))
        return [Delivery.from_row(row) for row in rows]

    async def route_deliveries(self, routes: Sequence[Route], now: float | None = None) -> None:
        """Queue the deliveries' messages, hold them for rate-limited rooms, close them: all
        in one transaction, in the routes' order (which is the rooms' message order).

        Held events become one message later, built from all the events held for the pair,
        by `release_held`. `now` is the rate limiter's clock.
        """
        now = time.time() if now is None else now
        messages = [(r.delivery_row, m) for r in routes for m in r.messages]
        held = [(room, r.repo.lower(), r.delivery_row, now) for r in routes for room in r.hold]
        async with self._transaction() as conn:  # each statement is a trip: none for nothing
            if messages:
                await _queue(conn, messages, now)
            if held:
                await conn.executemany(
                    "INSERT INTO held (room_id, repo, delivery_row, held_at) VALUES (?, ?, ?, ?)",
                    held,
                )
            await conn.executemany(
                "UPDATE deliveries SET status = ?, note = ? WHERE id = ?",
                [(r.status, r.note, r.delivery_row) for r in routes],
            )

    # --- rate windows and held events --------------------------------------------------

    async def pair_states(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], PairState]:
        """The rate-window state of each (room, repo) pair, keyed (room, lower-case repo):
        forge names are case-insensitive, and the windows are kept that way."""
        wanted = {(room, repo.lower()) for room, repo in pairs}
        if not wanted:
            return {}
        repos = sorted({repo for _, repo in wanted})
        marks = ",".join("?" * len(repos))
        # One statement, so one snapshot: the sender marks a message sent and starts its
        # window in one transaction, and reads at different moments could see neither.
        rows = await self._fetchall(
            "SELECT 'window', room_id, repo, last_sent_at FROM rate_windows"
            f" WHERE repo IN ({marks}) UNION ALL"
            f" SELECT DISTINCT 'held', room_id, repo, NULL FROM held WHERE repo IN ({marks})"
            " UNION ALL SELECT DISTINCT 'queued', room_id, lower(repo), NULL FROM outbox"
            f" WHERE status = 'pending' AND lower(repo) IN ({marks})",
            repos * 3,
        )
        last = {(row[1], row[2]): row[3] for row in rows if row[0] == "window"}
        held = {(row[1], row[2]) for row in rows if row[0] == "held"}
        unsent = {(row[1], row[2]) for row in rows if row[0] == "queued"}
        return {key: PairState(last.get(key), key in held, key in unsent) for key in wanted}

    async def held_groups(self) -> list[HeldGroup]:
        rows = await self._fetchall(
            "SELECT h.room_id, h.repo, w.last_sent_at, COUNT(*) AS count, EXISTS (SELECT 1"
            " FROM outbox o WHERE o.status = 'pending' AND o.room_id = h.room_id"
            " AND lower(o.repo) = h.repo) AS queued FROM held h"
            " LEFT JOIN rate_windows w ON w.room_id = h.room_id AND w.repo = h.repo"
            " GROUP BY h.room_id, h.repo ORDER BY MIN(h.id)"
        )
        return [HeldGroup(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]

    async def held_deliveries(self, room_id: str, repo: str) -> list[tuple[int, Delivery]]:
        """The pair's held events in the order they were accepted, with their held-row ids."""
        rows = await self._fetchall(
            "SELECT h.id AS held_id, d.* FROM held h JOIN deliveries d ON d.id = h.delivery_row"
            " WHERE h.room_id = ? AND h.repo = ? ORDER BY h.id",
            (room_id, repo),
        )
        return [(row["held_id"], Delivery.from_row(row)) for row in rows]

    async def release_held(
        self,
        held_ids: Sequence[int],
        message: NewMessage | None,
        delivery_row: int | None,
        now: float,
    ) -> None:
        """Queue a coalesced message and drop exactly the held rows it covers, atomically.

        By id, so rows moved meanwhile (room upgrade) cannot be released a second time.
        """
        async with self._transaction() as conn:
            if message is not None:
                await _queue(conn, [(delivery_row, message)], now)
            await conn.executemany("DELETE FROM held WHERE id = ?", [(i,) for i in held_ids])

    # --- subscriptions -----------------------------------------------------------------

    async def subscribe(
        self,
        room_id: str,
        repo: str,
        created_by: str,
        branch_glob: str | None = None,
        events: str | None = None,
        *,
        trusted: bool = False,
    ) -> SubscribeResult:
        """Add a subscription, or replace the filters of the room's existing one.

        `trusted`: the author may see private repositories (core/trust.py). The row takes
        the author's trust whenever it changes, with one exception: an untrusted author
        re-running the same subscription leaves it as it is (UNCHANGED), so repeating a
        command cannot silently downgrade what an admin set up. A trusted author re-running
        it on a public-only row upgrades it (UPDATED, even with the same filters).
        """
        async with self._transaction() as conn:
            rows = await conn.execute_fetchall(
                "SELECT branch_glob, events, trusted FROM subscriptions"
                " WHERE room_id = ? AND repo = ?",
                (room_id, repo.lower()),
            )
            existing = next(iter(rows), None)
            if existing is not None:
                same_filters = tuple(existing)[:2] == (branch_glob, events)
                if same_filters and (not trusted or existing["trusted"]):
                    return SubscribeResult.UNCHANGED
            await conn.execute(
                "INSERT INTO subscriptions (room_id, repo, branch_glob, events, created_by,"
                " created_at, trusted) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (room_id, repo)"
                " DO UPDATE SET branch_glob = excluded.branch_glob, events = excluded.events,"
                " created_by = excluded.created_by, trusted = excluded.trusted",
                (room_id, repo.lower(), branch_glob, events, created_by, time.time(), trusted),
            )
            return SubscribeResult.ADDED if existing is None else SubscribeResult.UPDATED

    async def unsubscribe(self, room_id: str, repo: str) -> Unsubscribed | None:
        """Remove a subscription (None: there was none) and the events held for the room
        that no remaining subscription of it covers: "stops it" means no coalesced message
        a minute later. Under the routing lock, so a batch being routed cannot hold new
        ones for it afterwards."""
        async with self.routing(), self._transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM subscriptions WHERE room_id = ? AND repo = ?", (room_id, repo.lower())
            )
            if cursor.rowcount == 0:
                return None
            dropped = await conn.execute(
                "DELETE FROM held WHERE room_id = ? AND NOT EXISTS (SELECT 1 FROM subscriptions s"
                " WHERE s.room_id = held.room_id AND (s.repo = held.repo"
                " OR s.repo = substr(held.repo, 1, instr(held.repo, '/')) || '*'))",
                (room_id,),
            )
            return Unsubscribed(dropped.rowcount)

    async def revoke_trust(self, still_trusted: Callable[[str], bool]) -> dict[str, int]:
        """At start: trusted subscriptions whose author is no longer trusted (taken out of
        NOTIFIER_ADMINS / NOTIFIER_TRUSTED_USERS) become public only, logged once per room.
        Returns how many per room."""
        async with self._transaction() as conn:
            rows = await conn.execute_fetchall(
                "SELECT room_id, created_by FROM subscriptions WHERE trusted = 1"
            )
            revoked = [(room, author) for room, author in rows if not still_trusted(author)]
            await conn.executemany(
                "UPDATE subscriptions SET trusted = 0 WHERE trusted = 1 AND created_by = ?",
                [(author,) for author in {author for _, author in revoked}],
            )
        per_room = Counter(room for room, _ in revoked)
        for room_id, count in sorted(per_room.items()):
            log.warning(
                "room %s: %d subscription(s) now see public repositories only: their author is"
                " no longer in NOTIFIER_ADMINS or NOTIFIER_TRUSTED_USERS",
                room_id,
                count,
            )
        return dict(per_room)

    async def subscriptions(self, room_id: str | None = None) -> list[Subscription]:
        if room_id is None:
            rows = await self._fetchall("SELECT * FROM subscriptions ORDER BY repo, room_id")
        else:
            rows = await self._fetchall(
                "SELECT * FROM subscriptions WHERE room_id = ? ORDER BY repo", (room_id,)
            )
        return [_subscription(row) for row in rows]

    async def subscriptions_for_repos(
        self, repo_full_names: Iterable[str]
    ) -> dict[str, list[Subscription]]:
        """For each repository, the subscriptions covering it (by room), in one query."""
        specs = {name: specs_matching(name) for name in repo_full_names}
        wanted = sorted({spec for pair in specs.values() for spec in pair})
        found: list[Subscription] = []
        if wanted:
            rows = await self._fetchall(
                f"SELECT * FROM subscriptions WHERE repo IN ({','.join('?' * len(wanted))})"
                " ORDER BY room_id, repo",
                wanted,
            )
            found = [_subscription(row) for row in rows]
        return {name: [s for s in found if s.repo in pair] for name, pair in specs.items()}

    @asynccontextmanager
    async def routing(self) -> AsyncIterator[None]:
        """Held by the dispatcher from reading subscriptions or held events to writing what
        it decided, and by `move_room`: a room upgrade committed in between would leave the
        decision's messages in the old room."""
        async with self._routing_lock:
            yield

    async def move_room(self, old_room: str, new_room: str) -> int:
        """Move a room's subscriptions, held events and unsent messages (room upgrade).

        Where the new room already has a subscription to the same repository, the new
        room's own one wins. Returns how many subscriptions moved.
        """
        async with self.routing(), self._transaction() as conn:
            moved = await conn.execute(
                "UPDATE OR IGNORE subscriptions SET room_id = ? WHERE room_id = ?",
                (new_room, old_room),
            )
            await conn.execute("DELETE FROM subscriptions WHERE room_id = ?", (old_room,))
            await conn.execute(
                "UPDATE OR IGNORE rate_windows SET room_id = ? WHERE room_id = ?",
                (new_room, old_room),
            )
            await conn.execute("DELETE FROM rate_windows WHERE room_id = ?", (old_room,))
            for table, extra in (("held", ""), ("outbox", " AND status = 'pending'")):
                await conn.execute(
                    f"UPDATE {table} SET room_id = ? WHERE room_id = ?{extra}",
                    (new_room, old_room),
                )
            return moved.rowcount

    # --- outbox ------------------------------------------------------------------------

    async def due_messages(self, now: float, limit: int = 50) -> list[OutboxMessage]:
        """The oldest pending message of each room, if due: later ones wait to keep order."""
        rows = await self._fetchall(
            "SELECT * FROM outbox WHERE id IN (SELECT MIN(id) FROM outbox"
            " WHERE status = 'pending' GROUP BY room_id) AND next_attempt_at <= ?"
            " ORDER BY id LIMIT ?",
            (now, limit),
        )
        return [OutboxMessage.from_row(row) for row in rows]

    async def next_due_at(self) -> float | None:
        """When the next room's oldest row is due (rows behind a room's oldest never are)."""
        rows = await self._fetchall(
            "SELECT MIN(next_attempt_at) AS at FROM outbox WHERE id IN (SELECT MIN(id)"
            " FROM outbox WHERE status = 'pending' GROUP BY room_id)"
        )
        return rows[0]["at"]

    async def mark_sent(self, message_id: int, event_id: str, now: float | None = None) -> None:
        """Record the homeserver's event id; the pair's rate window starts now, when the room
        sees the message, not when it was queued (a backlog would otherwise let messages
        of one repository arrive closer together than the window)."""
        now = time.time() if now is None else now
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE outbox SET status = 'sent', event_id = ?, sent_at = ?,"
                " attempts = attempts + 1, last_error = NULL WHERE id = ?",
                (event_id, now, message_id),
            )
            await conn.execute(
                "INSERT INTO rate_windows (room_id, repo, last_sent_at) SELECT room_id,"
                " lower(repo), ? FROM outbox WHERE id = ? ON CONFLICT (room_id, repo)"
                " DO UPDATE SET last_sent_at = excluded.last_sent_at",
                (now, message_id),
            )

    async def mark_retry(self, message_id: int, retry_at: float, error: str) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?,"
                " last_error = ? WHERE id = ?",
                (retry_at, error, message_id),
            )

    async def shorten_message(self, message_id: int, body: str, html: str, error: str) -> None:
        """Replace a pending row's text by a shorter one (the homeserver refused its size);
        same row, same txn id, due as before: the next pass sends it."""
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE outbox SET body = ?, html = ?, attempts = attempts + 1, last_error = ?"
                " WHERE id = ? AND status = 'pending'",
                (body, html, error, message_id),
            )

    async def mark_failed(self, message_id: int, error: str) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1,"
                " last_error = ? WHERE id = ?",
                (error, message_id),
            )

    async def retry_now(self, now: float) -> int:
        """After the homeserver came back: retry rows waiting out a backoff, not a 429's wait."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending'"
                " AND next_attempt_at > ? AND coalesce(last_error, '') NOT LIKE 'M_LIMIT%'",
                (now, now),
            )
            return cursor.rowcount

    # --- retention ---------------------------------------------------------------------

    async def checkpoint_forever(self, every_s: float = CHECKPOINT_EVERY_S) -> None:
        """Copy the WAL into the database file from a connection of its own, periodically.

        With SQLite's automatic checkpoint, the commit that crosses 1,000 WAL pages does
        the copy and its fsync, so some request waits for it. A PASSIVE checkpoint here
        runs on another thread, takes no write lock and never waits for the daemon's
        writes; the automatic one is back on when this stops. When a round finds nothing
        new (idle), a TRUNCATE checkpoint empties the WAL file: it stays small after a burst.
        """
        await self._set_autocheckpoint(0)
        checkpointer = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await checkpointer.execute("PRAGMA busy_timeout=200")  # bounds TRUNCATE's wait
            await checkpointer.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            frames_before, failures = -1, 0
            while True:
                await asyncio.sleep(every_s)
                try:
                    frames_before = await self._checkpoint_round(checkpointer, frames_before)
                    failures = 0
                except sqlite3.Error as exc:  # busy, or the disk: the next round tries again
                    failures += 1
                    if failures % CHECKPOINT_LOG_EVERY == 1:  # not a line a second for ever
                        log.warning("WAL checkpoint failed (%d in a row): %s", failures, exc)
        finally:
            await checkpointer.close()
            await self._set_autocheckpoint(SQLITE_AUTOCHECKPOINT_PAGES)

    async def _checkpoint_round(self, checkpointer: aiosqlite.Connection, before: int) -> int:
        """One PASSIVE checkpoint; a TRUNCATE one when the WAL, all copied, did not grow since
        the last round. Returns the WAL's frame count for the next round to compare."""
        ((_, frames, copied),) = await checkpointer.execute_fetchall(
            "PRAGMA wal_checkpoint(PASSIVE)"
        )
        if frames <= 0 or frames != copied or frames != before:
            return int(frames)
        # Under the write lock: the store's own writers wait their turn rather than
        # SQLite's busy handler; everything is copied already, so this is only the truncate.
        async with self._write_lock:
            await checkpointer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return 0

    async def _set_autocheckpoint(self, pages: int) -> None:
        """On both writing connections (the setting is per connection)."""
        if self._intake_db is not None:
            await self._intake_db.execute(f"PRAGMA wal_autocheckpoint={pages}")
        if self._db is not None:
            async with self._lock:
                await self._conn.execute(f"PRAGMA wal_autocheckpoint={pages}")

    async def prune(self, older_than: float, batch: int = PRUNE_BATCH) -> tuple[int, int]:
        """Forget finished messages, deliveries (with their dedup keys), intake-log entries
        and handled command ids before a time, and drop the payloads of finished deliveries.

        Pending deliveries and those still held for a coalesced message are kept whatever
        their age. In transactions of at most `batch` rows, letting go of the write lock
        between them: a webhook waits for one batch (milliseconds), never for the whole
        prune (50,000 rows at once held the lock for 8 s, past the forge's 5 s timeout).
        Returns (messages, deliveries) removed.
        """
        await self._in_batches(PRUNE_INTAKE_LOG, older_than, batch)
        await self._in_batches(PRUNE_HANDLED_COMMANDS, older_than, batch)
        messages = await self._in_batches(PRUNE_OUTBOX, older_than, batch)
        deliveries = await self._in_batches(PRUNE_DELIVERIES, older_than, batch)
        await self._drop_payloads(batch)
        return messages, deliveries

    async def _in_batches(self, sql: str, older_than: float, batch: int) -> int:
        """Run a `... LIMIT ?` delete until it deletes less than a batch; rows deleted."""
        total = 0
        while True:
            async with self._transaction() as conn:
                cursor = await conn.execute(sql, (older_than, batch))
            total += cursor.rowcount
            if cursor.rowcount < batch:
                return total
            await asyncio.sleep(0)  # the write lock is free: whoever waits for it goes first

    async def _drop_payloads(self, batch: int) -> int:
        """Finished deliveries keep id, hash and result (dedup and `events` need nothing
        more); their payload, most of the file, goes. Never a pending delivery's, one held
        for a coalesced message or one with a message still to send (it may be re-rendered).
        Walks the table by id, so each row is read once per prune."""
        after, total = 0, 0
        while True:
            async with self._transaction() as conn:
                rows = list(await conn.execute_fetchall(DROP_PAYLOADS, (after, batch)))
            if not rows:
                return total
            total += len(rows)
            after = max(row[0] for row in rows)
            await asyncio.sleep(0)

    # --- health ------------------------------------------------------------------------

    async def failures_by_room(self) -> list[tuple[str, int, str]]:
        """Rooms with messages that failed for good: (room, count, latest reason)."""
        rows = await self._fetchall(
            "SELECT room_id, COUNT(*) AS n, (SELECT last_error FROM outbox o2 WHERE"
            " o2.room_id = o.room_id AND o2.status = 'failed' ORDER BY id DESC LIMIT 1) AS why"
            " FROM outbox o WHERE status = 'failed' GROUP BY room_id ORDER BY room_id"
        )
        return [(row["room_id"], row["n"], row["why"] or "") for row in rows]

    async def queue_stats(self, now: float) -> QueueStats:
        rows = await self._fetchall(
            "SELECT COUNT(*) AS pending, MIN(t) AS oldest FROM ("
            " SELECT received_at AS t FROM deliveries WHERE status = 'pending'"
            " UNION ALL SELECT created_at FROM outbox WHERE status = 'pending')"
        )
        counts = await self._fetchall(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE status = 'failed') AS failed,"
            " (SELECT COUNT(*) FROM held) AS held"
        )
        oldest = rows[0]["oldest"]
        age = max(0.0, now - oldest) if oldest is not None else None
        return QueueStats(rows[0]["pending"], age, counts[0]["failed"], counts[0]["held"])

    async def last_delivery_per_repo(self, public_only: bool = False) -> dict[str, float]:
        """`public_only`: what a public-only subscription may know of (not even the time of
        a private repository's delivery)."""
        visible = " AND private = 0" if public_only else ""
        rows = await self._fetchall(
            "SELECT lower(repo) AS repo, MAX(received_at) AS at FROM deliveries"
            f" WHERE repo IS NOT NULL{visible} GROUP BY lower(repo)"
        )
        return {row["repo"]: row["at"] for row in rows}

    async def send_errors_since(self, since: float) -> SendErrorSummary:
        """Failed attempts on messages queued since `since`, and the latest unresolved error.

        Derived from the outbox, which counts attempts: a sent row failed `attempts - 1`
        times, a pending or failed one `attempts` times.
        """
        totals = await self._fetchall(
            "SELECT COALESCE(SUM(attempts - (status = 'sent')), 0) AS errors,"
            " COALESCE(SUM(status = 'failed'), 0) AS failed FROM outbox WHERE created_at >= ?",
            (since,),
        )
        latest = await self._fetchall(
            "SELECT room_id, last_error FROM outbox WHERE created_at >= ?"
            " AND last_error IS NOT NULL ORDER BY id DESC LIMIT 1",
            (since,),
        )
        last = latest[0] if latest else None
        return SendErrorSummary(
            totals[0]["errors"],
            totals[0]["failed"],
            last["last_error"] if last else None,
            last["room_id"] if last else None,
        )

    async def accepted_at(self, message_id: int) -> float | None:
        """When the delivery behind a message was accepted (the newest one, if coalesced)."""
        rows = await self._fetchall(
            "SELECT d.received_at FROM outbox o JOIN deliveries d ON d.id = o.delivery_row"
            " WHERE o.id = ?",
            (message_id,),
        )
        return rows[0]["received_at"] if rows else None

    # --- intake log and event log ------------------------------------------------------

    def record_intake(self, entry: IntakeEntry) -> None:
        """Count a refused or duplicate request; written within a second, batched with others
        (no write transaction per request: see `core.intake_batch`)."""
        self._intake_batch.add(entry)

    async def log_intake(self, *entries: IntakeEntry) -> None:
        """Write intake entries in one transaction, keeping only the newest
        INTAKE_LOG_MAX_ROWS rows: a flood of junk must not grow the file between two
        hourly prunes (age is `prune`'s)."""
        async with self._transaction() as conn:
            await conn.executemany(
                "INSERT INTO intake_log (at, result, status, reason, delivery_id, event, repo,"
                " remote, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [astuple(entry) for entry in entries],
            )
            async with conn.execute("SELECT MAX(id) FROM intake_log") as cursor:
                row = await cursor.fetchone()
            newest = row[0] if row and row[0] is not None else 0
            await conn.execute(
                "DELETE FROM intake_log WHERE id <= ?", (newest - INTAKE_LOG_MAX_ROWS,)
            )

    async def intake_summary(self, result: str, since: float) -> IntakeSummary:
        """How many requests of `result` arrived since `since` (rows carry counts)."""
        await self._intake_batch.flush()
        rows = await self._fetchall(
            "SELECT SUM(count) AS n, MAX(id) AS last FROM intake_log WHERE result = ? AND at >= ?",
            (result, since),
        )
        if not rows[0]["n"]:
            return IntakeSummary(0)
        (last,) = await self._fetchall(
            "SELECT at, reason, remote FROM intake_log WHERE id = ?", (rows[0]["last"],)
        )
        return IntakeSummary(rows[0]["n"], last["at"], last["reason"], last["remote"])

    async def delivery_log(self, limit: int, repo: str | None = None) -> list[LoggedDelivery]:
        """The newest deliveries, with the rooms each was posted to (or held for)."""
        where, params = ("WHERE lower(repo) = ?", [repo.lower()]) if repo else ("", [])
        rows = await self._fetchall(
            "SELECT id, delivery_id, event, repo, received_at, status, note FROM deliveries"
            f" {where} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        rooms = await self._rooms_of([row["id"] for row in rows])
        return [
            LoggedDelivery(
                row["received_at"],
                row["delivery_id"],
                row["event"],
                row["repo"],
                row["status"],
                row["note"],
                tuple(rooms.get(row["id"], ())),
            )
            for row in rows
        ]

    async def _rooms_of(self, delivery_rows: Sequence[int]) -> dict[int, list[RoomPost]]:
        if not delivery_rows:
            return {}
        marks = ",".join("?" * len(delivery_rows))
        rows = await self._fetchall(
            f"SELECT delivery_row, room_id, status FROM outbox WHERE delivery_row IN ({marks})"
            f" UNION ALL SELECT delivery_row, room_id, 'held' FROM held"
            f" WHERE delivery_row IN ({marks}) ORDER BY 1, 2",
            [*delivery_rows, *delivery_rows],
        )
        rooms: dict[int, list[RoomPost]] = {}
        for row in rows:
            rooms.setdefault(row[0], []).append(RoomPost(row[1], row[2]))
        return rooms

    async def intake_log(self, limit: int, repo: str | None = None) -> list[IntakeEntry]:
        """The newest refused or duplicate requests (with `repo`: only that repo's duplicates)."""
        await self._intake_batch.flush()
        where, params = ("WHERE lower(repo) = ?", [repo.lower()]) if repo else ("", [])
        rows = await self._fetchall(
            "SELECT at, result, status, reason, delivery_id, event, repo, remote, count"
            " FROM intake_log"
            f" {where} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        return [IntakeEntry(*row) for row in rows]

    # --- Matrix sync state and commands -----------------------------------------------

    async def sync_value(self, key: str) -> str | None:
        """A stored value of the Matrix side (the sync position), None when there is none."""
        rows = await self._fetchall("SELECT value FROM sync_state WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def set_sync_value(self, key: str, value: str | None) -> None:
        """Store (or, with None, forget) a value of the Matrix side."""
        async with self._transaction() as conn:
            if value is None:
                await conn.execute("DELETE FROM sync_state WHERE key = ?", (key,))
            else:
                await conn.execute(
                    "INSERT INTO sync_state (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    async def claim_command(self, event_id: str, room_id: str, now: float) -> bool:
        """Record a command event as handled; False when it already was (skip it).

        Called before the command runs: a command runs at most once, even when a crash
        comes between running it and storing the sync position that covers it.
        """
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "INSERT OR IGNORE INTO handled_commands (event_id, room_id, handled_at)"
                " VALUES (?, ?, ?)",
                (event_id, room_id, now),
            )
            return cursor.rowcount == 1


async def _queue(
    conn: aiosqlite.Connection,
    messages: Sequence[tuple[int | None, NewMessage]],
    now: float,
) -> None:
    """Insert outbox rows, each with the delivery row it announces; in the given order."""
    await conn.executemany(
        "INSERT INTO outbox (delivery_row, room_id, repo, txn_id, body, html,"
        " created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(row, m.room_id, m.repo, _txn_id(), m.body, m.html, now, now) for row, m in messages],
    )


def _subscription(row: aiosqlite.Row) -> Subscription:
    """SQLite keeps `trusted` as 0/1; callers get a real bool."""
    return replace(Subscription.from_row(row), trusted=bool(row["trusted"]))


def _txn_id() -> str:
    """A fresh transaction id per message, stored with it so a resend after a crash reuses it."""
    return f"fn-{uuid.uuid4().hex}"


def _create_private(path: Path) -> None:
    """Create the database file 0600 whatever the umask (it holds every payload), and take
    group and other access from an existing one. SQLite gives -wal and -shm its mode."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    _make_private(path)


def _make_private(path: Path) -> None:
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except FileNotFoundError:
        pass
    except PermissionError:  # not ours, or immutable: SQLite's own checks come next
        log.warning("%s is readable by other users and cannot be made private", path)


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]
