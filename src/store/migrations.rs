//! Versioned schema migrations, applied in order at start (tracked in
//! SQLite's `user_version`). Append new steps; never edit a shipped one.

use rusqlite::Connection;

use super::StoreError;

const STEPS: &[&str] = &[
    // 1: keys, upstreams, settings, audit log.
    r#"
    CREATE TABLE api_keys (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        hash          BLOB NOT NULL UNIQUE,
        prefix        TEXT NOT NULL,
        environment   TEXT NOT NULL,
        tier          TEXT NOT NULL,
        models        TEXT NOT NULL DEFAULT '[]',
        created_at    INTEGER NOT NULL,
        last_used_at  INTEGER,
        expires_at    INTEGER,
        revoked_at    INTEGER
    );
    CREATE TABLE upstreams (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL UNIQUE,
        base_url     TEXT NOT NULL,
        api_key_enc  BLOB,
        models       TEXT NOT NULL DEFAULT '[]',
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    );
    CREATE TABLE settings (
        name   TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    CREATE TABLE audit_log (
        seq        INTEGER PRIMARY KEY,
        at         INTEGER NOT NULL,
        actor      TEXT NOT NULL,
        source     TEXT NOT NULL,
        action     TEXT NOT NULL,
        target     TEXT NOT NULL,
        before     TEXT,
        after      TEXT,
        prev_hash  BLOB NOT NULL,
        hash       BLOB NOT NULL
    );
    "#,
    // 2: tiers, and per-key access policy.
    r#"
    CREATE TABLE tiers (
        name                    TEXT PRIMARY KEY,
        requests_per_min        INTEGER NOT NULL,
        tokens_per_min          INTEGER NOT NULL,
        max_concurrent_streams  INTEGER,
        daily_token_budget      INTEGER,
        created_at              INTEGER NOT NULL,
        updated_at              INTEGER NOT NULL
    );
    INSERT INTO tiers VALUES ('free', 10, 100000, NULL, NULL, 0, 0);
    INSERT INTO tiers VALUES ('developer', 100, 1000000, NULL, NULL, 0, 0);
    INSERT INTO tiers VALUES ('startup', 500, 5000000, NULL, NULL, 0, 0);
    ALTER TABLE api_keys ADD COLUMN allowed_domains TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE api_keys ADD COLUMN overrides TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE api_keys ADD COLUMN replaced_by TEXT;
    "#,
    // 3: request logs.
    r#"
    CREATE TABLE request_logs (
        id                 TEXT PRIMARY KEY,
        at                 INTEGER NOT NULL,
        key_id             TEXT,
        model              TEXT,
        upstream           TEXT,
        status             INTEGER NOT NULL,
        error_code         TEXT,
        latency_ms         INTEGER NOT NULL,
        ttfb_ms            INTEGER,
        prompt_tokens      INTEGER,
        completion_tokens  INTEGER,
        client_ip          TEXT,
        origin             TEXT,
        stream             INTEGER NOT NULL,
        safety             TEXT NOT NULL,
        body_enc           BLOB,
        key_version        INTEGER
    );
    CREATE INDEX request_logs_at ON request_logs (at, id);
    CREATE INDEX request_logs_key_at ON request_logs (key_id, at);
    "#,
    // 4: usage rollups (hourly and daily) and the audit chain's anchor.
    r#"
    CREATE TABLE usage_rollups (
        granularity        TEXT NOT NULL,
        bucket             INTEGER NOT NULL,
        key_id             TEXT NOT NULL,
        model              TEXT NOT NULL,
        requests           INTEGER NOT NULL,
        errors             INTEGER NOT NULL,
        prompt_tokens      INTEGER NOT NULL,
        completion_tokens  INTEGER NOT NULL,
        latency_sum_ms     INTEGER NOT NULL,
        latency_hist       BLOB NOT NULL,
        PRIMARY KEY (granularity, bucket, key_id, model)
    ) WITHOUT ROWID;
    CREATE TABLE audit_anchor (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        seq       INTEGER NOT NULL,
        hash      BLOB NOT NULL,
        pruned_at INTEGER NOT NULL
    );
    CREATE INDEX request_logs_key_version ON request_logs (key_version) WHERE key_version IS NOT NULL;
    "#,
    // 5: status page: uptime per component and day, incidents and their
    // updates, maintenance windows, notification subscribers.
    r#"
    CREATE TABLE uptime_days (
        component    TEXT NOT NULL,
        day          INTEGER NOT NULL,
        operational  INTEGER NOT NULL DEFAULT 0,
        degraded     INTEGER NOT NULL DEFAULT 0,
        partial      INTEGER NOT NULL DEFAULT 0,
        major        INTEGER NOT NULL DEFAULT 0,
        maintenance  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (component, day)
    ) WITHOUT ROWID;
    CREATE TABLE incidents (
        id              TEXT PRIMARY KEY,
        name            TEXT NOT NULL,
        status          TEXT NOT NULL,
        impact          TEXT NOT NULL,
        components      TEXT NOT NULL DEFAULT '[]',
        auto_component  TEXT,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        monitoring_at   INTEGER,
        resolved_at     INTEGER
    );
    CREATE INDEX incidents_created ON incidents (created_at);
    CREATE TABLE incident_updates (
        id           TEXT PRIMARY KEY,
        incident_id  TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
        status       TEXT NOT NULL,
        body         TEXT NOT NULL,
        created_at   INTEGER NOT NULL
    );
    CREATE INDEX incident_updates_incident ON incident_updates (incident_id, created_at);
    CREATE TABLE maintenances (
        id               TEXT PRIMARY KEY,
        name             TEXT NOT NULL,
        body             TEXT NOT NULL,
        status           TEXT NOT NULL,
        components       TEXT NOT NULL DEFAULT '[]',
        scheduled_for    INTEGER NOT NULL,
        scheduled_until  INTEGER NOT NULL,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        started_at       INTEGER,
        completed_at     INTEGER
    );
    CREATE TABLE status_subscribers (
        id          TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        target      TEXT NOT NULL,
        secret_enc  BLOB,
        created_at  INTEGER NOT NULL,
        UNIQUE (kind, target)
    );
    "#,
    // 6: the client's own request id beside the gateway's (records had
    // taken the client's as their key, so a reused one replaced a record).
    r#"
    ALTER TABLE request_logs ADD COLUMN client_request_id TEXT;
    CREATE INDEX request_logs_client_request_id ON request_logs (client_request_id)
        WHERE client_request_id IS NOT NULL;
    "#,
    // 7: safety logs that say nothing particular to their request (every
    // check passed or skipped, nothing fired) are stored once and referred
    // to: they were ~500 bytes of each record, more than its sealed body.
    r#"
    CREATE TABLE safety_texts (
        id   INTEGER PRIMARY KEY,
        json TEXT NOT NULL UNIQUE
    );
    ALTER TABLE request_logs ADD COLUMN safety_ref INTEGER REFERENCES safety_texts (id);
    "#,
    // 8: components whose automatic incident an admin resolved by hand while
    // the outage lasted (kept in memory only, they reopened after a restart).
    r#"
    CREATE TABLE status_hand_resolved (component TEXT PRIMARY KEY);
    "#,
    // 9: tokens charged to a key's limits without a usage report (the
    // reservation that stood), per record and summed in the rollups: a
    // restart seeded the daily budget from reported usage alone.
    r#"
    ALTER TABLE request_logs ADD COLUMN unreported_tokens INTEGER;
    ALTER TABLE usage_rollups ADD COLUMN unreported_tokens INTEGER NOT NULL DEFAULT 0;
    "#,
];

pub fn apply(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let current = usize::try_from(current).unwrap_or(0);
    if current > STEPS.len() {
        return Err(StoreError::Migration(format!(
            "the database is at schema version {current}, newer than this build knows ({}); \
             run a newer assisters",
            STEPS.len()
        )));
    }
    for (i, sql) in STEPS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied store migration");
    }
    Ok(())
}
