use bytes::{BufMut, Bytes};

use super::*;
use crate::mysql::column::{MYSQL_TYPE_LONGLONG, MYSQL_TYPE_VAR_STRING};
use crate::mysql::command::*;
use crate::mysql::flags::*;
use crate::mysql::stmt::*;

/// The `mariadb` client's first query in the captured session.
const QUERY: &str =
    "270000000373656c6563742031206173206f6e652c206e756c6c206173206e2c2027616263272061732073";

/// COM_STMT_EXECUTE of statement 2 with a BIGINT 42 and a string "hello".
const EXECUTE: &str = "1e0000001702000000000100000000010800fd002a000000000000000568656c6c6f";

/// MariaDB's COM_STMT_PREPARE_OK for that statement: 13 columns, 2
/// parameters.
const PREPARE_OK: &str = "0c00000100020000000d000200000000";

const CAPS: u64 = CLIENT_PROTOCOL_41 | CLIENT_DEPRECATE_EOF;

#[track_caller]
fn round_trip(cmd: &Command, caps: u64) {
    let mut out = Vec::new();
    cmd.encode(caps, &mut out).unwrap();
    assert_eq!(&Command::decode(&Bytes::from(out), caps).unwrap(), cmd);
}

#[test]
fn captured_query_decodes_and_reencodes() {
    let p = packet(QUERY);
    assert_eq!(p.seq, 0);
    let cmd = Command::decode(&p.payload, MARIADB_SESSION_CAPS).unwrap();
    assert_eq!(cmd.name(), "COM_QUERY");
    let Command::Query(q) = &cmd else {
        panic!("not a query")
    };
    assert_eq!(q.sql_str(), Some("select 1 as one, null as n, 'abc' as s"));
    assert_eq!(q.attributes, None);
    let mut out = Vec::new();
    cmd.encode(MARIADB_SESSION_CAPS, &mut out).unwrap();
    assert_eq!(out, &p.payload[..]);
    // The SQL is bytes: a binary literal is kept, not refused.
    let raw = Command::decode(
        &Bytes::from_static(b"\x03insert into t values ('\xff\xfe')"),
        CAPS,
    )
    .unwrap();
    let Command::Query(q) = raw else { panic!() };
    assert_eq!(q.sql_str(), None);
    assert_eq!(&q.sql[..], b"insert into t values ('\xff\xfe')");
}

#[test]
fn queries_with_attributes_find_their_sql() {
    let caps = CAPS | CLIENT_QUERY_ATTRIBUTES;
    // Two attributes, the second NULL: a string and a BIGINT.
    let mut body = vec![COM_QUERY, 2, 1, 0b10, 1];
    body.extend_from_slice(&[MYSQL_TYPE_VAR_STRING, 0, 3, b'a', b'p', b'p']);
    body.extend_from_slice(&[MYSQL_TYPE_LONGLONG, 0, 1, b'n']);
    body.extend_from_slice(b"\x04hoop");
    body.extend_from_slice(b"SELECT 1");
    let cmd = Command::decode(&Bytes::from(body.clone()), caps).unwrap();
    let Command::Query(q) = &cmd else { panic!() };
    assert_eq!(&q.sql[..], b"SELECT 1");
    assert_eq!(q.attributes.as_ref().map(Bytes::len), Some(body.len() - 9));
    let mut out = Vec::new();
    cmd.encode(caps, &mut out).unwrap();
    assert_eq!(out, body);

    // No attributes: two zero counts.
    let mut out = Vec::new();
    encode_query(b"SELECT 2", caps, &mut out);
    assert_eq!(&out[..3], &[COM_QUERY, 0, 1]);
    let Command::Query(q) = Command::decode(&Bytes::from(out), caps).unwrap() else {
        panic!()
    };
    assert_eq!(&q.sql[..], b"SELECT 2");
    round_trip(
        &Command::Query(command::Query {
            attributes: None,
            sql: Bytes::from_static(b"SELECT 3"),
        }),
        CAPS,
    );

    // Attributes whose types are missing, or whose values are cut short.
    assert_invalid(Command::decode(
        &Bytes::from_static(b"\x03\x01\x01\x00\x00SELECT"),
        caps,
    ));
    assert_invalid(Command::decode(
        &Bytes::from_static(b"\x03\x01\x01\x00\x01\x08\x00\x00\x01\x02"),
        caps,
    ));
    // A huge attribute count is refused before anything is reserved.
    assert_invalid(Command::decode(
        &Bytes::from_static(b"\x03\xfe\xff\xff\xff\xff\xff\xff\xff\x0f\x01\x00\x01"),
        caps,
    ));
}

#[test]
fn captured_execute_decodes_its_parameters() {
    let p = packet(EXECUTE);
    let cmd = Command::decode(&p.payload, CAPS).unwrap();
    let Command::StmtExecute(ex) = &cmd else {
        panic!("not an execute")
    };
    assert_eq!(ex.statement_id, 2);
    assert_eq!(ex.flags, CURSOR_TYPE_NO_CURSOR);
    assert!(!ex.opens_cursor());
    assert_eq!(ex.iteration_count, 1);
    let params = ex.params(2, CAPS).unwrap();
    assert_eq!(params.count, 2);
    assert!(!params.is_null(0) && !params.is_null(1));
    assert!(params.new_params_bound);
    let types: Vec<u8> = params.types.iter().map(|t| t.column_type).collect();
    assert_eq!(types, [MYSQL_TYPE_LONGLONG, MYSQL_TYPE_VAR_STRING]);
    assert_eq!(&params.values[..], b"\x2a\0\0\0\0\0\0\0\x05hello");
    let mut out = Vec::new();
    cmd.encode(CAPS, &mut out).unwrap();
    assert_eq!(out, &p.payload[..]);

    let prep = StmtPrepareOk::decode(&payload(PREPARE_OK)).unwrap();
    assert_eq!(
        prep,
        StmtPrepareOk {
            statement_id: 2,
            num_columns: 13,
            num_params: 2,
            warnings: 0,
            metadata_follows: None,
        }
    );
    let mut out = Vec::new();
    prep.encode(&mut out);
    assert_eq!(out, &payload(PREPARE_OK)[..]);
}

#[test]
fn execute_parameter_blocks() {
    let execute = |params: &[u8], flags: u8| {
        let mut p = vec![COM_STMT_EXECUTE, 9, 0, 0, 0, flags, 1, 0, 0, 0];
        p.extend_from_slice(params);
        StmtExecute::decode(&Bytes::from(p)).unwrap()
    };
    // No parameters: nothing follows.
    let ex = execute(b"", CURSOR_TYPE_READ_ONLY);
    assert!(ex.opens_cursor());
    assert_eq!(ex.params(0, CAPS).unwrap().count, 0);
    // Types from an earlier execute: the flag is 0 and values follow.
    let p = execute(b"\x01\x00\x07\x00", 0).params(1, CAPS).unwrap();
    assert!(p.is_null(0));
    assert!(!p.new_params_bound);
    assert!(p.types.is_empty());
    assert_eq!(&p.values[..], b"\x07\x00");
    // With query attributes the count is sent, and names with the types.
    let caps = CAPS | CLIENT_QUERY_ATTRIBUTES;
    let p = execute(b"\x01\x00\x01\xfd\x80\x01n\x01v", PARAMETER_COUNT_AVAILABLE)
        .params(5, caps)
        .unwrap();
    assert_eq!(p.count, 1);
    assert!(p.types[0].unsigned);
    assert_eq!(p.types[0].name.as_deref(), Some(&b"n"[..]));
    assert_eq!(&p.values[..], b"\x01v");

    // Hostile blocks: a count beyond the bytes, a bad flag, missing types.
    assert_invalid(execute(b"\x00\x01", 0).params(100_000, CAPS));
    assert_invalid(execute(b"\x00\x02", 0).params(1, CAPS));
    assert_invalid(execute(b"\x00\x01\x08", 0).params(2, CAPS));
    assert_invalid(
        execute(
            b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff",
            PARAMETER_COUNT_AVAILABLE,
        )
        .params(0, caps),
    );
    assert_invalid(StmtExecute::decode(&Bytes::from_static(b"\x17\x01\x00")));
    assert!(matches!(
        StmtExecute::decode(&Bytes::from_static(b"\x03")),
        Err(DecodeError::Unexpected { header: 3, .. })
    ));
}

#[test]
fn other_commands_round_trip() {
    for cmd in [
        Command::Quit,
        Command::Ping,
        Command::Statistics,
        Command::ResetConnection,
        Command::InitDb(Bytes::from_static(b"shop")),
        Command::StmtPrepare(Bytes::from_static(b"SELECT ?")),
        Command::FieldList {
            table: Bytes::from_static(b"users"),
            wildcard: Bytes::from_static(b"e%"),
        },
        Command::ProcessKill(42),
        Command::ChangeUser(Bytes::from_static(b"bob\0\x00")),
        Command::StmtSendLongData {
            statement_id: 1,
            param_id: 2,
            data: Bytes::from_static(b"chunk"),
        },
        Command::StmtClose(7),
        Command::StmtReset(8),
        Command::SetOption(MYSQL_OPTION_MULTI_STATEMENTS_OFF),
        Command::StmtFetch {
            statement_id: 3,
            rows: 100,
        },
        Command::Other {
            code: COM_BINLOG_DUMP,
            body: Bytes::from_static(b"\x04\0\0\0"),
        },
    ] {
        round_trip(&cmd, CAPS);
    }
    assert_eq!(
        Command::decode(&payload("0100000001"), CAPS),
        Ok(Command::Quit)
    );
    assert_eq!(
        Command::decode(&payload("050000001902000000"), CAPS),
        Ok(Command::StmtClose(2))
    );
    assert_eq!(command_name(COM_SHUTDOWN), "COM_SHUTDOWN");
    assert_eq!(command_name(0x99), "COM_UNKNOWN");
}

#[test]
fn hostile_commands_are_errors() {
    assert_invalid(Command::decode(&Bytes::new(), CAPS));
    for bytes in [
        &b"\x19\x01\x02"[..],
        b"\x19\x01\x02\x03\x04\x05",
        b"\x1a",
        b"\x0c\x01",
        b"\x1b\x01",
        b"\x1c\x01\x00\x00\x00\x01",
        b"\x18\x01\x00\x00\x00\x01",
        b"\x04no-nul",
    ] {
        assert_invalid(Command::decode(&Bytes::copy_from_slice(bytes), CAPS));
    }
    // Commands without arguments ignore trailing bytes, like servers.
    assert_eq!(
        Command::decode(&Bytes::from_static(b"\x0eextra"), CAPS),
        Ok(Command::Ping)
    );
    // Encoders refuse what would be read back differently.
    let bad = Command::FieldList {
        table: Bytes::from_static(b"a\0b"),
        wildcard: Bytes::new(),
    };
    assert!(bad.encode(CAPS, &mut Vec::new()).is_err());
    let attrs = Command::Query(command::Query {
        attributes: Some(Bytes::from_static(b"\0\x01")),
        sql: Bytes::new(),
    });
    assert!(attrs.encode(CAPS, &mut Vec::new()).is_err());
    let mut out = Vec::new();
    out.put_u8(0);
    assert_eq!(
        Command::decode(&Bytes::from(out), CAPS),
        Ok(Command::Other {
            code: COM_SLEEP,
            body: Bytes::new()
        })
    );
}
