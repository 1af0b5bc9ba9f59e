-- Queries of the SQLite backend. Times are UNIX seconds (REAL, UTC); JSON is TEXT.

-- name: schema
CREATE TABLE IF NOT EXISTS taskmill_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,  -- never reused: see id_floor below
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
-- stats() counts finished jobs by queue on this index; pending jobs, on the three above. Only
-- finished jobs: a job enters it once, when it ends, not at enqueue and again at each state.
-- Schema 3 replaces schema 2's jobs_queue_state, which held every job.
DROP INDEX IF EXISTS jobs_queue_state;
CREATE INDEX IF NOT EXISTS jobs_finished_queue ON jobs (queue, state)
    WHERE state IN ('succeeded', 'failed', 'cancelled');
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
-- Ids are handles people keep (a page, a parent link): a deleted job's id is never given to
-- another. SQLite's AUTOINCREMENT would ensure it with a write to sqlite_sequence at every
-- insert; instead the newest id ever deleted is kept here, written only when the newest job is
-- deleted, and insert_job takes one more than the larger of it and the largest id present.
-- (Files made by schema 1 or 2 keep their AUTOINCREMENT table; the rule holds on both.)
CREATE TABLE IF NOT EXISTS id_floor (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    last_id INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS jobs_newest_deleted AFTER DELETE ON jobs
WHEN NOT EXISTS (SELECT 1 FROM jobs WHERE id > OLD.id)
BEGIN
    INSERT INTO id_floor (one, last_id) VALUES (1, OLD.id)
    ON CONFLICT (one) DO UPDATE SET last_id = max(last_id, excluded.last_id);
END;

-- name: schema_version
SELECT value FROM taskmill_meta WHERE key = 'schema_version';

-- name: set_schema_version
INSERT INTO taskmill_meta (key, value) VALUES ('schema_version', ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: insert_job
INSERT INTO jobs (id, task, queue, state, args, kwargs, priority, attempts, max_attempts, retry,
                  progress, owner, title, parent, result_url, return_url, unique_key, created_at,
                  scheduled_at, iterations, max_iterations, timeout)
VALUES (({query:max_id}) + 1, ?, ?, ?, ?, ?, ?, 0, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?);

-- name: max_id
-- The largest id ever given: present, or deleted (see id_floor).
SELECT max(ifnull((SELECT max(id) FROM jobs), 0), ifnull((SELECT last_id FROM id_floor), 0));

-- name: seed_id_floor
-- From schema 2 (AUTOINCREMENT): the newest id it ever gave, deleted or not.
INSERT INTO id_floor (one, last_id) SELECT 1, seq FROM sqlite_sequence WHERE name = 'jobs'
ON CONFLICT (one) DO UPDATE SET last_id = max(last_id, excluded.last_id);

-- name: find_unique
SELECT * FROM jobs WHERE unique_key = ? AND state IN ('scheduled', 'queued') ORDER BY id LIMIT 1;

-- name: reschedule
UPDATE jobs SET scheduled_at = ?, state = ? WHERE id = ? RETURNING *;

-- name: claim
UPDATE jobs
SET state = 'running', attempts = attempts + 1, started_at = :now, claim_token = :token,
    worker = :worker, lease_until = :lease_until, cancel_requested = 0
WHERE id IN (
    SELECT id FROM jobs
    WHERE state = 'queued'
      AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
      AND queue NOT IN (SELECT name FROM queues WHERE paused = 1)
    ORDER BY priority DESC, scheduled_at, id
    LIMIT :limit
)
RETURNING *;

-- name: apply
UPDATE jobs
SET state = :state, scheduled_at = :scheduled_at, attempts = :attempts,
    max_attempts = :max_attempts, progress = :progress, progress_message = :progress_message,
    result = :result, error = :error, started_at = :started_at, finished_at = :finished_at,
    iterations = :iterations, state_data = :state_data, cancel_requested = :cancel_requested,
    cancel_reason = :cancel_reason, claim_token = :claim_token, worker = :worker,
    lease_until = :lease_until
WHERE id = :id AND state = :expect_state AND claim_token IS :expect_token
  -- A running job asked to cancel is not sent back to run by a write that never saw the request.
  AND NOT (state = 'running' AND cancel_requested = 1 AND :cancel_requested = 0
           AND :state IN ('scheduled', 'queued'));

-- name: heartbeat
UPDATE jobs SET lease_until = ? WHERE id = ? AND state = 'running' AND claim_token = ?;

-- name: set_progress
UPDATE jobs SET progress = ?, progress_message = ?
WHERE id = ? AND state = 'running' AND claim_token = ?;

-- name: insert_log
INSERT INTO job_logs (job_id, attempt, at, level, message) VALUES (?, ?, ?, ?, ?);

-- name: cancel_requests
SELECT id, cancel_reason FROM jobs
WHERE id IN (SELECT value FROM json_each(?)) AND state = 'running' AND cancel_requested = 1;

-- name: get
SELECT * FROM jobs WHERE id = ?;

-- name: query
SELECT * FROM jobs
WHERE (:states IS NULL OR state IN (SELECT value FROM json_each(:states)))
  AND (:queue IS NULL OR queue = :queue)
  AND (:task IS NULL OR task = :task)
  AND (:owner IS NULL OR owner = :owner)
  AND (:parent IS NULL OR parent = :parent)
  AND (:after IS NULL OR id < :after)
ORDER BY id DESC
LIMIT :limit;

-- name: logs
SELECT job_id, attempt, at, level, message FROM job_logs WHERE job_id = ? ORDER BY id;

-- name: logs_tail
SELECT * FROM (
    SELECT id, job_id, attempt, at, level, message FROM job_logs
    WHERE job_id = ? ORDER BY id DESC LIMIT ?
) ORDER BY id;

-- name: delete_job
DELETE FROM jobs WHERE id = ? AND state != 'running';

-- name: delete_where
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs
    WHERE state IN (SELECT value FROM json_each(:states)) AND state != 'running'
      AND (:task IS NULL OR task = :task)
      AND (:args IS NULL OR args = :args)
      AND (:kwargs IS NULL OR kwargs = :kwargs)
      AND (:queue IS NULL OR queue = :queue)
    ORDER BY id
    LIMIT :count
);

-- name: stats
-- Each part on its state's partial index (jobs_finished_queue, jobs_claim, jobs_due, jobs_lease):
-- finished jobs, however many, are counted from the index alone; a pending job costs a look-up
-- of its row (pending jobs are the backlog, not the history).
SELECT queue, state, count(*) FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled')
GROUP BY queue, state
UNION ALL SELECT queue, state, count(*) FROM jobs WHERE state = 'queued' GROUP BY queue
UNION ALL SELECT queue, state, count(*) FROM jobs WHERE state = 'scheduled' GROUP BY queue
UNION ALL SELECT queue, state, count(*) FROM jobs WHERE state = 'running' GROUP BY queue;

-- name: promote_due
UPDATE jobs SET state = 'queued'
WHERE id IN (
    SELECT id FROM jobs WHERE state = 'scheduled' AND scheduled_at <= ?
    ORDER BY scheduled_at LIMIT ?
);

-- name: next_due
SELECT min(scheduled_at) FROM jobs WHERE state = 'scheduled';

-- name: expired
SELECT * FROM jobs WHERE state = 'running' AND lease_until < ? ORDER BY lease_until LIMIT ?;

-- name: prune
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs
    WHERE finished_at < ? AND state IN ('succeeded', 'failed', 'cancelled')
    ORDER BY finished_at LIMIT ?
);

-- name: set_paused
INSERT INTO queues (name, paused) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused;

-- name: paused
SELECT name FROM queues WHERE paused = 1;

-- name: periodic_states
SELECT name, enabled, last_slot FROM periodic;

-- name: periodic_register
INSERT INTO periodic (name, enabled, last_slot) VALUES (?, 1, ?) ON CONFLICT (name) DO NOTHING;

-- name: periodic_enable
INSERT INTO periodic (name, enabled, last_slot) VALUES (:name, 1, :slot)
ON CONFLICT (name) DO UPDATE SET enabled = 1,
    last_slot = CASE WHEN periodic.enabled = 1 THEN periodic.last_slot ELSE :slot END;

-- name: periodic_disable
INSERT INTO periodic (name, enabled, last_slot) VALUES (?, 0, ?)
ON CONFLICT (name) DO UPDATE SET enabled = 0;

-- name: periodic_advance
UPDATE periodic SET last_slot = ?
WHERE name = ? AND enabled = 1 AND (last_slot IS NULL OR last_slot < ?);
