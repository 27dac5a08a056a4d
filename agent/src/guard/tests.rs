use super::*;

fn ro() -> Guard {
    Guard::new(&[], true).unwrap()
}

fn denied(g: &Guard, sql: &str) -> bool {
    matches!(g.check(sql), Verdict::Deny { .. })
}

#[test]
fn reads_pass_read_only() {
    let g = ro();
    for sql in [
        "select 1",
        "SELECT * FROM t WHERE name = 'drop table x; delete'",
        "with x as (select 1) select * from x",
        "show search_path",
        "explain select 1",
        "explain analyze select * from t",
        "begin; select 1; commit",
        "BEGIN READ ONLY",
        "copy (select * from t) to stdout",
        "COPY t TO STDOUT WITH (FORMAT csv)",
        "set search_path = public",
        "select $$ delete from t $$",
        "select $tag$ insert; $tag$ , 2",
        "-- delete from t\nselect 1",
        "/* update /* nested */ t */ select 1",
        "select e'it\\'s; update' as x",
        "listen chan",
        "select replace('hoop', 'o', '0')",
        "select 'admin' as role, 'nice' as comment",
        "show default_transaction_read_only",
        "select 1 as analyze",
        "fetch 10 from c",
        "",
        ";;",
    ] {
        assert!(!denied(&g, sql), "{sql}");
    }
}

#[test]
fn writes_are_refused_read_only() {
    let g = ro();
    for sql in [
        "insert into t values (1)",
        "UPDATE t SET a = 1",
        "delete from t",
        "select 1; drop table t",
        "with x as (delete from t returning *) select * from x",
        "explain analyze delete from t",
        "create table x (a int)",
        "truncate t",
        "copy t from stdin",
        "COPY t FROM '/etc/passwd'",
        "set default_transaction_read_only = off",
        "SET tx_read_only = 0",
        "set session tx_read_only = off",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "begin read write",
        "start transaction read write",
        "select set_config('default_transaction_read_only', 'off', false)",
        "reset default_transaction_read_only",
        "set role admin",
        "set session authorization postgres",
        "call p()",
        "do $$ begin delete from t; end $$",
        "grant all on t to public",
        "vacuum t",
        "notify chan",
        "select nextval('s')",
        "select 1 as x into copy_t",
        "set \"default_transaction_read_only\" = off",
        "select \"set_config\"('a', 'b', false)",
        "select lo_from_bytea(0, '\\x01')",
        "reset all",
    ] {
        match g.check(sql) {
            Verdict::Deny { rule, message } => {
                assert_eq!(rule, "read_only");
                assert!(message.contains("read-only"), "{message}");
            }
            Verdict::Allow => panic!("allowed: {sql}"),
        }
    }
}

#[test]
fn deny_rules_match_text_with_their_message() {
    let g = Guard::new(
        &[DenyRule {
            pattern: r"(?i)\bdrop\s+table\b".into(),
            message: "DROP TABLE is not allowed".into(),
        }],
        false,
    )
    .unwrap();
    assert_eq!(
        g.check("DROP   TABLE users"),
        Verdict::Deny {
            rule: r"(?i)\bdrop\s+table\b".into(),
            message: "DROP TABLE is not allowed".into()
        }
    );
    assert_eq!(g.check("select 'drop'"), Verdict::Allow);
    assert_eq!(g.check("insert into t values (1)"), Verdict::Allow);
    assert!(!g.is_empty());
    assert!(Guard::new(&[], false).unwrap().is_empty());
}

#[test]
fn lexer_splits_outside_literals() {
    let s = split_statements("select 'a;b'; select \"x;y\" from t; -- c;\n select 2");
    assert_eq!(s.len(), 3);
    assert_eq!(s[1].words, vec!["SELECT", "X;Y", "FROM", "T"]);
    // Unterminated input does not panic.
    for bad in [
        "select 'abc",
        "select $x$ abc",
        "/* abc",
        "select e'\\",
        "$",
        "$1",
        "e'",
    ] {
        let _ = split_statements(bad);
    }
}

#[test]
fn deny_rules_see_through_comments() {
    let g = Guard::new(
        &[DenyRule {
            pattern: r"(?i)\bdrop\s+table\b".into(),
            message: "no".into(),
        }],
        false,
    )
    .unwrap();
    for sql in [
        "drop/**/table t",
        "drop -- x\ntable t",
        "DROP /* a /* b */ */ TABLE t",
    ] {
        assert!(denied(&g, sql), "{sql}");
    }
    assert!(!denied(&g, "select 'drop /* */ x'"));
    assert_eq!(normalize("a  /* c */\n b -- d\n'x  y'"), "a b 'x  y'");
}
