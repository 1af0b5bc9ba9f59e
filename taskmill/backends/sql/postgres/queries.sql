-- Queries of the PostgreSQL backend. Times are timestamptz, JSON is jsonb. `{schema}` and
-- `{channel}` are replaced by the quoted names of the installation's schema and wake-up channel
-- when the backend is opened; every table is named with its schema, so a query also runs on an
-- application's own connection whatever its search_path. Parameters are psycopg's: %(name)s, and
-- %(name)b for the arrays of a batch (psycopg writes a long list many times faster in binary).

-- name: schema_exists
SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s);

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS {schema};

-- name: meta_exists
SELECT EXISTS (
    SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'taskmill_meta'
);

-- name: create_meta
CREATE TABLE IF NOT EXISTS {schema}.taskmill_meta (key text PRIMARY KEY, value text NOT NULL);

-- name: schema
CREATE TABLE IF NOT EXISTS {schema}.jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task text NOT NULL,
    queue text NOT NULL,
    state text NOT NULL CHECK (state IN ('scheduled', 'queued', 'running', 'succeeded', 'failed',
                                         'cancelled')),
    args jsonb NOT NULL,
    kwargs jsonb NOT NULL,
    priority bigint NOT NULL DEFAULT 0,
    attempts bigint NOT NULL DEFAULT 0,
    max_attempts bigint NOT NULL,
    retry jsonb NOT NULL,
    progress double precision NOT NULL DEFAULT 0,
    progress_message text,
    result jsonb,
    error jsonb,
    owner text,
    title text,
    parent bigint,
    result_url text,
    return_url text,
    unique_key text,
    created_at timestamptz NOT NULL,
    scheduled_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    iterations bigint NOT NULL DEFAULT 0,
    max_iterations bigint NOT NULL,
    state_data jsonb,
    timeout double precision,
    cancel_requested boolean NOT NULL DEFAULT false,
    cancel_reason text,
    claim_token text,
    worker text,
    lease_until timestamptz
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
-- Every job is updated a few times on its way through: vacuum and analyze often (above), or dead
-- rows pile up in the live jobs' indexes and the statistics lag behind the queue.
-- Partial indexes hold only the few live jobs, so claim, promote and rescue stay as fast with
-- millions of finished jobs in the table as with none. Every index is paid for by every insert
-- and state change: the others serve listings by state, queue, owner and parent (a task filter
-- goes through the state or queue one).
CREATE INDEX IF NOT EXISTS jobs_claim ON {schema}.jobs (priority DESC, scheduled_at, id)
    WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_due ON {schema}.jobs (scheduled_at) WHERE state = 'scheduled';
CREATE INDEX IF NOT EXISTS jobs_lease ON {schema}.jobs (lease_until) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS jobs_unique ON {schema}.jobs (unique_key)
    WHERE state IN ('scheduled', 'queued');
CREATE INDEX IF NOT EXISTS jobs_finished ON {schema}.jobs (finished_at)
    WHERE state IN ('succeeded', 'failed', 'cancelled');
CREATE INDEX IF NOT EXISTS jobs_state ON {schema}.jobs (state, id);
CREATE INDEX IF NOT EXISTS jobs_queue_state ON {schema}.jobs (queue, state);
CREATE INDEX IF NOT EXISTS jobs_owner ON {schema}.jobs (owner, id) WHERE owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_parent ON {schema}.jobs (parent) WHERE parent IS NOT NULL;
CREATE TABLE IF NOT EXISTS {schema}.job_logs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id bigint NOT NULL REFERENCES {schema}.jobs (id) ON DELETE CASCADE,
    attempt bigint NOT NULL,
    at timestamptz NOT NULL,
    level text NOT NULL,
    message text NOT NULL
);
CREATE INDEX IF NOT EXISTS job_logs_job ON {schema}.job_logs (job_id, id);
CREATE TABLE IF NOT EXISTS {schema}.queues (
    name text PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS {schema}.periodic (
    name text PRIMARY KEY,
    enabled boolean NOT NULL,
    last_slot timestamptz
);

-- name: schema_version
SELECT value FROM {schema}.taskmill_meta WHERE key = 'schema_version';

-- name: set_schema_version
INSERT INTO {schema}.taskmill_meta (key, value) VALUES ('schema_version', %s)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: lock_keys
-- Transaction-scoped advisory locks, taken in one order so two takers never deadlock.
SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k ORDER BY k;

-- name: insert_job
-- One job, and the wake-up, in one statement: on an autocommit connection it is one round trip,
-- and the NOTIFY is delivered when (and only if) the insert commits.
INSERT INTO {schema}.jobs (task, queue, state, args, kwargs, priority, max_attempts, retry, owner,
                           title, parent, result_url, return_url, unique_key, created_at,
                           scheduled_at, max_iterations, timeout)
VALUES (%s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s::jsonb, %s, %s, %s::bigint, %s, %s, %s, %s, %s,
        %s, %s::float8)
RETURNING id, pg_notify(%s, '');

-- name: insert_jobs
-- Many jobs in one statement; ids are drawn in the order given.
WITH ins AS (
    INSERT INTO {schema}.jobs (task, queue, state, args, kwargs, priority, max_attempts, retry,
                               owner, title, parent, result_url, return_url, unique_key,
                               created_at, scheduled_at, max_iterations, timeout)
    SELECT task, queue, state, args, kwargs, priority, max_attempts, retry, owner, title, parent,
           result_url, return_url, unique_key, created_at, scheduled_at, max_iterations, timeout
    FROM unnest(%(task)b::text[], %(queue)b::text[], %(state)b::text[], %(args)b::jsonb[],
                %(kwargs)b::jsonb[], %(priority)b::bigint[], %(max_attempts)b::bigint[],
                %(retry)b::jsonb[], %(owner)b::text[], %(title)b::text[], %(parent)b::bigint[],
                %(result_url)b::text[], %(return_url)b::text[], %(unique_key)b::text[],
                %(created_at)b::timestamptz[], %(scheduled_at)b::timestamptz[],
                %(max_iterations)b::bigint[], %(timeout)b::float8[])
         WITH ORDINALITY AS t(task, queue, state, args, kwargs, priority, max_attempts, retry,
                              owner, title, parent, result_url, return_url, unique_key,
                              created_at, scheduled_at, max_iterations, timeout, ord)
    ORDER BY ord
    RETURNING id
)
SELECT array_agg(id ORDER BY id), pg_notify(%(channel)s, '') FROM ins;

-- name: reserve_ids
-- Ids for a bulk insert by COPY, drawn from the jobs' own identity sequence (in increasing order;
-- other sessions may draw between them).
SELECT array(SELECT nextval(pg_get_serial_sequence('{schema}.jobs', 'id'))
             FROM generate_series(1, %s));

-- name: copy_jobs
-- A bulk insert's rows, each with an id from reserve_ids (COPY takes an identity column's values
-- as given). Then the statement `notify`, in the same transaction.
COPY {schema}.jobs (id, task, queue, state, args, kwargs, priority, max_attempts, retry, owner,
                    title, parent, result_url, return_url, unique_key, created_at, scheduled_at,
                    max_iterations, timeout) FROM STDIN;

-- name: find_unique
SELECT * FROM {schema}.jobs
WHERE unique_key = %s AND state IN ('scheduled', 'queued') ORDER BY id LIMIT 1;

-- name: reschedule
UPDATE {schema}.jobs SET scheduled_at = %s, state = %s
WHERE id = %s AND state IN ('scheduled', 'queued')
RETURNING *;

-- name: claim
-- `relaxed` (here and in heartbeat, set_progress, promote_due) commits this one transaction
-- without waiting for its WAL to reach the disk (the session stays synchronous_commit=on). A
-- crash can then forget only the claim, a lease extension, a progress figure or a promotion,
-- each of which is done again (the job is queued again and runs again: at least once); the next
-- durable commit, an enqueue's or a completion's, flushes them anyway. Enqueues, completions,
-- logs and operator actions stay durable.
-- A worker of some queues claims with this one, a worker of every queue with claim_all: no
-- "IS NULL OR" on a parameter, so the server can plan each once and reuse the plan.
WITH picked AS (
    SELECT id FROM {schema}.jobs
    WHERE state = 'queued' AND queue = ANY (%(queues)s::text[])
      AND NOT EXISTS (SELECT 1 FROM {schema}.queues q WHERE q.name = jobs.queue AND q.paused)
    ORDER BY priority DESC, scheduled_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
{query:claim_picked};

-- name: claim_all
WITH picked AS (
    SELECT id FROM {schema}.jobs
    WHERE state = 'queued'
      AND NOT EXISTS (SELECT 1 FROM {schema}.queues q WHERE q.name = jobs.queue AND q.paused)
    ORDER BY priority DESC, scheduled_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
{query:claim_picked};

-- name: claim_picked
-- The picked jobs to running, the claim's commit relaxed (as said above).
UPDATE {schema}.jobs AS j
SET state = 'running', attempts = j.attempts + 1, started_at = %(now)s, claim_token = %(token)s,
    worker = %(worker)s, lease_until = %(lease_until)s, cancel_requested = false
FROM picked, (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed
WHERE j.id = picked.id
RETURNING j.*;

-- name: apply
-- A batch of guarded writes in one statement: each row is written only while the stored job is
-- still in its expected state under its expected claim token.
UPDATE {schema}.jobs AS j
SET state = u.state, scheduled_at = u.scheduled_at, attempts = u.attempts,
    max_attempts = u.max_attempts, progress = u.progress, progress_message = u.progress_message,
    result = u.result, error = u.error, started_at = u.started_at, finished_at = u.finished_at,
    iterations = u.iterations, state_data = u.state_data, cancel_requested = u.cancel_requested,
    cancel_reason = u.cancel_reason, claim_token = u.claim_token, worker = u.worker,
    lease_until = u.lease_until
FROM unnest(%(id)b::bigint[], %(expect_state)b::text[], %(expect_token)b::text[],
            %(state)b::text[], %(scheduled_at)b::timestamptz[], %(attempts)b::bigint[],
            %(max_attempts)b::bigint[], %(progress)b::float8[], %(progress_message)b::text[],
            %(result)b::jsonb[], %(error)b::jsonb[], %(started_at)b::timestamptz[],
            %(finished_at)b::timestamptz[], %(iterations)b::bigint[], %(state_data)b::jsonb[],
            %(cancel_requested)b::boolean[], %(cancel_reason)b::text[], %(claim_token)b::text[],
            %(worker)b::text[], %(lease_until)b::timestamptz[])
     AS u(id, expect_state, expect_token, state, scheduled_at, attempts, max_attempts, progress,
          progress_message, result, error, started_at, finished_at, iterations, state_data,
          cancel_requested, cancel_reason, claim_token, worker, lease_until)
WHERE j.id = u.id AND j.state = u.expect_state
  AND j.claim_token IS NOT DISTINCT FROM u.expect_token
  -- A running job asked to cancel is not sent back to run by a write that never saw the request.
  AND NOT (j.state = 'running' AND j.cancel_requested AND NOT u.cancel_requested
           AND u.state IN ('scheduled', 'queued'))
RETURNING j.id;

-- name: apply_and_claim
-- `apply`, then `claim` for the free slots, in one statement: one round trip and one (durable)
-- commit for a worker that writes the jobs it finished and takes its next ones. Each part is
-- guarded as when alone; both see one snapshot, and the claim leaves the batch's jobs out.
WITH applied AS (
{query:apply}
), picked AS (
    SELECT id FROM {schema}.jobs
    WHERE state = 'queued' AND id <> ALL (%(id)b::bigint[])
      AND (%(queues)s::text[] IS NULL OR queue = ANY (%(queues)s::text[]))
      AND NOT EXISTS (SELECT 1 FROM {schema}.queues q WHERE q.name = jobs.queue AND q.paused)
    ORDER BY priority DESC, scheduled_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE {schema}.jobs AS j
    SET state = 'running', attempts = j.attempts + 1, started_at = %(now)s,
        claim_token = %(token)s, worker = %(claimer)s, lease_until = %(lease)s,
        cancel_requested = false
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.*
)
SELECT (SELECT array_agg(id) FROM applied) AS applied_ids, claimed.*
FROM (SELECT 1) AS one LEFT JOIN claimed ON true;

-- name: heartbeat
UPDATE {schema}.jobs AS j SET lease_until = %(lease_until)s
FROM unnest(%(ids)b::bigint[], %(tokens)b::text[]) AS l(id, token),
     (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed
WHERE j.id = l.id AND j.state = 'running' AND j.claim_token = l.token
RETURNING j.id;

-- name: set_progress
UPDATE {schema}.jobs SET progress = %s, progress_message = %s
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed
WHERE id = %s AND state = 'running' AND claim_token = %s;

-- name: insert_log
-- A line of a job deleted meanwhile has nowhere to go; it is dropped with its job.
INSERT INTO {schema}.job_logs (job_id, attempt, at, level, message)
SELECT l.job_id, l.attempt, l.at, l.level, l.message
FROM unnest(%(job_id)b::bigint[], %(attempt)b::bigint[], %(at)b::timestamptz[],
            %(level)b::text[], %(message)b::text[])
     WITH ORDINALITY AS l(job_id, attempt, at, level, message, ord)
WHERE EXISTS (SELECT 1 FROM {schema}.jobs WHERE jobs.id = l.job_id)
ORDER BY l.ord;

-- name: cancel_requests
SELECT id, cancel_reason FROM {schema}.jobs
WHERE id = ANY (%s::bigint[]) AND state = 'running' AND cancel_requested;

-- name: get
SELECT * FROM {schema}.jobs WHERE id = %s;

-- name: query
SELECT * FROM {schema}.jobs
WHERE (%(states)s::text[] IS NULL OR state = ANY (%(states)s::text[]))
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(task)s::text IS NULL OR task = %(task)s::text)
  AND (%(owner)s::text IS NULL OR owner = %(owner)s::text)
  AND (%(parent)s::bigint IS NULL OR parent = %(parent)s::bigint)
  AND (%(after)s::bigint IS NULL OR id < %(after)s::bigint)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: logs
SELECT job_id, attempt, at, level, message FROM {schema}.job_logs WHERE job_id = %s ORDER BY id;

-- name: logs_tail
SELECT job_id, attempt, at, level, message FROM (
    SELECT id, job_id, attempt, at, level, message FROM {schema}.job_logs
    WHERE job_id = %s ORDER BY id DESC LIMIT %s
) AS tail ORDER BY id;

-- name: delete_job
DELETE FROM {schema}.jobs WHERE id = %s AND state <> 'running';

-- name: delete_where
WITH doomed AS (
    SELECT id FROM {schema}.jobs
    WHERE state = ANY (%(states)s::text[]) AND state <> 'running'
      AND (%(task)s::text IS NULL OR task = %(task)s::text)
      AND (%(args)s::jsonb IS NULL OR args = %(args)s::jsonb)
      AND (%(kwargs)s::jsonb IS NULL OR kwargs = %(kwargs)s::jsonb)
      AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
    ORDER BY id
    LIMIT %(count)s::bigint
    FOR UPDATE
)
DELETE FROM {schema}.jobs AS j USING doomed WHERE j.id = doomed.id;

-- name: stats
SELECT queue, state, count(*) FROM {schema}.jobs GROUP BY queue, state;

-- name: promote_due
-- Promoters take turns (a transaction-scoped advisory lock, taken once a due job is found) and
-- skip rows someone else holds: a promotion under way elsewhere is waited for, so once this
-- returns every due job is queued (a burst worker then finds it); a row an application's open
-- transaction holds is skipped, never waited for. A row promoted by the one before is seen with
-- its new state once locked, and left out.
WITH due AS (
    SELECT id FROM {schema}.jobs
    WHERE state = 'scheduled' AND scheduled_at <= %(now)s
      AND (SELECT count(*) FROM (SELECT pg_advisory_xact_lock(%(turn)s)) AS turn) = 1
    ORDER BY scheduled_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {schema}.jobs AS j SET state = 'queued'
FROM due, (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed
WHERE j.id = due.id;

-- name: next_due
SELECT min(scheduled_at) FROM {schema}.jobs WHERE state = 'scheduled';

-- name: expired
SELECT * FROM {schema}.jobs
WHERE state = 'running' AND lease_until < %s ORDER BY lease_until LIMIT %s;

-- name: prune
WITH old AS (
    SELECT id FROM {schema}.jobs
    WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < %(before)s
    ORDER BY finished_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {schema}.jobs AS j USING old WHERE j.id = old.id;

-- name: set_paused
INSERT INTO {schema}.queues (name, paused) VALUES (%s, %s)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused;

-- name: paused
SELECT name FROM {schema}.queues WHERE paused;

-- name: periodic_states
SELECT name, enabled, last_slot FROM {schema}.periodic;

-- name: periodic_register
INSERT INTO {schema}.periodic (name, enabled, last_slot) VALUES (%s, true, %s)
ON CONFLICT (name) DO NOTHING;

-- name: periodic_enable
INSERT INTO {schema}.periodic AS p (name, enabled, last_slot) VALUES (%(name)s, true, %(slot)s)
ON CONFLICT (name) DO UPDATE SET enabled = true,
    last_slot = CASE WHEN p.enabled THEN p.last_slot ELSE excluded.last_slot END;

-- name: periodic_disable
INSERT INTO {schema}.periodic (name, enabled, last_slot) VALUES (%s, false, %s)
ON CONFLICT (name) DO UPDATE SET enabled = false;

-- name: periodic_fire
-- Compare-and-set on the last slot and the job's insert, in one statement: of two workers firing
-- the same slot, the second waits for the first's row lock, then finds the slot taken.
WITH advanced AS (
    UPDATE {schema}.periodic SET last_slot = %(slot)s
    WHERE name = %(name)s AND enabled AND (last_slot IS NULL OR last_slot < %(slot)s)
    RETURNING name
), ins AS (
    INSERT INTO {schema}.jobs (task, queue, state, args, kwargs, priority, max_attempts, retry,
                               owner, title, unique_key, created_at, scheduled_at,
                               max_iterations, timeout)
    SELECT %(task)s::text, %(queue)s::text, %(state)s::text, %(args)s::jsonb, %(kwargs)s::jsonb,
           %(priority)s::bigint, %(max_attempts)s::bigint, %(retry)s::jsonb, %(owner)s::text,
           %(title)s::text, %(unique_key)s::text, %(created_at)s::timestamptz,
           %(scheduled_at)s::timestamptz, %(max_iterations)s::bigint, %(timeout)s::float8
    FROM advanced
    RETURNING id
)
SELECT id, pg_notify(%(channel)s, '') FROM ins;

-- name: notify
SELECT pg_notify(%s, '');

-- name: listen
LISTEN {channel};
