-- The SQLite schema of schema version 2, kept to test the migration from it.
CREATE TABLE IF NOT EXISTS taskmill_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- ids are handles people keep: never reuse a deleted one
    task TEXT NOT NULL,
    queue TEXT NOT NULL,
    state TEXT NOT NULL,
    args TEXT NOT NULL,
    kwargs TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    retry TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    progress_message TEXT,
    result TEXT,
    error TEXT,
    owner TEXT,
    title TEXT,
    parent INTEGER,
    result_url TEXT,
    return_url TEXT,
    unique_key TEXT,
    created_at REAL NOT NULL,
    scheduled_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    iterations INTEGER NOT NULL DEFAULT 0,
    max_iterations INTEGER NOT NULL,
    state_data TEXT,
    timeout REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    cancel_reason TEXT,
    claim_token TEXT,
    worker TEXT,
    lease_until REAL
);
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (priority DESC, scheduled_at, id) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (scheduled_at) WHERE state = 'scheduled';
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (lease_until) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS jobs_unique ON jobs (unique_key) WHERE state IN ('scheduled', 'queued');
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_queue_state ON jobs (queue, state);
-- No (task, state) index: no query can use one (their filters are `:x IS NULL OR x = :x`), and
-- each index costs every insert and state change a page write. Schema 2 drops schema 1's.
DROP INDEX IF EXISTS jobs_task_state;
CREATE INDEX IF NOT EXISTS jobs_parent ON jobs (parent) WHERE parent IS NOT NULL;
CREATE TABLE IF NOT EXISTS job_logs (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    at REAL NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_logs_job ON job_logs (job_id, id);
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY, paused INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS periodic (
    name TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL,
    last_slot REAL
);

