//! Masking of PostgreSQL results through a real cluster and real clients:
//! psql (text rows, COPY, errors, notices), tokio-postgres (binary rows:
//! text, arrays, jsonb, a bigint a column rule hides; citext, domains,
//! enums, numbers and records), `hoop exec`, and a
//! raw frontend that executes a statement it never described (the agent
//! must end the session rather than guess).

mod postgres_common;

use hoop_tests::pg::{APP_DB, APP_USER, PgCluster, connect_tokio};
use postgres_common::*;
use tokio_postgres::types::{FromSql, Type};

/// Values that must never reach the client side.
const RAW: &[&str] = &[
    "amelia@example.com",
    "4242 4242 4242 4242",
    "123-45-6789",
    "bob@example.org",
    "carol@example.net",
    "dave@example.com",
    "123456789",
];

const MASK_ALL: &str = r#"
[connection.mask]
detectors = "all"
strategy = "partial"
[[connection.mask.column]]
pattern = "*ssn*"
strategy = "redact"
"#;

const MASK_DETECTORS_ONLY: &str = r#"
[connection.mask]
detectors = "all"
strategy = "partial"
"#;

/// A cluster with `people` (owned by the superuser, readable by the app
/// role), filled directly so that no raw value passes through hoop.
fn cluster() -> PgCluster {
    let pg = PgCluster::start().expect("start PostgreSQL");
    pg.sql(
        APP_DB,
        &format!(
            "create table people (id int primary key, email text unique, card varchar(40), ssn text, \
             note text, tags text[], doc jsonb, ssn_num bigint);
             insert into people values
               (1, 'amelia@example.com', '4242 4242 4242 4242', '123-45-6789',
                'call +1 415 555 0100 or mail bob@example.org',
                '{{carol@example.net,plain}}', '{{\"contact\": \"dave@example.com\", \"n\": 1}}', 123456789),
               (2, 'none', 'n/a', null, 'order ORD-2024-000123', '{{plain}}', '{{\"n\": 2}}', null);
             grant select, insert on people to {APP_USER};"
        ),
    )
    .expect("create the table");
    pg
}

fn assert_no_raw(what: &str, text: &str) {
    for raw in RAW {
        assert!(
            !text.contains(raw),
            "{what} holds the raw value {raw:?}:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn psql_text_rows_errors_and_notices_are_masked_and_audited() {
    let pg = cluster();
    let s = Setup::start(&[pg_conn("db", &pg).extra(MASK_ALL)]).await;
    let c = s.connect("db");

    let out = psql_ok(
        &c,
        "select id, email, card, ssn, note, tags, doc from people order by id",
    );
    assert_no_raw("psql output", &out);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let first: Vec<&str> = lines[0].split('|').collect();
    assert_eq!(first[0], "1");
    assert_eq!(first[1], "a****@example.com");
    assert_eq!(first[2], "**** **** **** 4242");
    assert!(first[3].contains("REDACTED"), "{out}");
    assert!(first[4].starts_with("call "), "{out}");
    // A row with nothing sensitive arrives exactly as stored.
    assert_eq!(
        lines[1],
        "2|none|n/a||order ORD-2024-000123|{plain}|{\"n\": 2}"
    );

    // The statement's audit event counts what was masked, by column and
    // detector, and names no value.
    let ev = s.wait_audit("the select's statement event", |evs| {
        evs.iter()
            .find(|e| {
                e["event"] == "statement"
                    && e["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("from people"))
            })
            .cloned()
    });
    let m = &ev["masked"];
    assert!(m["values"].as_u64().unwrap() >= 6, "{ev:#}");
    for col in ["email", "card", "ssn", "note", "tags", "doc"] {
        assert!(
            m["columns"].as_array().unwrap().iter().any(|c| c == col),
            "{col} missing in {ev:#}"
        );
    }
    for det in ["email", "card"] {
        assert!(m["detectors"][det].as_u64().unwrap() >= 1, "{ev:#}");
    }
    let audit = std::fs::read_to_string(s.agent.data_dir().join("audit/audit.jsonl")).unwrap();
    assert_no_raw("the audit log", &audit);

    // A notice and a unique violation carry values in their text.
    let out = psql(
        &c,
        APP_DB,
        &[
            "-c",
            "do $$ begin raise notice 'contact %', 'erin@example.com'; end $$",
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("NOTICE:  contact e****@example.com"), "{err}");
    let out = psql(
        &c,
        APP_DB,
        &[
            "-c",
            "insert into people (id, email) select 3, email from people where id = 1",
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("duplicate key value"), "{err}");
    assert!(
        err.contains("Key (email)=(a****@example.com) already exists"),
        "{err}"
    );
    assert_no_raw("psql's error", &err);

    // COPY rows carry no column names, so a connection with column rules
    // refuses COPY TO; the session goes on.
    let out = psql(
        &c,
        APP_DB,
        &[
            "-At",
            "-v",
            "ON_ERROR_STOP=0",
            "-c",
            "copy (select email, ssn from people) to stdout",
            "-c",
            "select 'after'",
        ],
    );
    let err = stderr(&out);
    assert!(
        err.contains("COPY TO is not available on this connection"),
        "{err}"
    );
    assert_eq!(stdout(&out), "after", "{err}");
    assert_no_raw("psql after a refused COPY", &stdout(&out));

    // Every psql above sent statements: the sessions' byte counts say so
    // even when the backend side ended first.
    let ends = s.wait_audit("the psql sessions' ends", |evs| {
        let ends: Vec<_> = evs
            .iter()
            .filter(|e| e["event"] == "session_end")
            .cloned()
            .collect();
        (ends.len() >= 4).then_some(ends)
    });
    for e in ends {
        assert!(e["bytes_up"].as_u64().unwrap() > 0, "{e:#}");
        assert!(e["bytes_down"].as_u64().unwrap() > 0, "{e:#}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_to_text_and_csv_is_masked_without_column_rules() {
    let pg = cluster();
    let s = Setup::start(&[pg_conn("db", &pg).extra(MASK_DETECTORS_ONLY)]).await;
    let c = s.connect("db");
    for (format, sep) in [("text", "\t"), ("csv", ",")] {
        let out = psql(
            &c,
            APP_DB,
            &[
                "-c",
                &format!(
                    "copy (select id, email, card, note from people order by id) to stdout with (format {format})"
                ),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert_no_raw("COPY output", &text);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with(&format!(
                "1{sep}a****@example.com{sep}**** **** **** 4242{sep}"
            )),
            "{text}"
        );
        assert_eq!(
            lines[1],
            format!("2{sep}none{sep}n/a{sep}order ORD-2024-000123")
        );
    }
    let ev = s.wait_audit("the copy's statement event", |evs| {
        evs.iter()
            .find(|e| e["event"] == "statement" && e["masked"]["columns"][0] == "(copy)")
            .cloned()
    });
    assert!(ev["masked"]["values"].as_u64().unwrap() >= 1, "{ev:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_rows_from_tokio_postgres_are_masked() {
    let pg = cluster();
    let s = Setup::start(&[pg_conn("db", &pg).extra(MASK_ALL)]).await;
    let c = s.connect("db");
    let client = connect_tokio("127.0.0.1", c.addr.port(), CLIENT_USER, APP_DB, None)
        .await
        .unwrap();
    // tokio-postgres asks for every result column in binary.
    let row = client
        .query_one(
            "select email, card, tags, doc, ssn_num, id from people where id = $1",
            &[&1i32],
        )
        .await
        .unwrap();
    let email: String = row.get(0);
    let card: String = row.get(1);
    let tags: Vec<String> = row.get(2);
    let doc: RawValue = row.get(3);
    let ssn_num: Option<i64> = row.get(4);
    let id: i32 = row.get(5);
    assert_eq!(email, "a****@example.com");
    assert_eq!(card, "**** **** **** 4242");
    assert_eq!(
        tags,
        vec!["c****@example.net".to_string(), "plain".to_string()]
    );
    assert_eq!(doc.0[0], 1, "jsonb version byte");
    let doc_text = String::from_utf8(doc.0[1..].to_vec()).unwrap();
    assert_no_raw("jsonb", &doc_text);
    let parsed: serde_json::Value = serde_json::from_str(&doc_text).unwrap();
    assert_eq!(parsed["n"], 1, "{doc_text}");
    // A bigint cannot hold a mask: the rule's column arrives as NULL.
    assert_eq!(ssn_num, None);
    assert_eq!(id, 1);

    // A prepared statement executed again (no new Describe) is masked
    // from the columns described at prepare time.
    let stmt = client
        .prepare("select email from people where id = $1")
        .await
        .unwrap();
    for _ in 0..3 {
        let r = client.query_one(&stmt, &[&1i32]).await.unwrap();
        assert_eq!(r.get::<_, String>(0), "a****@example.com");
    }
    let r = client.query_one(&stmt, &[&2i32]).await.unwrap();
    assert_eq!(r.get::<_, String>(0), "none");

    let ev = s.wait_audit("the binary select's event", |evs| {
        evs.iter()
            .find(|e| {
                e["event"] == "statement"
                    && e["masked"]["nulled"]
                        .as_array()
                        .is_some_and(|n| n.iter().any(|c| c == "ssn_num"))
            })
            .cloned()
    });
    assert_eq!(ev["kind"], "execute", "{ev:#}");
}

/// Any binary value, as sent.
struct RawValue(Vec<u8>);

impl<'a> FromSql<'a> for RawValue {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Binary values of types whose OIDs are not fixed (an extension's
/// `citext`, a domain, an enum), of numbers that hold a card number, of
/// addresses and of records: masked when the agent can read them,
/// withheld (NULL, audited) when it cannot rewrite or read them.
#[tokio::test(flavor = "multi_thread")]
async fn binary_values_of_other_types_are_masked_or_withheld() {
    let pg = cluster();
    pg.sql(
        APP_DB,
        &format!(
            "create extension citext;
             create domain contact as text;
             create type mood as enum ('happy', 'sad');
             create table extra (ci citext, dom contact, m mood, card_num bigint,
                card_dec numeric(20, 0), nums bigint[], plain_num bigint, price numeric(8, 2),
                addr inet, names contact[]);
             insert into extra values ('bob@example.org', 'dave@example.com', 'happy',
                4242424242424242, 4242424242424242, '{{1,4242424242424242}}', 42, 12.50,
                '10.1.2.3', '{{carol@example.net}}');
             grant select on extra to {APP_USER};"
        ),
    )
    .expect("create the types and table");
    let s = Setup::start(&[pg_conn("db", &pg).extra(MASK_DETECTORS_ONLY)]).await;
    let c = s.connect("db");
    let client = connect_tokio("127.0.0.1", c.addr.port(), CLIENT_USER, APP_DB, None)
        .await
        .unwrap();
    let row = client
        .query_one(
            "select ci, dom, m, card_num, card_dec, nums, plain_num, price, addr, names, \
             row(ci, dom) as pair from extra",
            &[],
        )
        .await
        .unwrap();
    let get = |i: usize| row.get::<_, Option<RawValue>>(i).map(|v| v.0);
    let text = |i: usize| get(i).map(|v| String::from_utf8(v).unwrap());
    assert_eq!(text(0).as_deref(), Some("b****@example.org"), "citext");
    assert_eq!(
        text(1).as_deref(),
        Some("d****@example.com"),
        "domain over text"
    );
    assert_eq!(text(2).as_deref(), Some("happy"), "enum");
    assert_eq!(get(3), None, "a bigint holding a card number is withheld");
    assert_eq!(get(4), None, "a numeric holding a card number is withheld");
    assert_eq!(get(5), None, "an array holding a card number is withheld");
    assert_eq!(get(6), Some(42i64.to_be_bytes().to_vec()), "a plain bigint");
    // numeric 12.50: 2 digits (12, 5000), weight 0, positive, scale 2.
    assert_eq!(
        get(7),
        Some(vec![0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x13, 0x88]),
        "a plain numeric"
    );
    assert_eq!(get(8), None, "an address, with the ip detector on");
    let names = get(9).expect("an array of a domain over text is rewritten");
    let names = String::from_utf8_lossy(&names);
    assert!(names.contains("c****@example.net"), "{names}");
    assert_eq!(get(10), None, "a record cannot be read: withheld");
    for i in 0..11 {
        if let Some(v) = get(i) {
            assert_no_raw(&format!("column {i}"), &String::from_utf8_lossy(&v));
        }
    }

    let ev = s.wait_audit("the select's event", |evs| {
        evs.iter()
            .find(|e| e["event"] == "statement" && e["masked"]["nulled"].is_array())
            .cloned()
    });
    let nulled: Vec<&str> = ev["masked"]["nulled"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    for c in ["card_num", "card_dec", "nums", "addr", "pair"] {
        assert!(nulled.contains(&c), "{c} not in {nulled:?}: {ev:#}");
    }
    assert!(!nulled.contains(&"plain_num"), "{ev:#}");
}

/// A backend where the agent cannot read `pg_type` (here: the catalog's
/// grant revoked; a PostgreSQL look-alike may lack it) still serves a
/// masked session: built-in types are masked as usual and values of any
/// other type are withheld.
#[tokio::test(flavor = "multi_thread")]
async fn unreadable_type_catalog_withholds_other_types() {
    let pg = cluster();
    pg.sql(
        APP_DB,
        &format!(
            "create type mood as enum ('happy', 'sad');
             create table extra (email text, m mood);
             insert into extra values ('bob@example.org', 'happy');
             grant select on extra to {APP_USER};
             revoke select on pg_catalog.pg_proc from public;"
        ),
    )
    .expect("create the table, revoke the catalog");
    let s = Setup::start(&[pg_conn("db", &pg).extra(MASK_DETECTORS_ONLY)]).await;
    let c = s.connect("db");
    let client = connect_tokio("127.0.0.1", c.addr.port(), CLIENT_USER, APP_DB, None)
        .await
        .unwrap();
    let row = client
        .query_one("select email, m from extra", &[])
        .await
        .unwrap();
    let email = row.get::<_, Option<RawValue>>(0).map(|v| v.0);
    assert_eq!(email.as_deref(), Some(&b"b****@example.org"[..]));
    assert!(
        row.get::<_, Option<RawValue>>(1).is_none(),
        "an enum the agent could not look up is withheld"
    );
    // The session goes on.
    let n: i32 = client.query_one("select 1", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
}

/// Column rules follow the column the server reports (table OID and
/// column number, looked up at login): renaming it in the query does not
/// take it out of its rule, and a rule naming a table leaves a column of
/// the same name in another table alone. An expression has no table: the
/// name it shows is matched, as before.
#[tokio::test(flavor = "multi_thread")]
async fn column_rules_follow_the_real_column() {
    let pg = cluster();
    pg.sql(
        APP_DB,
        &format!(
            "create table cards (id int, pin text);
             insert into cards values (1, 'pin-4711');
             create table notes (id int, pin text);
             insert into notes values (1, 'pin-0000');
             create view cards_v as select * from cards;
             create table pcards (id int, pin text) partition by range (id);
             create table pcards_1 partition of pcards for values from (0) to (100);
             insert into pcards values (1, 'pin-4711');
             grant select on cards, notes, cards_v, pcards, pcards_1 to {APP_USER};"
        ),
    )
    .expect("create the tables");
    let rule = format!(
        "{MASK_DETECTORS_ONLY}[[connection.mask.column]]\npattern = \"cards.pin\"\nstrategy = \"redact\"\n\
         [[connection.mask.column]]\npattern = \"pcards.pin\"\nstrategy = \"redact\"\n"
    );
    let s = Setup::start(&[pg_conn("db", &pg).extra(&rule)]).await;
    let c = s.connect("db");
    for sql in [
        "select pin from cards",
        "select pin as x from cards",
        "select c.pin as \"PIN code\" from cards c",
        "select pin || '' as pin from cards",
        // RowDescription names the view or the partition read, not the
        // table the rule names: the column alone decides there.
        "select pin from cards_v",
        "select pin as x from cards_v",
        "select pin from pcards",
        "select pin as x from pcards_1",
    ] {
        let out = psql_ok(&c, sql);
        assert!(!out.contains("4711"), "{sql}: {out}");
        assert!(out.contains("REDACTED"), "{sql}: {out}");
    }
    assert_eq!(psql_ok(&c, "select pin from notes"), "pin-0000");
    assert_eq!(psql_ok(&c, "select pin as x from notes"), "pin-0000");
    // tokio-postgres (extended protocol, binary) sees the same.
    let client = connect_tokio("127.0.0.1", c.addr.port(), CLIENT_USER, APP_DB, None)
        .await
        .unwrap();
    let row = client
        .query_one("select c.pin as x, n.pin as y from cards c, notes n", &[])
        .await
        .unwrap();
    let x: String = row.get(0);
    let y: String = row.get(1);
    assert!(!x.contains("4711") && x.contains("REDACTED"), "{x}");
    assert_eq!(y, "pin-0000");
}

#[tokio::test(flavor = "multi_thread")]
async fn hoop_exec_output_is_masked() {
    let pg = cluster();
    let s = Setup::start(&[pg_conn("db", &pg).extra(MASK_ALL)]).await;
    for format in ["table", "json", "csv"] {
        let out = s.agent.run_hoop(
            Some(&s.token),
            &[
                "exec",
                "db",
                "-i",
                "select email, card, ssn from people order by id",
                "-o",
                format,
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_raw(&format!("hoop exec -o {format}"), &text);
        assert!(text.contains("a****@example.com"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_of_an_undescribed_statement_end_the_session() {
    let pg = cluster();
    let s = Setup::start(&[pg_conn("db", &pg).extra(MASK_ALL)]).await;
    let c = s.connect("db");
    let (mut raw, _) = RawPg::connect(c.addr, &[("user", CLIENT_USER), ("database", APP_DB)])
        .await
        .unwrap();
    // Parse, Bind, Execute and Sync with no Describe: the agent cannot
    // know the columns of the rows that come back.
    let mut batch = fe::parse("s1", "select email from people where id = 1");
    batch.extend(fe::bind("", "s1", &[]));
    batch.extend(fe::execute(""));
    batch.extend(fe::sync());
    raw.send(&batch).await.unwrap();
    let msgs = raw.until_closed().await.unwrap();
    assert!(!msgs.iter().any(|m| m.tag == b'D'), "{}", tags(&msgs));
    let err = msgs
        .iter()
        .find(|m| m.tag == b'E')
        .unwrap_or_else(|| panic!("no error in {}", tags(&msgs)));
    let f = err.fields();
    assert_eq!(f[&'S'], "FATAL");
    assert!(f[&'M'].contains("masking"), "{:?}", f);
    for m in &msgs {
        assert_no_raw("a message", &String::from_utf8_lossy(&m.body));
    }
}
