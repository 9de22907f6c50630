//! The database schema: created and upgraded by the adapter under an
//! advisory lock (several processes may start at once on an empty
//! database), versioned in `caseledger_schema`, refused when newer than
//! this program.

use store::StoreError;
use tokio_postgres::Client;

use crate::error::from_postgres;

/// The schema version this program writes and understands.
pub const SCHEMA_VERSION: i64 = 6;

/// Advisory lock key of the schema set-up ("caseledger schema").
const SCHEMA_LOCK: i64 = 0x6361_7365_7363_6801;

/// Advisory lock key every append and tombstone takes for its transaction
/// ("caseledger log"): writers are serialised, so positions are handed out
/// in commit order.
pub(crate) const APPEND_LOCK: i64 = 0x6361_7365_6c6f_6701;

/// The channel a commit notifies with the new head position.
pub(crate) const CHANNEL: &str = "caseledger_events";

/// Version 1. No foreign key from `events` to `streams`: every write runs
/// under [`APPEND_LOCK`] in one writer that creates the stream row first,
/// and a foreign key would cost a trigger and a row lock per event.
const VERSION_1: &str = "
CREATE TABLE caseledger_streams (
    stream_id bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name      text    NOT NULL UNIQUE,
    deleted   boolean NOT NULL DEFAULT false
);
CREATE TABLE caseledger_events (
    position       bigint      PRIMARY KEY,
    stream_id      bigint      NOT NULL,
    revision       bigint      NOT NULL,
    event_id       uuid        NOT NULL UNIQUE,
    type_name      text        NOT NULL,
    schema_version integer     NOT NULL,
    recorded_at    timestamptz NOT NULL,
    metadata       bytea       NOT NULL,
    payload        bytea       NOT NULL,
    UNIQUE (stream_id, revision)
);
CREATE TABLE caseledger_kv (
    namespace  text        NOT NULL,
    key        text        NOT NULL,
    value      bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, key)
);
-- The writer's fast path: a batch of appends to distinct streams whose
-- expected revisions all hold and whose ids are all new, in one call.
-- Returns the head position before the batch and each append's first
-- revision, or NULL (having written no event) when an append is not that
-- simple; the writer then decides the batch itself. A stored id raises
-- unique_violation, which sends the writer the same way.
CREATE FUNCTION caseledger_append_fast(
    lock_key bigint, names text[], kinds int2[], revisions int8[],
    requests int4[], offsets int4[], ids uuid[], type_names text[],
    schema_versions int4[], metadata bytea[], payloads bytea[],
    recorded timestamptz, channel text
) RETURNS int8[] LANGUAGE plpgsql AS $$
DECLARE
    head int8;
    ok bool;
    stream_ids int8[];
    firsts int8[];
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT coalesce(max(position), 0) INTO head FROM caseledger_events;
    INSERT INTO caseledger_streams (name)
        SELECT u.name FROM unnest(names, kinds) AS u(name, kind)
        WHERE u.kind IN (0, 1)
          AND NOT EXISTS (SELECT 1 FROM caseledger_streams s WHERE s.name = u.name)
        ON CONFLICT DO NOTHING;
    SELECT bool_and(coalesce(s.stream_id IS NOT NULL AND NOT s.deleted
               AND (u.kind = 0 OR (u.kind = 1 AND l.revision IS NULL)
                    OR (u.kind = 2 AND l.revision IS NOT NULL)
                    OR (u.kind = 3 AND l.revision = u.expected)), false)),
           array_agg(s.stream_id ORDER BY u.n),
           array_agg(coalesce(l.revision, -1) + 1 ORDER BY u.n)
        INTO ok, stream_ids, firsts
        FROM unnest(names, kinds, revisions) WITH ORDINALITY AS u(name, kind, expected, n)
        LEFT JOIN caseledger_streams s ON s.name = u.name
        LEFT JOIN LATERAL (SELECT e.revision FROM caseledger_events e
            WHERE e.stream_id = s.stream_id ORDER BY e.revision DESC LIMIT 1) l ON true;
    IF NOT coalesce(ok, false) THEN
        RETURN NULL;
    END IF;
    INSERT INTO caseledger_events (position, stream_id, revision, event_id, type_name,
        schema_version, recorded_at, metadata, payload)
    SELECT head + u.n, stream_ids[u.r], firsts[u.r] + u.o, u.i, u.t, u.v, recorded, u.m, u.d
    FROM unnest(requests, offsets, ids, type_names, schema_versions, metadata, payloads)
        WITH ORDINALITY AS u(r, o, i, t, v, m, d, n);
    PERFORM pg_notify(channel, (head + coalesce(array_length(ids, 1), 0))::text);
    RETURN head || firsts;
END
$$;
";

/// Version 2: each event's hash-chain link (`store::chain`), computed in
/// the append transaction under [`APPEND_LOCK`] from the link before it;
/// the events a database already holds are linked in one pass. The
/// encoding is the one of `store::chain::link` (instants as microseconds
/// since the epoch: `extract` is exact from PostgreSQL 14 on).
const VERSION_2: &str = "
CREATE FUNCTION caseledger_chain_link(
    prev bytea, pos int8, stream text, rev int8, id uuid, type_name text,
    schema_version int4, recorded timestamptz, metadata bytea, payload bytea
) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT sha256(prev || int8send(pos)
        || int8send(octet_length(convert_to(stream, 'UTF8'))::int8) || convert_to(stream, 'UTF8')
        || int8send(rev)
        || int8send(16::int8) || uuid_send(id)
        || int8send(octet_length(convert_to(type_name, 'UTF8'))::int8)
        || convert_to(type_name, 'UTF8')
        || int4send(schema_version)
        || int8send((extract(epoch FROM recorded) * 1000000)::int8)
        || int8send(octet_length(metadata)::int8) || metadata
        || int8send(octet_length(payload)::int8) || payload)
$$;
ALTER TABLE caseledger_events ADD COLUMN chain bytea;
DO $$
DECLARE
    prev bytea := sha256(convert_to('caseledger event chain v1', 'UTF8'));
    r record;
BEGIN
    FOR r IN SELECT e.position, s.name, e.revision, e.event_id, e.type_name, e.schema_version,
                    e.recorded_at, e.metadata, e.payload
             FROM caseledger_events e JOIN caseledger_streams s USING (stream_id)
             ORDER BY e.position LOOP
        prev := caseledger_chain_link(prev, r.position, r.name, r.revision, r.event_id,
            r.type_name, r.schema_version, r.recorded_at, r.metadata, r.payload);
        UPDATE caseledger_events SET chain = prev WHERE position = r.position;
    END LOOP;
END
$$;
ALTER TABLE caseledger_events ALTER COLUMN chain SET NOT NULL;
-- The fast path of version 1, linking each event it writes.
CREATE OR REPLACE FUNCTION caseledger_append_fast(
    lock_key bigint, names text[], kinds int2[], revisions int8[],
    requests int4[], offsets int4[], ids uuid[], type_names text[],
    schema_versions int4[], metadata bytea[], payloads bytea[],
    recorded timestamptz, channel text
) RETURNS int8[] LANGUAGE plpgsql AS $$
DECLARE
    head int8;
    ok bool;
    stream_ids int8[];
    firsts int8[];
    prev bytea;
    links bytea[];
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT position, chain INTO head, prev FROM caseledger_events
        ORDER BY position DESC LIMIT 1;
    head := coalesce(head, 0);
    prev := coalesce(prev, sha256(convert_to('caseledger event chain v1', 'UTF8')));
    INSERT INTO caseledger_streams (name)
        SELECT u.name FROM unnest(names, kinds) AS u(name, kind)
        WHERE u.kind IN (0, 1)
          AND NOT EXISTS (SELECT 1 FROM caseledger_streams s WHERE s.name = u.name)
        ON CONFLICT DO NOTHING;
    SELECT bool_and(coalesce(s.stream_id IS NOT NULL AND NOT s.deleted
               AND (u.kind = 0 OR (u.kind = 1 AND l.revision IS NULL)
                    OR (u.kind = 2 AND l.revision IS NOT NULL)
                    OR (u.kind = 3 AND l.revision = u.expected)), false)),
           array_agg(s.stream_id ORDER BY u.n),
           array_agg(coalesce(l.revision, -1) + 1 ORDER BY u.n)
        INTO ok, stream_ids, firsts
        FROM unnest(names, kinds, revisions) WITH ORDINALITY AS u(name, kind, expected, n)
        LEFT JOIN caseledger_streams s ON s.name = u.name
        LEFT JOIN LATERAL (SELECT e.revision FROM caseledger_events e
            WHERE e.stream_id = s.stream_id ORDER BY e.revision DESC LIMIT 1) l ON true;
    IF NOT coalesce(ok, false) THEN
        RETURN NULL;
    END IF;
    FOR i IN 1 .. coalesce(array_length(ids, 1), 0) LOOP
        prev := caseledger_chain_link(prev, head + i, names[requests[i]],
            firsts[requests[i]] + offsets[i], ids[i], type_names[i], schema_versions[i],
            recorded, metadata[i], payloads[i]);
        links[i] := prev;
    END LOOP;
    INSERT INTO caseledger_events (position, stream_id, revision, event_id, type_name,
        schema_version, recorded_at, metadata, payload, chain)
    SELECT head + u.n, stream_ids[u.r], firsts[u.r] + u.o, u.i, u.t, u.v, recorded, u.m, u.d,
        links[u.n]
    FROM unnest(requests, offsets, ids, type_names, schema_versions, metadata, payloads)
        WITH ORDINALITY AS u(r, o, i, t, v, m, d, n);
    PERFORM pg_notify(channel, (head + coalesce(array_length(ids, 1), 0))::text);
    RETURN head || firsts;
END
$$;
";

/// Version 3: the key table (data keys for crypto-shredding, wrapped).
const VERSION_3: &str = "
CREATE TABLE caseledger_keys (
    id      uuid  PRIMARY KEY,
    subject text  NOT NULL,
    wrapped bytea NOT NULL
);
CREATE INDEX caseledger_keys_subject ON caseledger_keys (subject);
";

/// Version 4: the fast path links its events in one expression per event
/// over local copies of the arrays (PL/pgSQL then subscripts them in
/// place), instead of a SQL function call per event over the arguments:
/// the same links, computed about three times as fast.
const VERSION_4: &str = "
CREATE OR REPLACE FUNCTION caseledger_append_fast(
    lock_key bigint, names text[], kinds int2[], revisions int8[],
    requests int4[], offsets int4[], ids uuid[], type_names text[],
    schema_versions int4[], metadata bytea[], payloads bytea[],
    recorded timestamptz, channel text
) RETURNS int8[] LANGUAGE plpgsql AS $$
DECLARE
    head int8;
    ok bool;
    stream_ids int8[];
    firsts int8[];
    prev bytea;
    links bytea[];
    m bytea[];
    d bytea[];
    stream_bytes bytea;
    type_bytes bytea;
    recorded_bytes bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT position, chain INTO head, prev FROM caseledger_events
        ORDER BY position DESC LIMIT 1;
    head := coalesce(head, 0);
    prev := coalesce(prev, sha256(convert_to('caseledger event chain v1', 'UTF8')));
    INSERT INTO caseledger_streams (name)
        SELECT u.name FROM unnest(names, kinds) AS u(name, kind)
        WHERE u.kind IN (0, 1)
          AND NOT EXISTS (SELECT 1 FROM caseledger_streams s WHERE s.name = u.name)
        ON CONFLICT DO NOTHING;
    SELECT bool_and(coalesce(s.stream_id IS NOT NULL AND NOT s.deleted
               AND (u.kind = 0 OR (u.kind = 1 AND l.revision IS NULL)
                    OR (u.kind = 2 AND l.revision IS NOT NULL)
                    OR (u.kind = 3 AND l.revision = u.expected)), false)),
           array_agg(s.stream_id ORDER BY u.n),
           array_agg(coalesce(l.revision, -1) + 1 ORDER BY u.n)
        INTO ok, stream_ids, firsts
        FROM unnest(names, kinds, revisions) WITH ORDINALITY AS u(name, kind, expected, n)
        LEFT JOIN caseledger_streams s ON s.name = u.name
        LEFT JOIN LATERAL (SELECT e.revision FROM caseledger_events e
            WHERE e.stream_id = s.stream_id ORDER BY e.revision DESC LIMIT 1) l ON true;
    IF NOT coalesce(ok, false) THEN
        RETURN NULL;
    END IF;
    recorded_bytes := int8send((extract(epoch FROM recorded) * 1000000)::int8);
    m := metadata;
    d := payloads;
    FOR i IN 1 .. coalesce(array_length(ids, 1), 0) LOOP
        stream_bytes := convert_to(names[requests[i]], 'UTF8');
        type_bytes := convert_to(type_names[i], 'UTF8');
        prev := sha256(prev || int8send(head + i)
            || int8send(octet_length(stream_bytes)::int8) || stream_bytes
            || int8send(firsts[requests[i]] + offsets[i])
            || int8send(16::int8) || uuid_send(ids[i])
            || int8send(octet_length(type_bytes)::int8) || type_bytes
            || int4send(schema_versions[i])
            || recorded_bytes
            || int8send(octet_length(m[i])::int8) || m[i]
            || int8send(octet_length(d[i])::int8) || d[i]);
        links[i] := prev;
    END LOOP;
    INSERT INTO caseledger_events (position, stream_id, revision, event_id, type_name,
        schema_version, recorded_at, metadata, payload, chain)
    SELECT head + u.n, stream_ids[u.r], firsts[u.r] + u.o, u.i, u.t, u.v, recorded, u.m, u.d,
        links[u.n]
    FROM unnest(requests, offsets, ids, type_names, schema_versions, metadata, payloads)
        WITH ORDINALITY AS u(r, o, i, t, v, m, d, n);
    PERFORM pg_notify(channel, (head + coalesce(array_length(ids, 1), 0))::text);
    RETURN head || firsts;
END
$$;
";

/// Version 5: a leaner fast path.
/// - It takes the links the writer computed, when the writer knew where
///   the log ends: the function checks that end (`known_head`, whose link
///   is `known_link`) and each append's first revision, and links the events itself only when any of them differs
///   (another node wrote since). It returns the last link, so that the
///   writer knows the end next time.
/// - "No stream" and an exact revision are checked by probing the one or
///   two revisions that decide them, not by finding the stream's last
///   revision (a backward index scan, the dearest step of the function).
/// - Its statements are planned once per session (`force_generic_plan`): a
///   custom plan per call cost more than running them. The plan is made on
///   indexes (no sequential scan, hash or merge join), since one made while
///   the tables were small would otherwise scan them for good.
///
/// The version 4 function stays for nodes still running the release before.
const VERSION_5: &str = "
CREATE FUNCTION caseledger_append_fast(
    lock_key bigint, names text[], kinds int2[], revisions int8[],
    requests int4[], offsets int4[], ids uuid[], type_names text[],
    schema_versions int4[], metadata bytea[], payloads bytea[],
    recorded timestamptz, channel text,
    known_head int8, known_link bytea, known_firsts int8[], known_links bytea[],
    OUT heads int8[], OUT last_link bytea
) LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    head int8;
    ok bool;
    stream_ids int8[];
    firsts int8[];
    prev bytea;
    links bytea[];
    m bytea[];
    d bytea[];
    stream_bytes bytea;
    type_bytes bytea;
    recorded_bytes bytea;
    n int4 := coalesce(array_length(ids, 1), 0);
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT position, chain INTO head, prev FROM caseledger_events
        ORDER BY position DESC LIMIT 1;
    head := coalesce(head, 0);
    prev := coalesce(prev, sha256(convert_to('caseledger event chain v1', 'UTF8')));
    -- Streams not seen before are created (for any and no stream) in the
    -- same statement; a created stream has no event yet.
    -- No stream: no revision 0 (lo = -1). Exact: revision lo, none after.
    -- Any and stream exists: the last revision.
    WITH created AS (
        INSERT INTO caseledger_streams (name)
        SELECT u.name FROM unnest(names, kinds) AS u(name, kind)
        WHERE u.kind IN (0, 1)
          AND NOT EXISTS (SELECT 1 FROM caseledger_streams s WHERE s.name = u.name)
        ON CONFLICT DO NOTHING
        RETURNING stream_id, name
    )
    SELECT bool_and(coalesce((c.stream_id IS NOT NULL OR (s.stream_id IS NOT NULL
               AND NOT s.deleted)) AND CASE u.kind
               WHEN 0 THEN true
               WHEN 2 THEN l.revision IS NOT NULL
               ELSE coalesce(x.revision, -1) = b.lo END, false)),
           array_agg(coalesce(c.stream_id, s.stream_id) ORDER BY u.n),
           array_agg(CASE WHEN u.kind IN (1, 3) THEN b.lo ELSE coalesce(l.revision, -1) END + 1
               ORDER BY u.n)
        INTO ok, stream_ids, firsts
        FROM unnest(names, kinds, revisions) WITH ORDINALITY AS u(name, kind, expected, n)
        CROSS JOIN LATERAL (SELECT CASE WHEN u.kind = 1 THEN -1 ELSE u.expected END AS lo) b
        LEFT JOIN created c ON c.name = u.name
        LEFT JOIN caseledger_streams s ON c.stream_id IS NULL AND s.name = u.name
        LEFT JOIN LATERAL (SELECT max(e.revision) AS revision FROM caseledger_events e
            WHERE u.kind IN (1, 3) AND e.stream_id = s.stream_id
              AND e.revision BETWEEN b.lo AND b.lo + 1) x ON true
        LEFT JOIN LATERAL (SELECT e.revision FROM caseledger_events e
            WHERE u.kind IN (0, 2) AND e.stream_id = s.stream_id
            ORDER BY e.revision DESC LIMIT 1) l ON true;
    IF NOT coalesce(ok, false) THEN
        RETURN;
    END IF;
    IF head = known_head AND prev = known_link AND firsts = known_firsts
       AND coalesce(array_length(known_links, 1), 0) = n THEN
        links := known_links;
    ELSE
        recorded_bytes := int8send((extract(epoch FROM recorded) * 1000000)::int8);
        m := metadata;
        d := payloads;
        FOR i IN 1 .. n LOOP
            stream_bytes := convert_to(names[requests[i]], 'UTF8');
            type_bytes := convert_to(type_names[i], 'UTF8');
            prev := sha256(prev || int8send(head + i)
                || int8send(octet_length(stream_bytes)::int8) || stream_bytes
                || int8send(firsts[requests[i]] + offsets[i])
                || int8send(16::int8) || uuid_send(ids[i])
                || int8send(octet_length(type_bytes)::int8) || type_bytes
                || int4send(schema_versions[i])
                || recorded_bytes
                || int8send(octet_length(m[i])::int8) || m[i]
                || int8send(octet_length(d[i])::int8) || d[i]);
            links[i] := prev;
        END LOOP;
    END IF;
    INSERT INTO caseledger_events (position, stream_id, revision, event_id, type_name,
        schema_version, recorded_at, metadata, payload, chain)
    SELECT head + u.n, stream_ids[u.r], firsts[u.r] + u.o, u.i, u.t, u.v, recorded, u.m, u.d,
        u.c
    FROM unnest(requests, offsets, ids, type_names, schema_versions, metadata, payloads, links)
        WITH ORDINALITY AS u(r, o, i, t, v, m, d, c, n);
    PERFORM pg_notify(channel, (head + n)::text);
    heads := head || firsts;
    last_link := CASE WHEN n > 0 THEN links[n] ELSE prev END;
END
$$;
";

/// Version 6: the fast path takes what the writer knows of the batch's
/// streams (`known_streams`: each append's stream id, or NULL for a name
/// it takes to be new, with `known_firsts`). When none of those streams is
/// tombstoned, the function writes the batch as sent, without reading a
/// stream: the writer vouches that each append's first revision follows
/// one that is stored (its own commits told it so, and revisions are never
/// removed), and the unique indexes refuse everything else (a revision
/// written meanwhile, a stream name already taken, an id already stored)
/// with a unique violation, upon which the writer decides the batch in
/// full. Otherwise it checks every append as version 5 does. Either way it
/// links as version 5 does (the writer's links when the log still ends
/// where the writer last left it) and returns the batch's stream ids, for
/// the writer to know next time. With a NULL channel it notifies nobody:
/// the writer announces the batch later, with others.
///
/// The version 5 function stays for nodes still running the release before.
const VERSION_6: &str = "
-- Tombstoned streams only: nearly empty, so looking up a batch's stream ids
-- in it costs next to nothing.
CREATE INDEX caseledger_streams_deleted ON caseledger_streams (stream_id) WHERE deleted;
CREATE FUNCTION caseledger_append_fast(
    lock_key bigint, names text[], kinds int2[], revisions int8[],
    requests int4[], offsets int4[], ids uuid[], type_names text[],
    schema_versions int4[], metadata bytea[], payloads bytea[],
    recorded timestamptz, channel text,
    known_head int8, known_link bytea, known_firsts int8[], known_links bytea[],
    known_streams int8[],
    OUT heads int8[], OUT last_link bytea, OUT stream_ids int8[]
) LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    head int8;
    ok bool;
    firsts int8[];
    prev bytea;
    links bytea[];
    m bytea[];
    d bytea[];
    stream_bytes bytea;
    type_bytes bytea;
    recorded_bytes bytea;
    n int4 := coalesce(array_length(ids, 1), 0);
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT position, chain INTO head, prev FROM caseledger_events
        ORDER BY position DESC LIMIT 1;
    head := coalesce(head, 0);
    prev := coalesce(prev, sha256(convert_to('caseledger event chain v1', 'UTF8')));
    IF known_streams IS NOT NULL AND n > 0
       AND coalesce(array_length(known_firsts, 1), 0) = array_length(known_streams, 1)
       AND NOT EXISTS (SELECT 1 FROM caseledger_streams s
                       WHERE s.deleted AND s.stream_id = ANY(known_streams)) THEN
        -- As the writer decided the batch: no stream is read.
        stream_ids := known_streams;
        firsts := known_firsts;
        IF array_position(known_streams, NULL) IS NOT NULL THEN
            FOR r IN 1 .. array_length(known_streams, 1) LOOP
                IF known_streams[r] IS NULL THEN
                    stream_ids[r] := nextval('caseledger_streams_stream_id_seq'::regclass);
                END IF;
            END LOOP;
            -- A name already taken raises unique_violation.
            INSERT INTO caseledger_streams (stream_id, name) OVERRIDING SYSTEM VALUE
                SELECT u.s, u.name FROM unnest(stream_ids, names, known_streams) AS u(s, name, k)
                WHERE u.k IS NULL;
        END IF;
    ELSE
        -- Streams not seen before are created (for any and no stream) in the
        -- same statement; a created stream has no event yet.
        -- No stream: no revision 0 (lo = -1). Exact: revision lo, none after.
        -- Any and stream exists: the last revision.
        WITH created AS (
            INSERT INTO caseledger_streams (name)
            SELECT u.name FROM unnest(names, kinds) AS u(name, kind)
            WHERE u.kind IN (0, 1)
              AND NOT EXISTS (SELECT 1 FROM caseledger_streams s WHERE s.name = u.name)
            ON CONFLICT DO NOTHING
            RETURNING stream_id, name
        )
        SELECT bool_and(coalesce((c.stream_id IS NOT NULL OR (s.stream_id IS NOT NULL
                   AND NOT s.deleted)) AND CASE u.kind
                   WHEN 0 THEN true
                   WHEN 2 THEN l.revision IS NOT NULL
                   ELSE coalesce(x.revision, -1) = b.lo END, false)),
               array_agg(coalesce(c.stream_id, s.stream_id) ORDER BY u.n),
               array_agg(CASE WHEN u.kind IN (1, 3) THEN b.lo ELSE coalesce(l.revision, -1) END + 1
                   ORDER BY u.n)
            INTO ok, stream_ids, firsts
            FROM unnest(names, kinds, revisions) WITH ORDINALITY AS u(name, kind, expected, n)
            CROSS JOIN LATERAL (SELECT CASE WHEN u.kind = 1 THEN -1 ELSE u.expected END AS lo) b
            LEFT JOIN created c ON c.name = u.name
            LEFT JOIN caseledger_streams s ON c.stream_id IS NULL AND s.name = u.name
            LEFT JOIN LATERAL (SELECT max(e.revision) AS revision FROM caseledger_events e
                WHERE u.kind IN (1, 3) AND e.stream_id = s.stream_id
                  AND e.revision BETWEEN b.lo AND b.lo + 1) x ON true
            LEFT JOIN LATERAL (SELECT e.revision FROM caseledger_events e
                WHERE u.kind IN (0, 2) AND e.stream_id = s.stream_id
                ORDER BY e.revision DESC LIMIT 1) l ON true;
        IF NOT coalesce(ok, false) THEN
            stream_ids := NULL;
            RETURN;
        END IF;
    END IF;
    IF head = known_head AND prev = known_link AND firsts = known_firsts
       AND coalesce(array_length(known_links, 1), 0) = n THEN
        links := known_links;
    ELSE
        recorded_bytes := int8send((extract(epoch FROM recorded) * 1000000)::int8);
        m := metadata;
        d := payloads;
        FOR i IN 1 .. n LOOP
            stream_bytes := convert_to(names[requests[i]], 'UTF8');
            type_bytes := convert_to(type_names[i], 'UTF8');
            prev := sha256(prev || int8send(head + i)
                || int8send(octet_length(stream_bytes)::int8) || stream_bytes
                || int8send(firsts[requests[i]] + offsets[i])
                || int8send(16::int8) || uuid_send(ids[i])
                || int8send(octet_length(type_bytes)::int8) || type_bytes
                || int4send(schema_versions[i])
                || recorded_bytes
                || int8send(octet_length(m[i])::int8) || m[i]
                || int8send(octet_length(d[i])::int8) || d[i]);
            links[i] := prev;
        END LOOP;
    END IF;
    INSERT INTO caseledger_events (position, stream_id, revision, event_id, type_name,
        schema_version, recorded_at, metadata, payload, chain)
    SELECT head + u.n, stream_ids[u.r], firsts[u.r] + u.o, u.i, u.t, u.v, recorded, u.m, u.d,
        u.c
    FROM unnest(requests, offsets, ids, type_names, schema_versions, metadata, payloads, links)
        WITH ORDINALITY AS u(r, o, i, t, v, m, d, c, n);
    IF channel IS NOT NULL THEN
        PERFORM pg_notify(channel, (head + n)::text);
    END IF;
    heads := head || firsts;
    last_link := CASE WHEN n > 0 THEN links[n] ELSE prev END;
END
$$;
";

/// Create the schema when the database has none, upgrade an older one,
/// refuse a newer one. `endpoint` names the database in errors.
pub(crate) async fn ensure(client: &mut Client, endpoint: &str) -> Result<bool, StoreError> {
    let transaction = client.transaction().await.map_err(from_postgres)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await
        .map_err(from_postgres)?;
    let exists: bool = transaction
        .query_one("SELECT to_regclass('caseledger_schema') IS NOT NULL", &[])
        .await
        .map_err(from_postgres)?
        .get(0);
    let found: i64 = if exists {
        transaction
            .query_one(
                "SELECT coalesce(max(version), 0)::int8 FROM caseledger_schema",
                &[],
            )
            .await
            .map_err(from_postgres)?
            .get(0)
    } else {
        transaction
            .batch_execute("CREATE TABLE caseledger_schema (version integer NOT NULL)")
            .await
            .map_err(from_postgres)?;
        0
    };
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: endpoint.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let created = found < SCHEMA_VERSION;
    // Each upgrade step runs in order; version 1 is the first.
    if found < 1 {
        transaction
            .batch_execute(VERSION_1)
            .await
            .map_err(from_postgres)?;
    }
    if found < 2 {
        transaction
            .batch_execute(VERSION_2)
            .await
            .map_err(from_postgres)?;
    }
    if found < 3 {
        transaction
            .batch_execute(VERSION_3)
            .await
            .map_err(from_postgres)?;
    }
    if found < 4 {
        transaction
            .batch_execute(VERSION_4)
            .await
            .map_err(from_postgres)?;
    }
    if found < 5 {
        transaction
            .batch_execute(VERSION_5)
            .await
            .map_err(from_postgres)?;
    }
    if found < 6 {
        transaction
            .batch_execute(VERSION_6)
            .await
            .map_err(from_postgres)?;
    }
    if created {
        transaction
            .execute("DELETE FROM caseledger_schema", &[])
            .await
            .map_err(from_postgres)?;
        transaction
            .execute(
                "INSERT INTO caseledger_schema (version) VALUES ($1)",
                &[&(SCHEMA_VERSION as i32)],
            )
            .await
            .map_err(from_postgres)?;
    }
    transaction.commit().await.map_err(from_postgres)?;
    Ok(created)
}

/// Whether the database holds this adapter's schema (any version).
pub(crate) async fn exists(client: &Client) -> Result<bool, StoreError> {
    Ok(client
        .query_one("SELECT to_regclass('caseledger_schema') IS NOT NULL", &[])
        .await
        .map_err(from_postgres)?
        .get(0))
}
