"""A psycopg 3 client for hoop's end-to-end tests: one more driver, from
another ecosystem, against a PostgreSQL server or a local `hoop connect` port.

    python pg_client.py HOST PORT USER DBNAME SCENARIO

No password is given: through hoop none is needed, and a test that goes
straight at a server sets PGPASSWORD (libpq reads PGSSLMODE and the rest of
its environment too). Each scenario checks its own results, prints one JSON
object on stdout and exits 0; on any failure it prints the error to stderr
and exits 1 (2 for bad arguments).

Scenarios:
  basic     parameterised queries with server-side binding (extended
            protocol), a named prepared statement, binary results, 20,000 rows
  copy      COPY FROM STDIN and TO STDOUT, text and binary
  error     server errors at Parse and at Execute, in a transaction, and a
            client-side COPY failure; the connection stays usable
  pipeline  pipeline mode: many statements before one Sync
  notify    LISTEN on this connection, NOTIFY from a second one
  cancel    a running pg_sleep cancelled with the cancel protocol (a second
            connection carrying the backend key)
"""

import datetime
import decimal
import json
import os
import sys
import threading
import time

import psycopg
from psycopg import errors


class Failed(Exception):
    """A result that is not what the scenario expected."""


def expect(what, got, want):
    if got != want:
        raise Failed(f"{what}: got {got!r}, want {want!r}")


def connect(args, **kw):
    return psycopg.connect(
        host=args.host,
        port=args.port,
        user=args.user,
        dbname=args.dbname,
        connect_timeout=20,
        application_name="hoop-tests-py",
        autocommit=True,
        **kw,
    )


def basic(conn, args):
    cur = conn.cursor()
    cur.execute(
        "select current_user, current_database(),"
        " current_setting('server_version_num')::int"
    )
    user, database, version = cur.fetchone()
    cur.execute(
        "create temporary table items (id int primary key, name text not null,"
        " price numeric(10, 2), tags text[], seen timestamptz, data bytea)"
    )
    seen = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    items = [
        (1, "alpha", decimal.Decimal("1.50"), ["a", "x"], seen, b"\x00\x01\xff"),
        (2, "beta", decimal.Decimal("-2.25"), ["b"], seen, b"beta"),
        (3, "gamma \U0001f418 'quoted' \\", None, [], None, b""),
    ]
    cur.executemany("insert into items values (%s, %s, %s, %s, %s, %s)", items)

    cur.execute(
        "select id, name from items where id >= %s and name <> %s order by id",
        (2, "nope"),
    )
    rows = [list(r) for r in cur.fetchall()]
    expect("filtered rows", rows, [[i[0], i[1]] for i in items[1:]])

    # prepare=True forces a named prepared statement: Parse once, then
    # Bind/Execute by name.
    prepared = []
    for i in (1, 2, 3):
        cur.execute("select name from items where id = %s", (i,), prepare=True)
        prepared.append(cur.fetchone()[0])
    expect("prepared", prepared, [i[1] for i in items])

    bcur = conn.cursor(binary=True)
    bcur.execute("select * from items where id = %s", (1,))
    brow = bcur.fetchone()
    expect("binary row", brow, items[0])

    cur.execute(
        "select g, repeat('x', 100) from generate_series(1, %s) g", (20000,)
    )
    many = cur.fetchall()
    expect("many rows", len(many), 20000)
    expect("last row", many[-1], (20000, "x" * 100))

    return {
        "user": user,
        "database": database,
        "server_version_num": version,
        "ssl": conn.pgconn.ssl_in_use,
        "rows": rows,
        "prepared": prepared,
        "binary_row": [
            brow[0],
            brow[1],
            str(brow[2]),
            brow[3],
            brow[4].isoformat(),
            brow[5].hex(),
        ],
        "many_rows": len(many),
    }


def copy(conn, args):
    n = 20000
    # Tabs, newlines and backslashes must survive COPY's text escaping.
    rows = [(i, f"row {i}\t\\ {'é' * (i % 5)}\nend") for i in range(n)]
    cur = conn.cursor()
    cur.execute("create temporary table t (id int, body text)")
    with cur.copy("copy t (id, body) from stdin") as cp:
        for r in rows:
            cp.write_row(r)
    expect("rows after COPY FROM", cur.execute("select count(*) from t").fetchone()[0], n)

    with cur.copy("copy (select id, body from t order by id) to stdout") as cp:
        cp.set_types(["int4", "text"])
        back = list(cp.rows())
    expect("text COPY TO rows", back, rows)

    raw = 0
    with cur.copy("copy t to stdout") as cp:
        for chunk in cp:
            raw += len(chunk)

    cur.execute("create temporary table t2 (id int, body text)")
    with cur.copy("copy t2 (id, body) from stdin (format binary)") as cp:
        cp.set_types(["int4", "text"])
        for r in rows:
            cp.write_row(r)
    with cur.copy("copy (select * from t2 order by id) to stdout (format binary)") as cp:
        cp.set_types(["int4", "text"])
        bback = list(cp.rows())
    expect("binary COPY rows", bback, rows)

    return {"rows_in": n, "rows_out": len(back), "text_bytes_out": raw, "binary_rows": len(bback)}


def error(conn, args):
    cur = conn.cursor()
    sqlstates = []
    try:
        cur.execute("select 1 / %s", (0,))
        raise Failed("1/0 succeeded")
    except errors.DivisionByZero as e:
        sqlstates.append(e.sqlstate)
    try:
        cur.execute("selec 1")
        raise Failed("a syntax error succeeded")
    except errors.SyntaxError as e:
        sqlstates.append(e.sqlstate)
    cur.execute("create temporary table e (x int)")
    try:
        with conn.transaction():
            cur.execute("insert into e values (%s)", (1,))
            cur.execute("insert into e values (%s::int)", ("nope",))
        raise Failed("a bad integer succeeded")
    except errors.InvalidTextRepresentation as e:
        sqlstates.append(e.sqlstate)
    expect("rows after rollback", cur.execute("select count(*) from e").fetchone()[0], 0)

    class Abort(Exception):
        pass

    try:
        with cur.copy("copy e from stdin") as cp:
            cp.write_row((1,))
            raise Abort()
    except Abort:
        pass
    expect("rows after a failed COPY", cur.execute("select count(*) from e").fetchone()[0], 0)
    after = cur.execute("select 42").fetchone()[0]
    expect("after errors", after, 42)
    return {"sqlstates": sqlstates, "after": after}


def pipeline(conn, args):
    cur = conn.cursor()
    with conn.pipeline() as p:
        cur.execute("create temporary table pl (id int, v text)")
        cur.executemany("insert into pl values (%s, %s)", [(i, f"v{i}") for i in range(500)])
        count = conn.cursor()
        count.execute("select count(*) from pl")
        one = conn.cursor()
        one.execute("select v from pl where id = %s", (499,))
        p.sync()
        n = count.fetchone()[0]
        v = one.fetchone()[0]
    expect("count", n, 500)
    expect("value", v, "v499")
    return {"count": n, "value": v}


def notify(conn, args):
    payload = f"hello from psycopg {os.getpid()}"
    conn.execute("listen hoop_test")
    with connect(args) as other:
        other.execute("select pg_notify(%s, %s)", ("hoop_test", payload))
        other_pid = other.info.backend_pid
    got = list(conn.notifies(timeout=20, stop_after=1))
    if not got:
        raise Failed("no notification within 20 s")
    n = got[0]
    expect("channel", n.channel, "hoop_test")
    expect("payload", n.payload, payload)
    return {"channel": n.channel, "payload": n.payload, "pid_matches": n.pid == other_pid}


def cancel(conn, args):
    tag = f"hoop-cancel-{os.getpid()}"
    outcome = {}

    def sleep():
        try:
            conn.execute(f"select pg_sleep(60) /* {tag} */")
            outcome["error"] = "pg_sleep finished: not cancelled"
        except errors.QueryCanceled as e:
            outcome["sqlstate"] = e.sqlstate
        except Exception as e:  # reported below
            outcome["error"] = f"{type(e).__name__}: {e}"

    started = time.monotonic()
    t = threading.Thread(target=sleep)
    t.start()
    # Wait until the server runs the query (seen from a second session), so
    # the cancel cannot arrive before it and be ignored.
    with connect(args) as watcher:
        deadline = time.monotonic() + 20
        while True:
            active = watcher.execute(
                "select count(*) from pg_stat_activity where state = 'active'"
                " and pid <> pg_backend_pid() and query like %s",
                (f"%{tag}%",),
            ).fetchone()[0]
            if active:
                break
            if time.monotonic() > deadline or not t.is_alive():
                raise Failed(f"the query never showed up as active: {outcome}")
            time.sleep(0.01)
    conn.cancel_safe(timeout=20)
    t.join(30)
    if "error" in outcome or t.is_alive():
        raise Failed(outcome.get("error", "the cancelled query did not return"))
    elapsed = time.monotonic() - started
    after = conn.execute("select 1").fetchone()[0]
    expect("after cancel", after, 1)
    return {"sqlstate": outcome["sqlstate"], "after": after, "seconds": round(elapsed, 3)}


SCENARIOS = {
    "basic": basic,
    "copy": copy,
    "error": error,
    "pipeline": pipeline,
    "notify": notify,
    "cancel": cancel,
}


class Args:
    def __init__(self, argv):
        if len(argv) != 6 or argv[5] not in SCENARIOS:
            raise ValueError(
                f"usage: {argv[0]} HOST PORT USER DBNAME {{{','.join(SCENARIOS)}}}"
            )
        self.host, port, self.user, self.dbname, self.scenario = argv[1:]
        self.port = int(port)


def main(argv):
    try:
        args = Args(argv)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    try:
        with connect(args) as conn:
            result = SCENARIOS[args.scenario](conn, args)
    except Exception as e:
        state = getattr(e, "sqlstate", None)
        print(
            f"error: {args.scenario}: {type(e).__name__}"
            f"{f' [{state}]' if state else ''}: {e}",
            file=sys.stderr,
        )
        return 1
    result["scenario"] = args.scenario
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
