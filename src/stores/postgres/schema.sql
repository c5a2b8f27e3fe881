-- The postgres store's schema, version 3. @schema@ is replaced by the schema name (default aec).
-- Applied as one transaction by pg_schema.cc, under a transaction-level advisory lock: every
-- statement is idempotent, so a second aec process that waited on the lock changes nothing.
--
-- Every store operation is one of the functions below, called as one statement: one round trip,
-- one transaction, and expiry by the server's clock (clock_timestamp(), when p_at_ms is 0; tests
-- that move time by hand pass their own time instead). Wall-clock times (p_wall_ms) are the
-- caller's, for history only.
--
-- Lock order, in every function that writes: the key's row in keys first, then its leases,
-- queue places and executions. Functions that change a key's holders or history move its version
-- and NOTIFY channel @schema@ (notify(): the key and the first in its line; tell(): the key and
-- the waiters a release handed the slot to; delivered at commit), which wakes waiters.

SELECT pg_advisory_xact_lock(hashtext('aec schema @schema@'));

CREATE SCHEMA IF NOT EXISTS @schema@;

CREATE TABLE IF NOT EXISTS @schema@.meta(
  name text PRIMARY KEY,
  value text NOT NULL);

DO $$
BEGIN
  IF (SELECT value::int FROM @schema@.meta WHERE name = 'schema_version') > 3 THEN
    RAISE EXCEPTION 'aec schema @schema@ is newer than this aec (version 3): upgrade aec'
      USING ERRCODE = '55000';
  END IF;
END $$;

-- One row per key ever acquired. Never deleted: last_token is the fencing-token counter.
CREATE TABLE IF NOT EXISTS @schema@.keys(
  key text PRIMARY KEY,
  last_token bigint NOT NULL,
  version bigint NOT NULL);

-- Live leases, and expired ones not yet reaped. expires_at is by the server's clock.
CREATE TABLE IF NOT EXISTS @schema@.leases(
  key text NOT NULL,
  token bigint NOT NULL,
  exec_seq bigint NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY(key, token));
-- Version 3: the execution a release handed the lease to (hand_over()) until it takes it (its
-- next acquire); NULL for every other lease.
ALTER TABLE @schema@.leases ADD COLUMN IF NOT EXISTS handed_to text;

CREATE TABLE IF NOT EXISTS @schema@.executions(
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id text NOT NULL,
  key text NOT NULL,
  token bigint NOT NULL,
  status text NOT NULL,
  host text NOT NULL,
  pid bigint NOT NULL,
  "user" text NOT NULL,
  started_ms bigint NOT NULL,
  ended_ms bigint,
  exit_code int,
  labels text NOT NULL,
  reason text NOT NULL);
-- A key's history, and its successes (what `once` asks). Purge scans; it runs rarely.
CREATE INDEX IF NOT EXISTS executions_key ON @schema@.executions(key, seq);
CREATE INDEX IF NOT EXISTS executions_succeeded ON @schema@.executions(key, seq)
  WHERE status = 'succeeded';

-- Callers waiting in line for a key, first in line first (seq). A place lapses at expires_at
-- unless its waiter asks again.
CREATE TABLE IF NOT EXISTS @schema@.queue(
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  key text NOT NULL,
  execution_id text NOT NULL,
  expires_at timestamptz NOT NULL);
CREATE INDEX IF NOT EXISTS queue_key ON @schema@.queue(key, seq);
-- Version 3: the waiter's ask (its ttl, limit, once and execution), so a release can hand the
-- slot it frees to the first in line in its own transaction (hand_over()). NULL for a place
-- taken by an older aec's acquire: its waiter asks for itself.
ALTER TABLE @schema@.queue ADD COLUMN IF NOT EXISTS ask_ttl_ms bigint,
  ADD COLUMN IF NOT EXISTS ask_limit int, ADD COLUMN IF NOT EXISTS ask_once boolean,
  ADD COLUMN IF NOT EXISTS ask_host text, ADD COLUMN IF NOT EXISTS ask_pid bigint,
  ADD COLUMN IF NOT EXISTS ask_user text, ADD COLUMN IF NOT EXISTS ask_labels text;

-- Who listens for changes: a process waiting on a key (Store::wait), or following every key
-- (key '': a change feed, replicated aecd). notify() sends only when someone listens for the key
-- or waits in its line, because a NOTIFY serialises commits on a database-wide lock held through
-- the commit's flush. Rows lapse at expires_at; their listeners refresh them.
CREATE TABLE IF NOT EXISTS @schema@.listeners(
  key text NOT NULL,
  listener text NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY(key, listener));

-- The store's clock.
CREATE OR REPLACE FUNCTION @schema@.clock(p_at_ms bigint) RETURNS timestamptz
LANGUAGE sql VOLATILE AS $$
  SELECT CASE WHEN p_at_ms = 0 THEN clock_timestamp()
              ELSE to_timestamp(0) + p_at_ms * interval '1 millisecond' END
$$;

-- An execution as the JSON array the client reads: id, key, token, status, host, pid, user,
-- started_ms, ended_ms, exit_code, labels, reason. STABLE, as json_build_array is: an IMMUTABLE
-- wrapper would not be inlined, and a SQL function that is not inlined is planned at every call.
CREATE OR REPLACE FUNCTION @schema@.exec_json(e @schema@.executions) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT json_build_array(e.id, e.key, e.token, e.status, e.host, e.pid, e."user", e.started_ms,
                          e.ended_ms, e.exit_code, e.labels, e.reason)
$$;

-- Milliseconds from t until `at`, rounded up.
CREATE OR REPLACE FUNCTION @schema@.ms_until(at timestamptz, t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
  SELECT ceil(extract(epoch FROM at - t) * 1000)::bigint
$$;

-- The live leases of a key at t, oldest token first: [[execution, expires_in_ms], ...].
-- PL/pgSQL (not SQL) so its plan is cached per session.
CREATE OR REPLACE FUNCTION @schema@.holders(p_key text, t timestamptz) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v json;
BEGIN
  SELECT coalesce(json_agg(json_build_array(@schema@.exec_json(e),
                                            @schema@.ms_until(l.expires_at, t)) ORDER BY l.token),
                  '[]'::json) INTO v
    FROM @schema@.leases l JOIN @schema@.executions e ON e.seq = l.exec_seq
   WHERE l.key = p_key AND l.expires_at > t;
  RETURN v;
END $$;

-- Tells listeners (at commit) that the key changed: the payload is the key, then the execution
-- ids in p_named (each after a unit separator; '' for none), waiters whose turn may have come, so
-- a waiter parked in a store call wakes only then. Sends nothing when no one is named and no one
-- listens for the key, because a NOTIFY serialises commits on a database-wide lock held through
-- the commit's flush.
CREATE OR REPLACE FUNCTION @schema@.tell(p_key text, p_named text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF p_named = '' AND NOT EXISTS (
       SELECT 1 FROM @schema@.listeners w
        WHERE w.key IN (p_key, '') AND w.expires_at > clock_timestamp()) THEN
    RETURN;
  END IF;
  PERFORM pg_notify('@schema@', p_key || p_named);
END $$;

-- tell(), naming the first live place in the key's line (when there is one).
CREATE OR REPLACE FUNCTION @schema@.notify(p_key text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_first text;
BEGIN
  SELECT q.execution_id INTO v_first FROM @schema@.queue q
   WHERE q.key = p_key AND q.expires_at > clock_timestamp() ORDER BY q.seq LIMIT 1;
  PERFORM @schema@.tell(p_key, coalesce(chr(31) || v_first, ''));
END $$;

-- Registers (or refreshes) a listener of a key ('' for every key) for p_ttl_ms, and drops
-- listeners that lapsed a minute ago.
CREATE OR REPLACE FUNCTION @schema@.listen(p_key text, p_listener text, p_ttl_ms bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO @schema@.listeners AS w(key, listener, expires_at)
  VALUES (p_key, p_listener, clock_timestamp() + p_ttl_ms * interval '1 millisecond')
  ON CONFLICT (key, listener) DO UPDATE SET expires_at = excluded.expires_at;
  DELETE FROM @schema@.listeners w WHERE w.expires_at < clock_timestamp() - interval '1 minute';
END $$;

-- Deletes the key's leases expired at t and records their executions Lost. The caller holds the
-- key's row lock. Returns how many.
CREATE OR REPLACE FUNCTION @schema@.reap_key(p_key text, t timestamptz, p_wall_ms bigint)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  v_seqs bigint[];
BEGIN
  WITH gone AS (DELETE FROM @schema@.leases l WHERE l.key = p_key AND l.expires_at <= t
                RETURNING l.exec_seq)
  SELECT array_agg(gone.exec_seq) INTO v_seqs FROM gone;
  IF v_seqs IS NULL THEN
    RETURN 0;
  END IF;
  UPDATE @schema@.executions e
     SET status = 'lost', reason = 'lease expired', ended_ms = p_wall_ms
   WHERE e.seq = ANY(v_seqs) AND e.status = 'running';
  RETURN cardinality(v_seqs);
END $$;

-- Takes a free slot on a key, or answers busy (with the holders) or done (once). See
-- Store::acquire. A refused caller with nothing to record (no skipped execution, a fresh queue
-- place or none wanted) is answered from a plain read: no row lock, no WAL, no commit to flush.
-- A key with no lease and no place in line at all (the common case of distinct keys) skips that
-- first look: one probe of each, then straight to the locked pass (version 2: +12-15 % pairs/s).
-- Anyone else (a grant, a skip to record, a place to take) decides again under the key's row
-- lock, after reaping the key's expired leases: a lease renewed meanwhile is then seen live.
-- A caller that waited in line may find its lease already granted, handed over by the release
-- that freed the slot (hand_over()): it takes it, its ttl counted from now (a write: a lease its
-- holder was told of must outlive a crash).
CREATE OR REPLACE FUNCTION @schema@.acquire(
  p_key text, p_id text, p_ttl_ms bigint, p_limit int, p_once boolean, p_skipped boolean,
  p_queue boolean, p_queue_ttl_ms bigint, p_host text, p_pid bigint, p_user text,
  p_labels text, p_wall_ms bigint, p_at_ms bigint,
  OUT o_outcome text, OUT o_token bigint, OUT o_version bigint, OUT o_ahead int,
  OUT o_retry_ms bigint, OUT o_holders json, OUT o_done_by json)
LANGUAGE plpgsql AS $$
DECLARE
  t timestamptz;
  v_last bigint;
  v_live int;
  v_expired int;
  v_earliest timestamptz;
  v_own bigint;
  v_places int;
  v_lapsed int;
  v_mine bigint;
  v_mine_expires timestamptz;
  v_ahead_earliest timestamptz;
  v_free int;
  -- Recording a skip writes anyway, and so does (almost surely) an acquire of an idle key:
  -- no read-only first look for them.
  v_write boolean := p_skipped OR (NOT p_once
    AND NOT EXISTS (SELECT 1 FROM @schema@.leases l WHERE l.key = p_key)
    AND NOT EXISTS (SELECT 1 FROM @schema@.queue q WHERE q.key = p_key));
  v_changed boolean := false;
  v_half interval := p_queue_ttl_ms * interval '0.5 millisecond';
  v_first json;
BEGIN
  LOOP
    IF v_write THEN
      -- A grant must outlive a server crash (its token must never be issued again), whatever
      -- synchronous_commit the server or role defaults to.
      PERFORM set_config('synchronous_commit', 'on', true);
      SELECT k.last_token, k.version INTO v_last, o_version
        FROM @schema@.keys k WHERE k.key = p_key FOR UPDATE;
      IF NOT FOUND THEN
        INSERT INTO @schema@.keys AS k VALUES (p_key, 0, 0) ON CONFLICT (key) DO NOTHING;
        SELECT k.last_token, k.version INTO v_last, o_version
          FROM @schema@.keys k WHERE k.key = p_key FOR UPDATE;
      END IF;
    ELSE
      SELECT k.last_token, k.version INTO v_last, o_version
        FROM @schema@.keys k WHERE k.key = p_key;
    END IF;
    t := @schema@.clock(p_at_ms);
    v_last := coalesce(v_last, 0);
    o_version := coalesce(o_version, 0);
    SELECT count(*) FILTER (WHERE l.expires_at > t), min(l.expires_at) FILTER (WHERE l.expires_at > t),
           count(*) FILTER (WHERE l.expires_at <= t),
           max(l.token) FILTER (WHERE l.expires_at > t AND l.handed_to = p_id)
      INTO v_live, v_earliest, v_expired, v_own
      FROM @schema@.leases l WHERE l.key = p_key;
    IF v_own IS NOT NULL THEN
      -- Handed over while this caller waited in line: take it, under the key's row lock.
      IF NOT v_write THEN
        v_write := true;
        CONTINUE;
      END IF;
      UPDATE @schema@.leases l
         SET expires_at = t + p_ttl_ms * interval '1 millisecond', handed_to = NULL
       WHERE l.key = p_key AND l.token = v_own;
      o_outcome := 'granted';
      o_token := v_own;
      o_ahead := 0;
      o_retry_ms := 0;
      o_holders := '[]'::json;
      RETURN;
    END IF;
    IF v_write AND v_expired > 0 THEN
      v_changed := @schema@.reap_key(p_key, t, p_wall_ms) > 0;
      SELECT count(*), min(l.expires_at) INTO v_live, v_earliest
        FROM @schema@.leases l WHERE l.key = p_key AND l.expires_at > t;
    END IF;
    SELECT count(*), count(*) FILTER (WHERE q.expires_at <= t),
           min(q.seq) FILTER (WHERE q.execution_id = p_id AND q.expires_at > t)
      INTO v_places, v_lapsed, v_mine
      FROM @schema@.queue q WHERE q.key = p_key;
    o_ahead := 0;
    v_ahead_earliest := NULL;
    v_mine_expires := NULL;
    IF v_places > 0 THEN
      IF v_write AND v_lapsed > 0 THEN
        DELETE FROM @schema@.queue q WHERE q.key = p_key AND q.expires_at <= t;
      END IF;
      IF v_mine IS NOT NULL THEN
        SELECT q.expires_at INTO v_mine_expires FROM @schema@.queue q WHERE q.seq = v_mine;
      END IF;
      SELECT count(*), min(q.expires_at) INTO o_ahead, v_ahead_earliest FROM @schema@.queue q
       WHERE q.key = p_key AND q.expires_at > t AND (v_mine IS NULL OR q.seq < v_mine);
    END IF;
    o_done_by := NULL;
    IF p_once THEN
      SELECT @schema@.exec_json(e) INTO o_done_by FROM @schema@.executions e
       WHERE e.key = p_key AND e.status = 'succeeded' ORDER BY e.seq DESC LIMIT 1;
    END IF;
    v_free := p_limit - v_live;
    IF o_done_by IS NOT NULL THEN
      o_outcome := 'done';
    ELSIF v_free > 0 AND o_ahead < v_free THEN
      o_outcome := 'granted';
    ELSE
      o_outcome := 'busy';
    END IF;
    EXIT WHEN v_write;
    EXIT WHEN o_outcome <> 'granted'
          AND (o_outcome = 'done' OR NOT p_queue
               OR (v_mine IS NOT NULL AND v_mine_expires - t > v_half));
    v_write := true;
  END LOOP;

  o_token := 0;
  o_retry_ms := 0;
  o_holders := '[]'::json;
  IF o_outcome = 'granted' THEN
    IF v_mine IS NOT NULL THEN
      DELETE FROM @schema@.queue q WHERE q.key = p_key AND q.execution_id = p_id;
    END IF;
    o_ahead := 0;
    o_token := v_last + 1;
    WITH e AS (
      INSERT INTO @schema@.executions(id, key, token, status, host, pid, "user", started_ms,
                                      labels, reason)
      VALUES (p_id, p_key, o_token, 'running', p_host, p_pid, p_user, p_wall_ms, p_labels, '')
      RETURNING seq)
    INSERT INTO @schema@.leases(key, token, exec_seq, expires_at)
    SELECT p_key, o_token, e.seq, t + p_ttl_ms * interval '1 millisecond' FROM e;
    UPDATE @schema@.keys k SET last_token = o_token, version = k.version + 1 WHERE k.key = p_key
    RETURNING k.version INTO o_version;
    IF v_free > 1 THEN
      PERFORM @schema@.notify(p_key);  -- the next in line may go too
    ELSE
      PERFORM @schema@.tell(p_key, '');  -- full now: no one's turn has come
    END IF;
    RETURN;
  END IF;
  IF o_outcome = 'busy' THEN
    o_holders := @schema@.holders(p_key, t);
    o_retry_ms := @schema@.ms_until(CASE WHEN v_free <= 0 THEN v_earliest
                                         ELSE v_ahead_earliest END, t);
    IF v_write AND p_queue THEN
      IF v_mine IS NULL THEN
        INSERT INTO @schema@.queue(key, execution_id, expires_at, ask_ttl_ms, ask_limit, ask_once,
                                   ask_host, ask_pid, ask_user, ask_labels)
        VALUES (p_key, p_id, t + p_queue_ttl_ms * interval '1 millisecond', p_ttl_ms, p_limit,
                p_once, p_host, p_pid, p_user, p_labels);
      ELSIF v_mine_expires - t <= v_half THEN
        UPDATE @schema@.queue q SET expires_at = t + p_queue_ttl_ms * interval '1 millisecond'
         WHERE q.seq = v_mine;
      END IF;
    END IF;
  END IF;
  IF p_skipped THEN
    -- The reason reads as skip_reason() in src/core/store_checks.cc writes it.
    v_first := o_holders -> 0 -> 0;
    INSERT INTO @schema@.executions(id, key, token, status, host, pid, "user", started_ms,
                                    ended_ms, labels, reason)
    VALUES (p_id, p_key, 0, 'skipped', p_host, p_pid, p_user, p_wall_ms, p_wall_ms, p_labels,
            CASE WHEN o_outcome = 'done'
                   THEN format('done: execution %s succeeded', o_done_by ->> 0)
                 WHEN v_first IS NULL
                   THEN format('busy: %s caller(s) waiting in line', o_ahead)
                 ELSE format('busy: held by execution %s (token %s) on %s pid %s',
                             v_first ->> 0, v_first ->> 2, v_first ->> 4, v_first ->> 5)
            END);
    v_changed := true;
  END IF;
  IF v_changed THEN
    UPDATE @schema@.keys k SET version = k.version + 1 WHERE k.key = p_key
    RETURNING k.version INTO o_version;
    PERFORM @schema@.notify(p_key);
  END IF;
END $$;

-- Hands the slots a release freed to the first places in the key's line, in the releasing
-- transaction, so the next waiter's grant needs no look of its own: the notification names the
-- waiter, whose next ask (acquire) takes the lease and starts its ttl. Until then the lease
-- lasts only as long as the place would have (a waiter that died in line holds the key no longer
-- than its place did). Only places that carry their ask (version 3) are handed a lease, at most
-- 16 per call, first in line first, each by its own limit and once. Returns the execution ids to
-- name in the notification, each after a unit separator: those handed a lease, then the first
-- place left unless the key is full for it (a place without an ask, or once with a success:
-- its turn may have come). The caller holds the key's row lock.
CREATE OR REPLACE FUNCTION @schema@.hand_over(p_key text, t timestamptz, p_wall_ms bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  q record;
  v_named text := '';
  v_granted int := 0;
  v_live int := -1;
  v_last bigint;
BEGIN
  FOR q IN SELECT * FROM @schema@.queue p WHERE p.key = p_key AND p.expires_at > t
            ORDER BY p.seq LIMIT 17 LOOP
    IF v_live < 0 THEN
      SELECT count(*) INTO v_live FROM @schema@.leases l WHERE l.key = p_key AND l.expires_at > t;
      SELECT k.last_token INTO v_last FROM @schema@.keys k WHERE k.key = p_key;
    END IF;
    IF q.ask_ttl_ms IS NOT NULL AND v_live >= q.ask_limit THEN
      EXIT;  -- full for the first in line: no one's turn has come
    END IF;
    IF q.ask_ttl_ms IS NULL OR v_granted = 16
       OR (q.ask_once AND EXISTS (SELECT 1 FROM @schema@.executions e
                                   WHERE e.key = p_key AND e.status = 'succeeded')) THEN
      v_named := v_named || chr(31) || q.execution_id;  -- it asks for itself
      EXIT;
    END IF;
    IF v_granted = 0 THEN
      PERFORM set_config('synchronous_commit', 'on', true);  -- a grant must outlive a crash
    END IF;
    v_last := v_last + 1;
    WITH e AS (
      INSERT INTO @schema@.executions(id, key, token, status, host, pid, "user", started_ms,
                                      labels, reason)
      VALUES (q.execution_id, p_key, v_last, 'running', q.ask_host, q.ask_pid, q.ask_user,
              p_wall_ms, q.ask_labels, '')
      RETURNING seq)
    INSERT INTO @schema@.leases(key, token, exec_seq, expires_at, handed_to)
    SELECT p_key, v_last, e.seq,
           least(t + q.ask_ttl_ms * interval '1 millisecond', q.expires_at), q.execution_id
      FROM e;
    DELETE FROM @schema@.queue p WHERE p.seq = q.seq;
    v_granted := v_granted + 1;
    v_live := v_live + 1;
    v_named := v_named || chr(31) || q.execution_id;
  END LOOP;
  IF v_granted > 0 THEN
    UPDATE @schema@.keys k SET last_token = v_last WHERE k.key = p_key;
  END IF;
  RETURN v_named;
END $$;

-- Extends a live lease to p_ttl_ms from now. False when the token holds no live lease: an
-- expired lease is never revived, even before it is reaped.
CREATE OR REPLACE FUNCTION @schema@.renew(p_key text, p_token bigint, p_ttl_ms bigint,
                                          p_at_ms bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  t timestamptz := @schema@.clock(p_at_ms);
BEGIN
  -- A renewal the holder was told of must not be lost in a crash (another could take the key
  -- while the holder still runs).
  PERFORM set_config('synchronous_commit', 'on', true);
  UPDATE @schema@.leases l SET expires_at = t + p_ttl_ms * interval '1 millisecond'
   WHERE l.key = p_key AND l.token = p_token AND l.expires_at > t;
  RETURN FOUND;
END $$;

-- Frees a live lease and records the outcome; for a token without a live lease, records its
-- execution Lost (if still running) and frees nothing else. True when the lease was live.
CREATE OR REPLACE FUNCTION @schema@.release(p_key text, p_token bigint, p_status text,
                                            p_exit int, p_reason text, p_wall_ms bigint,
                                            p_at_ms bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  t timestamptz;
  v_seq bigint;
BEGIN
  UPDATE @schema@.keys k SET version = k.version + 1 WHERE k.key = p_key;
  IF NOT FOUND THEN
    RETURN false;  -- a key never seen
  END IF;
  t := @schema@.clock(p_at_ms);
  WITH gone AS (DELETE FROM @schema@.leases l
                 WHERE l.key = p_key AND l.token = p_token AND l.expires_at > t
                RETURNING l.exec_seq),
       ended AS (UPDATE @schema@.executions e
                    SET status = p_status, exit_code = p_exit, reason = p_reason,
                        ended_ms = p_wall_ms
                   FROM gone WHERE e.seq = gone.exec_seq AND e.status = 'running')
  SELECT gone.exec_seq INTO v_seq FROM gone;
  IF v_seq IS NULL THEN
    PERFORM @schema@.reap_key(p_key, t, p_wall_ms);
    UPDATE @schema@.executions e
       SET status = 'lost', exit_code = p_exit, reason = 'lease expired', ended_ms = p_wall_ms
     WHERE e.key = p_key AND e.token = p_token AND e.status = 'running';
  END IF;
  PERFORM @schema@.tell(p_key, @schema@.hand_over(p_key, t, p_wall_ms));
  RETURN v_seq IS NOT NULL;
END $$;

-- release() then acquire() for the next caller in line, in one transaction.
CREATE OR REPLACE FUNCTION @schema@.release_and_acquire(
  p_key text, p_token bigint, p_status text, p_exit int, p_reason text,
  p_id text, p_ttl_ms bigint, p_limit int, p_once boolean, p_skipped boolean,
  p_queue boolean, p_queue_ttl_ms bigint, p_host text, p_pid bigint, p_user text,
  p_labels text, p_wall_ms bigint, p_at_ms bigint,
  OUT o_released boolean, OUT o_outcome text, OUT o_token bigint, OUT o_version bigint,
  OUT o_ahead int, OUT o_retry_ms bigint, OUT o_holders json, OUT o_done_by json)
LANGUAGE plpgsql AS $$
BEGIN
  o_released := @schema@.release(p_key, p_token, p_status, p_exit, p_reason, p_wall_ms,
                                 p_at_ms);
  SELECT a.o_outcome, a.o_token, a.o_version, a.o_ahead, a.o_retry_ms, a.o_holders, a.o_done_by
    INTO o_outcome, o_token, o_version, o_ahead, o_retry_ms, o_holders, o_done_by
    FROM @schema@.acquire(p_key, p_id, p_ttl_ms, p_limit, p_once, p_skipped, p_queue,
                          p_queue_ttl_ms, p_host, p_pid, p_user, p_labels, p_wall_ms,
                          p_at_ms) a;
END $$;

-- A key's state, from one snapshot (STABLE). Expired leases are left out, not reaped.
CREATE OR REPLACE FUNCTION @schema@.get_key(
  p_key text, p_at_ms bigint,
  OUT o_last_token bigint, OUT o_version bigint, OUT o_holders json, OUT o_queue json,
  OUT o_last_ended json)
LANGUAGE plpgsql STABLE AS $$
DECLARE
  t timestamptz := @schema@.clock(p_at_ms);
BEGIN
  SELECT k.last_token, k.version INTO o_last_token, o_version
    FROM @schema@.keys k WHERE k.key = p_key;
  IF NOT FOUND THEN
    o_last_token := 0;
    o_version := 0;
    o_holders := '[]'::json;
    o_queue := '[]'::json;
    RETURN;
  END IF;
  o_holders := @schema@.holders(p_key, t);
  SELECT coalesce(json_agg(q.execution_id ORDER BY q.seq), '[]'::json) INTO o_queue
    FROM @schema@.queue q WHERE q.key = p_key AND q.expires_at > t;
  SELECT @schema@.exec_json(e) INTO o_last_ended FROM @schema@.executions e
   WHERE e.key = p_key AND e.status <> 'running' ORDER BY e.seq DESC LIMIT 1;
END $$;

-- Frees every live lease of a key, recording their executions Cancelled with p_reason.
CREATE OR REPLACE FUNCTION @schema@.force_release(
  p_key text, p_reason text, p_wall_ms bigint, p_at_ms bigint,
  OUT o_version bigint, OUT o_released json)
LANGUAGE plpgsql AS $$
DECLARE
  t timestamptz;
  v_reaped int;
  v_seqs bigint[];
BEGIN
  o_released := '[]'::json;
  SELECT k.version INTO o_version FROM @schema@.keys k WHERE k.key = p_key FOR UPDATE;
  IF NOT FOUND THEN
    o_version := 0;
    RETURN;
  END IF;
  t := @schema@.clock(p_at_ms);
  v_reaped := @schema@.reap_key(p_key, t, p_wall_ms);
  WITH gone AS (DELETE FROM @schema@.leases l WHERE l.key = p_key RETURNING l.exec_seq)
  SELECT array_agg(gone.exec_seq) INTO v_seqs FROM gone;
  IF v_seqs IS NOT NULL THEN
    UPDATE @schema@.executions e
       SET status = 'cancelled', reason = p_reason, ended_ms = p_wall_ms
     WHERE e.seq = ANY(v_seqs) AND e.status = 'running';
    SELECT json_agg(@schema@.exec_json(e) ORDER BY e.token) INTO o_released
      FROM @schema@.executions e WHERE e.seq = ANY(v_seqs);
  END IF;
  IF v_reaped > 0 OR v_seqs IS NOT NULL THEN
    UPDATE @schema@.keys k SET version = k.version + 1 WHERE k.key = p_key
    RETURNING k.version INTO o_version;
    PERFORM @schema@.notify(p_key);
  END IF;
END $$;

-- Gives up a caller's queue place, or the lease a release handed over to it that it has not
-- taken (it leaves before it learned of the grant: the lease is freed and its execution recorded
-- cancelled). True when it had either.
CREATE OR REPLACE FUNCTION @schema@.leave_queue(p_key text, p_id text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_seq bigint;
BEGIN
  PERFORM 1 FROM @schema@.keys k WHERE k.key = p_key FOR UPDATE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  DELETE FROM @schema@.queue q WHERE q.key = p_key AND q.execution_id = p_id;
  IF NOT FOUND THEN
    WITH gone AS (DELETE FROM @schema@.leases l WHERE l.key = p_key AND l.handed_to = p_id
                  RETURNING l.exec_seq)
    UPDATE @schema@.executions e
       SET status = 'cancelled', reason = 'left the line before taking the lease handed to it',
           ended_ms = (extract(epoch FROM clock_timestamp()) * 1000)::bigint
      FROM gone WHERE e.seq = gone.exec_seq AND e.status = 'running'
    RETURNING e.seq INTO v_seq;
    IF v_seq IS NULL THEN
      RETURN false;
    END IF;
  END IF;
  -- The next in line may be free to go now: wake the waiters.
  UPDATE @schema@.keys k SET version = k.version + 1 WHERE k.key = p_key;
  PERFORM @schema@.notify(p_key);
  RETURN true;
END $$;

-- Reaps expired leases and lapsed queue places of up to p_limit keys (in key order, so two
-- purges never deadlock). Returns the leases reaped; 0 when nothing was left.
CREATE OR REPLACE FUNCTION @schema@.reap_some(p_limit int, p_wall_ms bigint, p_at_ms bigint,
                                              OUT o_keys int, OUT o_reaped int)
LANGUAGE plpgsql AS $$
DECLARE
  v_key text;
  t timestamptz := @schema@.clock(p_at_ms);
  n int;
BEGIN
  o_keys := 0;
  o_reaped := 0;
  FOR v_key IN
    SELECT s.key FROM (SELECT l.key FROM @schema@.leases l WHERE l.expires_at <= t
                       UNION SELECT q.key FROM @schema@.queue q WHERE q.expires_at <= t) s
     ORDER BY s.key LIMIT p_limit
  LOOP
    PERFORM 1 FROM @schema@.keys k WHERE k.key = v_key FOR UPDATE;
    n := @schema@.reap_key(v_key, t, p_wall_ms);
    DELETE FROM @schema@.queue q WHERE q.key = v_key AND q.expires_at <= t;
    IF n > 0 THEN
      UPDATE @schema@.keys k SET version = k.version + 1 WHERE k.key = v_key;
      PERFORM @schema@.notify(v_key);
    END IF;
    o_keys := o_keys + 1;
    o_reaped := o_reaped + n;
  END LOOP;
END $$;

-- Deletes up to p_batch ended executions older than p_cutoff_ms (wall clock) with one of the
-- statuses, and moves the versions of their keys. Returns how many were deleted.
CREATE OR REPLACE FUNCTION @schema@.purge_batch(p_cutoff_ms bigint, p_statuses text[],
                                                p_batch int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
  v_keys text[];
  v_key text;
  n int;
BEGIN
  WITH doomed AS (SELECT e.seq FROM @schema@.executions e
                   WHERE e.ended_ms IS NOT NULL AND e.ended_ms < p_cutoff_ms
                     AND e.status <> 'running' AND e.status = ANY(p_statuses)
                   ORDER BY e.seq LIMIT p_batch),
       gone AS (DELETE FROM @schema@.executions e USING doomed WHERE e.seq = doomed.seq
                RETURNING e.key)
  SELECT array_agg(DISTINCT gone.key), count(*) INTO v_keys, n FROM gone;
  FOR v_key IN SELECT unnest(v_keys) ORDER BY 1 LOOP
    UPDATE @schema@.keys k SET version = k.version + 1 WHERE k.key = v_key;
    PERFORM @schema@.notify(v_key);
  END LOOP;
  RETURN n;
END $$;

INSERT INTO @schema@.meta(name, value) VALUES ('schema_version', '3')
ON CONFLICT (name) DO UPDATE SET value = excluded.value;
