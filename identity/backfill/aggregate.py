"""What a sequence of loads would leave, computed in SQL over the staging tables.

A load decides duplicates chunk by chunk (:mod:`identity.store.chunk`); everything else it
writes commutes (counts add, times take min and max, traits keep the latest, evidence the
earliest), so once the duplicates are known every aggregate is one ``GROUP BY``. Records
carry a global chunk number (files in the order given, then chunks of
``IDGRAPH_CHUNK_SIZE`` records in file order), so "an earlier chunk" is a comparison.

Duplicates, as a load decides them:

1. *Within a chunk* the first record of each ``messageId`` is kept: ``row_number()`` over
   (chunk, messageId) in record order.
2. *Across chunks* a remaining record is a duplicate when its primary identifier already
   holds its code (``message_code``: the message id's hash and its event day) among the
   codes it keeps: those of the last ``IDGRAPH_DEDUP_DAYS`` days before its latest code.
   The codes an identifier holds before chunk *c* are exactly those of the surviving
   records of chunks before *c* that had it as primary (a duplicate adds nothing it did not
   hold), so with ``held(key, code, since)`` (the first chunk that gave each code) a record
   is a duplicate when ``held`` has its (primary, code) with ``since < c`` and the code's day
   is within the window of the latest day held before *c* (an ``ASOF JOIN`` on the running
   maximum). An identifier holding more than :data:`~identity.store.merge.MAX_CODES`
   codes also drops its oldest beyond that number; such identifiers (rare: more messages
   within the window than that) are decided by replaying their records in Python with the
   load's own :func:`~identity.store.merge.kept_codes`.

   One more rule of the load is kept: when a record's primary was erased (a tombstone), its
   code goes to its next identifier, and a load keeps it there only when that identifier
   is new in the chunk or the primary of some message of the chunk (it reads the codes of
   those only); ``lost`` holds the others ("new" taken as: in no earlier chunk's record
   that survived the chunk's own deduplication).

Then ``kept`` records (neither duplicate nor wholly erased) give identifiers, links, traits,
events and DMP memberships; an identifier's ``batch`` is the last batch in which it appeared
in a record that survived the chunk's own deduplication (a load marks the identifiers of a
chunk when it locks them, before the cross-chunk check).

Cost: a few sorts and hash aggregations over the staging tables, out of core within
DuckDB's memory limit: O(n log n) in the number of records, identifiers and pairs.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb

from identity.store.merge import MAX_CODES, kept_codes
from identity.store.rows import CODE_BITS

_DUPLICATES = """
CREATE OR REPLACE TABLE msgrec AS
SELECT seq, file, chunk, msg, code, lookup, holder, record,
       row_number() OVER (PARTITION BY chunk, msg ORDER BY seq) > 1 AS within
FROM records WHERE msg IS NOT NULL;

CREATE OR REPLACE TABLE lost AS
WITH moved AS (
  SELECT seq, chunk, holder FROM msgrec WHERE NOT within AND holder <> lookup
)
SELECT m.seq FROM moved m
WHERE EXISTS (SELECT 1 FROM idents i JOIN records r ON r.seq = i.seq
              ANTI JOIN msgrec w ON w.seq = i.seq AND w.within
              WHERE i.key = m.holder AND r.chunk < m.chunk)
  AND NOT EXISTS (SELECT 1 FROM msgrec o
                  WHERE NOT o.within AND o.chunk = m.chunk AND o.lookup = m.holder);

CREATE OR REPLACE TABLE held AS
SELECT holder AS key, code, min(chunk) AS since
FROM msgrec m ANTI JOIN lost l ON l.seq = m.seq
WHERE NOT m.within AND m.holder IS NOT NULL
GROUP BY holder, code;

CREATE OR REPLACE TABLE heavy AS
SELECT key FROM held GROUP BY key HAVING count(*) > {max_codes};

CREATE OR REPLACE TABLE heldmax AS
SELECT key, since,
       max(max(code >> {bits})) OVER (PARTITION BY key ORDER BY since
                                      ROWS UNBOUNDED PRECEDING) AS maxday
FROM held GROUP BY key, since;

CREATE OR REPLACE TABLE dup (seq BIGINT, file INTEGER, msg VARCHAR, record VARCHAR);

INSERT INTO dup SELECT seq, file, msg, record FROM msgrec WHERE within;

INSERT INTO dup
SELECT m.seq, m.file, m.msg, m.record
FROM msgrec m
JOIN held h ON h.key = m.lookup AND h.code = m.code AND h.since < m.chunk
ASOF JOIN heldmax x ON x.key = m.lookup AND m.chunk > x.since
WHERE NOT m.within AND (m.code >> {bits}) >= x.maxday - {days}
  AND m.lookup NOT IN (SELECT key FROM heavy);
"""

_HEAVY_RECORDS = """
SELECT seq, chunk, lookup, holder, code FROM msgrec
WHERE NOT within AND (lookup = ? OR holder = ?)
ORDER BY chunk, seq
"""

_AGGREGATES = """
CREATE OR REPLACE TABLE kept AS
SELECT r.seq, r.file, r.chunk, r.holder, r.ts, r.ev
FROM records r ANTI JOIN dup d ON d.seq = r.seq
WHERE r.holder IS NOT NULL;

CREATE OR REPLACE TABLE ki AS
SELECT i.seq, i.key, i.hashed, k.file, k.ts, k.ev
FROM idents i JOIN kept k ON k.seq = i.seq;

CREATE OR REPLACE TABLE marker AS
SELECT i.key, max(r.file) AS file
FROM idents i JOIN records r ON r.seq = i.seq
ANTI JOIN msgrec w ON w.seq = i.seq AND w.within
GROUP BY i.key;

CREATE OR REPLACE TABLE ident AS
WITH per_file AS (
  SELECT key, file, count(*) AS n, min(ts) AS first, max(ts) AS last, bool_or(hashed) AS hashed
  FROM ki GROUP BY key, file
), per_source AS (
  SELECT key, source, min(file) AS f, sum(n) AS n, min(first) AS first, max(last) AS last,
         bool_or(hashed) AS hashed
  FROM per_file JOIN files USING (file) GROUP BY key, source
)
SELECT p.key, sum(p.n)::BIGINT AS seen, min(p.first) AS first, max(p.last) AS last,
       bool_or(p.hashed) AS hashed, list(p.source ORDER BY p.f) AS sources, b.batch
FROM per_source p JOIN marker m ON m.key = p.key JOIN files b ON b.file = m.file
GROUP BY p.key, b.batch;

CREATE OR REPLACE TABLE msgs AS
SELECT key, list(code ORDER BY code) AS msgs FROM (
  SELECT key, code, max(code >> {bits}) OVER (PARTITION BY key) AS maxday,
         row_number() OVER (PARTITION BY key ORDER BY code DESC) AS nth
  FROM held)
WHERE (code >> {bits}) >= maxday - {days} AND nth <= {max_codes}
GROUP BY key;

CREATE OR REPLACE TABLE trait AS
SELECT key, source, name, vtype, vtext, ts FROM (
  SELECT k.holder AS key, f.source, t.name, t.vtype, t.vtext, k.ts,
         row_number() OVER (PARTITION BY k.holder, f.source, t.name
                            ORDER BY k.ts DESC, t.vtext DESC, t.seq) AS nth
  FROM traits t JOIN kept k ON k.seq = t.seq JOIN files f ON f.file = k.file)
WHERE nth = 1;

CREATE OR REPLACE TABLE event AS
SELECT k.holder AS key, e.name, count(*) AS n, min(k.ts) AS first, max(k.ts) AS last
FROM events e JOIN kept k ON k.seq = e.seq
GROUP BY k.holder, e.name;

CREATE OR REPLACE TABLE pairs AS
SELECT a.key AS a, b.key AS b, a.seq, a.file, a.ts, a.ev
FROM ki a JOIN ki b ON a.seq = b.seq AND a.key < b.key;

CREATE OR REPLACE TABLE link AS
WITH per_file AS (
  SELECT a, b, file, count(*) AS n, min(ts) AS first, max(ts) AS last
  FROM pairs GROUP BY a, b, file
), per_source AS (
  SELECT a, b, source, min(file) AS f, sum(n) AS n, min(first) AS first, max(last) AS last,
         min(party) AS party
  FROM per_file JOIN files USING (file) GROUP BY a, b, source
)
SELECT a, b, sum(n)::BIGINT AS count, min(first) AS first, max(last) AS last,
       list(source ORDER BY f) AS sources, min(party) AS party
FROM per_source GROUP BY a, b;

CREATE OR REPLACE TABLE evidence AS
WITH early AS (
  SELECT a, b, seq, ev FROM pairs
  QUALIFY dense_rank() OVER (PARTITION BY a, b ORDER BY ev) <= {cap}
), refs AS (
  SELECT DISTINCT e.a, e.b, e.ev, f.batch || ':' || coalesce(r.msg, r.record) AS ref
  FROM early e JOIN records r ON r.seq = e.seq JOIN files f ON f.file = r.file
), ranked AS (
  SELECT * FROM refs QUALIFY row_number() OVER (PARTITION BY a, b ORDER BY ev, ref) <= {cap}
)
SELECT a, b,
       list(strftime(make_timestamp(ev * 1000), '%Y-%m-%dT%H:%M:%S.%gZ') || ' ' || ref
            ORDER BY ev, ref) AS evidence
FROM ranked GROUP BY a, b;

CREATE OR REPLACE TABLE membership AS
SELECT i.key, d.name, min(k.ts) AS first, max(k.ts) AS last, max(d.expires) AS expires,
       arg_min(f.source, k.seq) AS source
FROM dmp d JOIN kept k ON k.seq = d.seq JOIN idents i ON i.seq = d.seq
JOIN files f ON f.file = k.file
GROUP BY i.key, d.name;
"""

_FILE_COUNTS = """
SELECT f.file,
       (SELECT count(*) FROM dup d WHERE d.file = f.file) AS duplicates,
       (SELECT count(*) FROM records r ANTI JOIN dup d ON d.seq = r.seq
        WHERE r.file = f.file AND r.holder IS NULL) AS forgotten_records,
       (SELECT coalesce(sum(r.forgot), 0) FROM records r ANTI JOIN dup d ON d.seq = r.seq
        WHERE r.file = f.file) AS forgotten_values
FROM files f ORDER BY f.file
"""


def find_duplicates(con: duckdb.DuckDBPyConnection, days: int) -> int:
    """Fill ``dup`` with every record a load would refuse as a duplicate; their number."""
    con.execute(_DUPLICATES.format(max_codes=MAX_CODES, bits=CODE_BITS, days=int(days)))
    heavy = [row[0] for row in con.execute("SELECT key FROM heavy ORDER BY key").fetchall()]
    for key in heavy:
        found = list(_replay(con, key, days))
        if found:
            con.execute(
                "INSERT INTO dup SELECT seq, file, msg, record FROM msgrec "
                "WHERE seq IN (SELECT unnest(?::BIGINT[]))",
                [found],
            )
    row = con.execute("SELECT count(*) FROM dup").fetchone()
    return int(row[0]) if row else 0


def _replay(con: duckdb.DuckDBPyConnection, key: str, days: int) -> Iterator[int]:
    """The cross-chunk duplicates looked up on ``key``, decided as a load decides them:
    chunk by chunk, against the codes it keeps (``kept_codes``) as of the chunk's start."""
    cursor = con.cursor()
    cursor.execute(_HEAVY_RECORDS, [key, key])
    codes: list[int] = []
    added: list[int] = []
    current: int | None = None
    held: set[int] = set()
    while rows := cursor.fetchmany(10_000):
        for seq, chunk, lookup, holder, code in rows:
            if chunk != current:
                codes = kept_codes([*codes, *added], days)
                held, added, current = set(codes), [], chunk
            if lookup == key and code in held:
                yield seq
            elif holder == key:
                added.append(code)
    cursor.close()


def aggregate(con: duckdb.DuckDBPyConnection, days: int, evidence_cap: int) -> None:
    """Fill the tables the import files are written from: ``ident``, ``msgs``, ``trait``,
    ``event``, ``link``, ``evidence``, ``membership`` (after :func:`find_duplicates`)."""
    con.execute(
        _AGGREGATES.format(max_codes=MAX_CODES, bits=CODE_BITS, days=int(days), cap=evidence_cap)
    )


def file_counts(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[int, int, int]]:
    """Per file: (duplicates, records wholly erased, erased values) among non-duplicates."""
    return {int(f): (int(d), int(r), int(v)) for f, d, r, v in con.execute(_FILE_COUNTS).fetchall()}
