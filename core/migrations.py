"""Numbered schema migrations, applied in order and recorded in `PRAGMA user_version`.

Append new steps; never edit a released one. Unique constraints do the deduplication,
so a retried or replayed delivery cannot become a second row, even across restarts.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: the inbox, subscriptions and the outbox.
    """
    CREATE TABLE deliveries (
        id            INTEGER PRIMARY KEY,
        delivery_id   TEXT NOT NULL UNIQUE,
        event         TEXT NOT NULL,
        body_sha256   TEXT NOT NULL,
        repo          TEXT,
        payload       TEXT NOT NULL,
        received_at   REAL NOT NULL,
        status        TEXT NOT NULL,
        note          TEXT,
        UNIQUE (event, body_sha256)
    );
    CREATE INDEX deliveries_pending ON deliveries (status) WHERE status = 'pending';
    CREATE INDEX deliveries_repo ON deliveries (repo, received_at);

    CREATE TABLE subscriptions (
        id            INTEGER PRIMARY KEY,
        room_id       TEXT NOT NULL,
        repo          TEXT NOT NULL,
        branch_glob   TEXT,
        events        TEXT,
        created_by    TEXT NOT NULL,
        created_at    REAL NOT NULL,
        UNIQUE (room_id, repo)
    );
    CREATE INDEX subscriptions_repo ON subscriptions (repo);

    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        delivery_row    INTEGER REFERENCES deliveries (id) ON DELETE SET NULL,
        room_id         TEXT NOT NULL,
        repo            TEXT NOT NULL,
        txn_id          TEXT NOT NULL UNIQUE,
        body            TEXT NOT NULL,
        html            TEXT NOT NULL,
        created_at      REAL NOT NULL,
        status          TEXT NOT NULL DEFAULT 'pending',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        event_id        TEXT,
        sent_at         REAL,
        last_error      TEXT
    );
    CREATE INDEX outbox_pending ON outbox (room_id, id) WHERE status = 'pending';
    """,
    # 2: per (room, repo) rate windows and the events held back for a coalesced message.
    """
    CREATE TABLE rate_windows (
        room_id       TEXT NOT NULL,
        repo          TEXT NOT NULL,
        last_sent_at  REAL NOT NULL,
        PRIMARY KEY (room_id, repo)
    );
    CREATE TABLE held (
        id            INTEGER PRIMARY KEY,
        room_id       TEXT NOT NULL,
        repo          TEXT NOT NULL,
        delivery_row  INTEGER NOT NULL REFERENCES deliveries (id),
        held_at       REAL NOT NULL
    );
    CREATE INDEX held_group ON held (room_id, repo, id);
    CREATE INDEX held_delivery ON held (delivery_row);
    CREATE INDEX outbox_done ON outbox (status, created_at) WHERE status != 'pending';
    CREATE INDEX outbox_delivery ON outbox (delivery_row);
    CREATE INDEX deliveries_age ON deliveries (received_at) WHERE status != 'pending';
    """,
    # 3: requests that did not become a new delivery (refusals and duplicates), so operators
    # can see wrong secrets and replays; bounded by count and pruned past the retention.
    """
    CREATE TABLE intake_log (
        id            INTEGER PRIMARY KEY,
        at            REAL NOT NULL,
        result        TEXT NOT NULL,
        status        INTEGER NOT NULL,
        reason        TEXT,
        delivery_id   TEXT,
        event         TEXT,
        repo          TEXT,
        remote        TEXT
    );
    CREATE INDEX intake_log_result ON intake_log (result, at);
    CREATE INDEX intake_log_at ON intake_log (at);
    """,
    # 4: trust and at-most-once. Deliveries carry their repository's visibility (unknown is
    # private); subscriptions whether their author is trusted (existing ones are not: they
    # become "public only", logged once per room by the store); the Matrix sync position and
    # the handled command event ids; refusals counted in batches; lower-case name indexes.
    """
    ALTER TABLE deliveries ADD COLUMN private INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE subscriptions ADD COLUMN trusted INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE sync_state (
        key           TEXT PRIMARY KEY,
        value         TEXT NOT NULL
    );
    CREATE TABLE handled_commands (
        event_id      TEXT PRIMARY KEY,
        room_id       TEXT NOT NULL,
        handled_at    REAL NOT NULL
    );
    CREATE INDEX handled_commands_at ON handled_commands (handled_at);
    ALTER TABLE intake_log ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX deliveries_repo_lower ON deliveries (lower(repo), received_at);
    CREATE INDEX outbox_pending_repo ON outbox (lower(repo)) WHERE status = 'pending';
    """,
)
# The first version whose subscriptions record trust: rows older than it become "public only".
TRUST_VERSION = 4
