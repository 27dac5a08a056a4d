"""A PyMySQL client for hoop's end-to-end tests: a driver from another
ecosystem, against a MariaDB/MySQL server or a local `hoop connect` port.

    python mysql_client.py HOST PORT USER DBNAME SCENARIO [ROWS]

The password comes from MYSQL_PWD (empty when unset: through hoop none is
needed). HOOP_MYSQL_CA names a CA file to connect with TLS, verifying the
server's certificate and name; without it the connection is plain TCP.
Each scenario checks its own results, prints one JSON object on stdout and
exits 0; on any failure it prints the error (with the server's error code)
to stderr and exits 1 (2 for bad arguments).

PyMySQL speaks the text protocol only (no server-side prepared
statements) and does not ask for CLIENT_DEPRECATE_EOF, so its result sets
end with EOF packets.

Scenarios:
  basic   identity and TLS state, a temporary table, executemany (one
          multi-row INSERT), parameters (interpolated client-side), NULL,
          binary and 4-byte UTF-8 values, a multi-statement query
          (CLIENT_MULTI_STATEMENTS) with several result sets, COM_PING and
          COM_INIT_DB
  error   server errors (syntax 1064, unknown table 1146, duplicate key
          1062 inside a transaction that is rolled back); the connection
          stays usable
  large   ROWS rows (default 100,000) of about 100 bytes, buffered and then
          unbuffered (SSCursor); MariaDB's SEQUENCE engine makes them
  kill    SELECT SLEEP(60) interrupted by KILL QUERY from a second
          connection (error 1317); the first connection stays usable
  infile  LOAD DATA LOCAL INFILE of 1,000 rows (the server asks the client
          for the file)
"""

import json
import os
import sys
import tempfile
import threading
import time

import pymysql
from pymysql.constants import CLIENT


class Failed(Exception):
    """A result that is not what the scenario expected."""


def expect(what, got, want):
    if got != want:
        raise Failed(f"{what}: got {got!r}, want {want!r}")


def connect(args, **kw):
    tls = {}
    ca = os.environ.get("HOOP_MYSQL_CA")
    if ca:
        tls = {"ssl_ca": ca, "ssl_verify_cert": True, "ssl_verify_identity": True}
    return pymysql.connect(
        host=args.host,
        port=args.port,
        user=args.user,
        password=os.environ.get("MYSQL_PWD", ""),
        database=args.dbname,
        charset="utf8mb4",
        connect_timeout=20,
        autocommit=True,
        program_name="hoop-tests-py",
        **tls,
        **kw,
    )


def server_error(e):
    """The server's error code of a PyMySQL error, or None."""
    return e.args[0] if e.args and isinstance(e.args[0], int) else None


def basic(args):
    with connect(args, client_flag=CLIENT.MULTI_STATEMENTS) as conn:
        cur = conn.cursor()
        cur.execute("select current_user(), database(), version()")
        user, database, version = cur.fetchone()
        cur.execute("show session status like 'Ssl_version'")
        ssl = (cur.fetchone() or ("", ""))[1]

        cur.execute(
            "create temporary table items (id int primary key,"
            " name varchar(100) not null, price decimal(10, 2), data blob)"
        )
        items = [
            (1, "alpha", "1.50", b"\x00\x01\xff"),
            (2, "beta", "-2.25", b"beta"),
            (3, "gamma \U0001f42c 'quoted' \\", None, b""),
        ]
        inserted = cur.executemany("insert into items values (%s, %s, %s, %s)", items)
        expect("inserted", inserted, 3)

        cur.execute(
            "select id, name from items where id >= %s and name <> %s order by id",
            (2, "nope"),
        )
        rows = [list(r) for r in cur.fetchall()]
        expect("filtered rows", rows, [[i[0], i[1]] for i in items[1:]])

        cur.execute("select id, name, price, data from items order by id")
        back = [(r[0], r[1], None if r[2] is None else str(r[2]), r[3]) for r in cur.fetchall()]
        expect("all rows", back, items)

        cur.execute("select 1; select 2, 'two'; update items set price = 0 where id = 3; select 4")
        results = []
        while True:
            if cur.description is None:
                results.append({"affected": cur.rowcount})
            else:
                results.append([list(r) for r in cur.fetchall()])
            if not cur.nextset():
                break
        expect(
            "multi-statement results",
            results,
            [[[1]], [[2, "two"]], {"affected": 1}, [[4]]],
        )

        conn.ping(reconnect=False)
        conn.select_db(args.dbname)
        cur.execute("select database()")
        expect("database after COM_INIT_DB", cur.fetchone()[0], args.dbname)

        return {
            "user": user,
            "database": database,
            "version": version,
            "ssl": ssl,
            "rows": rows,
            "names": [r[1] for r in back],
            "data_hex": [r[3].hex() for r in back],
            "multi": results,
        }


def error(args):
    codes = []
    with connect(args) as conn:
        cur = conn.cursor()
        for query, want in [
            ("selec 1", 1064),
            ("select * from no_such_table", 1146),
        ]:
            try:
                cur.execute(query)
                raise Failed(f"{query!r} succeeded")
            except pymysql.MySQLError as e:
                expect(f"error code of {query!r}", server_error(e), want)
                codes.append(server_error(e))
        cur.execute("create temporary table e (x int primary key)")
        conn.begin()
        try:
            cur.execute("insert into e values (%s)", (1,))
            cur.execute("insert into e values (%s)", (1,))
            raise Failed("a duplicate key succeeded")
        except pymysql.err.IntegrityError as e:
            codes.append(server_error(e))
            conn.rollback()
        cur.execute("select count(*) from e")
        expect("rows after rollback", cur.fetchone()[0], 0)
        cur.execute("select 42")
        after = cur.fetchone()[0]
        expect("after errors", after, 42)
    return {"codes": codes, "after": after}


def large(args):
    n = args.rows
    query = f"select seq, repeat('x', 100) from seq_1_to_{n}"
    with connect(args) as conn:
        cur = conn.cursor()
        cur.execute(query)
        rows = cur.fetchall()
        expect("buffered rows", len(rows), n)
        expect("last row", rows[-1], (n, "x" * 100))
        total = sum(r[0] for r in rows)
        expect("sum of ids", total, n * (n + 1) // 2)
        del rows

        ss = conn.cursor(pymysql.cursors.SSCursor)
        ss.execute(query)
        count, size = 0, 0
        for r in ss:
            count += 1
            size += len(r[1])
        ss.close()
        expect("unbuffered rows", count, n)
        cur.execute("select 1")
        expect("after", cur.fetchone()[0], 1)
    return {"rows": n, "sum": total, "unbuffered_rows": count, "bytes": size}


def kill(args):
    tag = f"hoop-kill-{os.getpid()}"
    outcome = {}
    with connect(args) as conn:

        def sleep():
            try:
                with conn.cursor() as c:
                    c.execute(f"select sleep(60) /* {tag} */")
                    outcome["error"] = f"sleep returned {c.fetchone()!r}: not killed"
            except pymysql.MySQLError as e:
                outcome["code"] = server_error(e)
            except Exception as e:  # reported below
                outcome["error"] = f"{type(e).__name__}: {e}"

        started = time.monotonic()
        t = threading.Thread(target=sleep)
        t.start()
        # Find the running query from a second session (a user sees its own
        # sessions), so KILL cannot come before it and miss.
        with connect(args) as other:
            cur = other.cursor()
            deadline = time.monotonic() + 20
            while True:
                cur.execute(
                    "select id from information_schema.processlist"
                    " where id <> connection_id() and info like %s",
                    (f"%{tag}%",),
                )
                found = cur.fetchone()
                if found:
                    break
                if time.monotonic() > deadline or not t.is_alive():
                    raise Failed(f"the query never showed up in the processlist: {outcome}")
                time.sleep(0.01)
            cur.execute(f"kill query {int(found[0])}")
        t.join(30)
        if "error" in outcome or t.is_alive():
            raise Failed(outcome.get("error", "the killed query did not return"))
        elapsed = time.monotonic() - started
        with conn.cursor() as c:
            c.execute("select 1")
            after = c.fetchone()[0]
    expect("after kill", after, 1)
    return {"code": outcome["code"], "after": after, "seconds": round(elapsed, 3)}


def infile(args):
    n = 1000
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", encoding="utf-8") as f:
        for i in range(n):
            f.write(f"{i}\trow {i} \u00e9\n")
        f.flush()
        with connect(args, local_infile=True) as conn:
            cur = conn.cursor()
            cur.execute("create temporary table li (id int primary key, body varchar(50))")
            loaded = cur.execute(
                "load data local infile %s into table li"
                " character set utf8mb4 fields terminated by '\\t'",
                (f.name,),
            )
            cur.execute("select count(*), sum(id), max(body) from li")
            count, total, top = cur.fetchone()
    expect("rows loaded", loaded, n)
    expect("rows", count, n)
    expect("sum", int(total), n * (n - 1) // 2)
    return {"rows": count, "sum": int(total), "max_body": top}


SCENARIOS = {
    "basic": basic,
    "error": error,
    "large": large,
    "kill": kill,
    "infile": infile,
}


class Args:
    def __init__(self, argv):
        if len(argv) not in (6, 7) or argv[5] not in SCENARIOS:
            raise ValueError(
                f"usage: {argv[0]} HOST PORT USER DBNAME {{{','.join(SCENARIOS)}}} [ROWS]"
            )
        self.host, port, self.user, self.dbname, self.scenario = argv[1:6]
        self.port = int(port)
        self.rows = int(argv[6]) if len(argv) == 7 else 100_000
        if self.rows < 1:
            raise ValueError("ROWS must be at least 1")


def main(argv):
    try:
        args = Args(argv)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    try:
        result = SCENARIOS[args.scenario](args)
    except Exception as e:
        code = server_error(e) if isinstance(e, pymysql.MySQLError) else None
        print(
            f"error: {args.scenario}: {type(e).__name__}"
            f"{f' [{code}]' if code else ''}: {e}",
            file=sys.stderr,
        )
        return 1
    result["scenario"] = args.scenario
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
