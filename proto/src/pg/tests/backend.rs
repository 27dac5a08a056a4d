use std::borrow::Cow;

use bytes::Bytes;

use super::*;
use crate::pg::backend::*;

/// `SELECT * FROM nope` on PostgreSQL 17, byte for byte.
const ERROR_FIXTURE: &[u8] = b"E\x00\x00\x00gSERROR\x00VERROR\x00C42P01\x00\
Mrelation \"nope\" does not exist\x00P15\x00Fparse_relation.c\x00L1449\x00\
RparserOpenTable\x00\x00";

/// `SELECT 1 AS one`: RowDescription, DataRow, CommandComplete,
/// ReadyForQuery.
const SELECT_ONE: &[u8] = b"T\0\0\0\x1c\0\x01one\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0\
D\0\0\0\x0b\0\x01\0\0\0\x011\
C\0\0\0\x0dSELECT 1\0\
Z\0\0\0\x05I";

fn field(name: &str, type_oid: u32, format: Format) -> FieldDescription {
    FieldDescription {
        name: name.into(),
        table_oid: 16_384,
        column_id: 2,
        type_oid,
        type_len: -1,
        type_modifier: -1,
        format,
    }
}

fn all_messages() -> Vec<BackendMessage> {
    use BackendMessage as M;
    let row = {
        let mut out = Vec::new();
        encode_data_row(&[Some(&b"a@b.c"[..]), None, Some(b"")], &mut out).unwrap();
        DataRow::decode(&framed(&out)).unwrap()
    };
    vec![
        M::Authentication(Authentication::Ok),
        M::ParameterStatus(ParameterStatus {
            name: "TimeZone".into(),
            value: "UTC".into(),
        }),
        M::BackendKeyData(BackendKeyData {
            process_id: 4242,
            secret_key: vec![1, 2, 3, 4],
        }),
        M::BackendKeyData(BackendKeyData {
            process_id: 1,
            secret_key: vec![9; 32],
        }),
        M::ReadyForQuery(TransactionStatus::Idle),
        M::ReadyForQuery(TransactionStatus::InTransaction),
        M::ReadyForQuery(TransactionStatus::Failed),
        M::NegotiateProtocolVersion(NegotiateProtocolVersion {
            newest_minor: 0,
            unrecognized: vec!["_pq_.foo".into()],
        }),
        M::RowDescription(RowDescription {
            fields: vec![
                field("email", 25, Format::Text),
                field("n", 23, Format::Binary),
            ],
        }),
        M::RowDescription(RowDescription::default()),
        M::DataRow(row),
        M::CommandComplete(CommandComplete {
            tag: "INSERT 0 3".into(),
        }),
        M::ErrorResponse(ErrorFields::new(
            Severity::Fatal,
            "28P01",
            "password authentication failed",
            None,
        )),
        M::NoticeResponse(ErrorFields::new(
            Severity::Warning,
            "01000",
            "careful",
            Some("detail"),
        )),
        M::ParseComplete,
        M::BindComplete,
        M::CloseComplete,
        M::NoData,
        M::PortalSuspended,
        M::ParameterDescription(ParameterDescription {
            types: vec![23, 25],
        }),
        M::EmptyQueryResponse,
        M::CopyInResponse(CopyResponse {
            format: Format::Text,
            column_formats: vec![Format::Text; 3],
        }),
        M::CopyOutResponse(CopyResponse {
            format: Format::Binary,
            column_formats: vec![Format::Binary],
        }),
        M::CopyBothResponse(CopyResponse {
            format: Format::Binary,
            column_formats: vec![],
        }),
        M::CopyData(Bytes::from_static(b"1\talice\n")),
        M::CopyDone,
        M::NotificationResponse(NotificationResponse {
            process_id: 7,
            channel: "jobs".into(),
            payload: "{\"id\":1}".into(),
        }),
        M::FunctionCallResponse(FunctionCallResponse {
            result: Some(Bytes::from_static(b"\0\0\0\x01")),
        }),
        M::FunctionCallResponse(FunctionCallResponse { result: None }),
    ]
}

#[test]
fn every_message_round_trips() {
    for m in all_messages() {
        let mut out = Vec::new();
        m.encode(&mut out).unwrap();
        let msg = framed(&out);
        assert_eq!(msg.tag, m.tag().as_u8());
        assert_eq!(Tag::from_u8(msg.tag), Some(m.tag()));
        assert_eq!(BackendMessage::decode(&msg).as_ref(), Ok(&m));
    }
}

#[test]
fn error_response_fixture_decodes_and_reencodes_byte_exact() {
    assert_eq!(ERROR_FIXTURE.len(), 0x68);
    let msg = framed(ERROR_FIXTURE);
    let BackendMessage::ErrorResponse(e) = BackendMessage::decode(&msg).unwrap() else {
        panic!()
    };
    assert_eq!(e.severity(), Some("ERROR"));
    assert_eq!(e.code(), Some("42P01"));
    assert_eq!(e.message(), Some("relation \"nope\" does not exist"));
    assert_eq!(e.get(field::POSITION), Some("15"));
    assert_eq!(e.detail(), None);
    assert_eq!(e.fields.len(), 8);
    let mut out = Vec::new();
    e.encode_error(&mut out).unwrap();
    assert_eq!(out, ERROR_FIXTURE);

    // Rewrite: drop the server's source location, add a hint, keep order.
    let mut e = e;
    e.remove(field::FILE);
    e.remove(field::LINE);
    e.remove(field::ROUTINE);
    e.set(field::MESSAGE, "relation \"nope\" does not exist (hoop)");
    e.set(field::HINT, "check the schema");
    let mut out = Vec::new();
    e.encode_error(&mut out).unwrap();
    let again = ErrorFields::decode(&framed(&out)).unwrap();
    let codes: Vec<u8> = again.fields.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, b"SVCMPH");
    assert_eq!(again.hint(), Some("check the schema"));
}

#[test]
fn encode_error_as_the_agent_sends_it() {
    let mut out = Vec::new();
    encode_error(Severity::Error, "42501", "blocked by hoop", None, &mut out).unwrap();
    assert_eq!(
        out,
        b"E\0\0\0\x2bSERROR\0VERROR\0C42501\0Mblocked by hoop\0\0"
    );
    let mut out = Vec::new();
    encode_notice(
        Severity::Notice,
        "00000",
        "masked 2 columns",
        Some("email, phone"),
        &mut out,
    )
    .unwrap();
    let BackendMessage::NoticeResponse(n) = BackendMessage::decode(&framed(&out)).unwrap() else {
        panic!()
    };
    assert_eq!(n.detail(), Some("email, phone"));
    assert!(encode_error(Severity::Error, "4250", "x", None, &mut Vec::new()).is_err());
    assert!(encode_error(Severity::Error, "42501", "x\0Mfake", None, &mut Vec::new()).is_err());
}

#[test]
fn select_one_fixture() {
    let mut buf = bytes::BytesMut::from(SELECT_ONE);
    let mut decoded = Vec::new();
    while let Some(m) = split_message(&mut buf, MAX_MESSAGE_LEN).unwrap() {
        decoded.push(BackendMessage::decode(&m).unwrap());
    }
    let [
        BackendMessage::RowDescription(rd),
        BackendMessage::DataRow(row),
        BackendMessage::CommandComplete(cc),
        BackendMessage::ReadyForQuery(TransactionStatus::Idle),
    ] = &decoded[..]
    else {
        panic!("{decoded:?}")
    };
    assert_eq!(rd.fields[0].name, "one");
    assert_eq!(rd.fields[0].type_oid, 23);
    assert_eq!(rd.fields[0].type_len, 4);
    assert_eq!(rd.fields[0].type_modifier, -1);
    assert_eq!(row.get(0), Some(Some(&b"1"[..])));
    assert_eq!(row.get(1), None);
    assert_eq!(cc.rows(), Some(1));
    assert_eq!(cc.command(), "SELECT");
    // Re-encoding gives the same bytes.
    let mut out = Vec::new();
    for m in &decoded {
        m.encode(&mut out).unwrap();
    }
    assert_eq!(out, SELECT_ONE);
}

#[test]
fn data_row_is_zero_copy_and_rebuilds_with_a_new_length() {
    let mut out = Vec::new();
    encode_data_row(
        &[Some(&b"42"[..]), Some(b"alice@example.com"), None],
        &mut out,
    )
    .unwrap();
    let msg = framed(&out);
    let row = DataRow::decode(&msg).unwrap();
    assert_eq!(row.len(), 3);
    assert_eq!(row.storage.as_ptr(), msg.bytes.as_ptr(), "shares memory");
    assert_eq!(row.values[1], Some(17..34));
    assert_eq!(
        row.get_bytes(1),
        Some(Some(Bytes::from_static(b"alice@example.com")))
    );
    assert_eq!(row.get(2), Some(None));

    // Mask column 1 and rebuild: the length follows the new value.
    let masked: Vec<Option<Cow<[u8]>>> = row
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.map(|v| {
                if i == 1 {
                    Cow::Owned(b"***".to_vec())
                } else {
                    Cow::Borrowed(v)
                }
            })
        })
        .collect();
    let mut out = Vec::new();
    encode_data_row(&masked, &mut out).unwrap();
    assert_eq!(
        out,
        b"D\0\0\0\x17\0\x03\0\0\0\x0242\0\0\0\x03***\xff\xff\xff\xff"
    );
    let again = DataRow::decode(&framed(&out)).unwrap();
    assert_eq!(
        again.iter().collect::<Vec<_>>(),
        [Some(&b"42"[..]), Some(b"***"), None]
    );
}

#[test]
fn hostile_data_rows() {
    // Column count larger than the bytes present.
    assert_invalid(DataRow::decode(&raw(b'D', b"\0\x05")));
    assert_invalid(DataRow::decode(&raw(b'D', b"\xff\xff\0\0\0\0")));
    // Value length past the end of the message.
    assert_invalid(DataRow::decode(&raw(b'D', b"\0\x01\0\0\0\x09abc")));
    assert_invalid(DataRow::decode(&raw(b'D', b"\0\x01\x7f\xff\xff\xffabc")));
    // Negative lengths other than -1.
    for len in [-2i32, i32::MIN] {
        let mut body = vec![0, 1];
        body.extend_from_slice(&len.to_be_bytes());
        assert_invalid(DataRow::decode(&raw(b'D', &body)));
    }
    // Fewer columns than announced, and bytes after the last column.
    assert_invalid(DataRow::decode(&raw(b'D', b"\0\x02\xff\xff\xff\xff")));
    assert_invalid(DataRow::decode(&raw(b'D', b"\0\x01\xff\xff\xff\xff\0")));
    // Empty body.
    assert_invalid(DataRow::decode(&raw(b'D', b"")));
    // Accessors on a hand-edited row do not panic.
    let (start, end) = (4, 2);
    let row = DataRow {
        storage: Bytes::from_static(b"D\0\0\0\x04"),
        values: vec![Some(3..99), Some(start..end)],
    };
    assert_eq!(row.get(0), Some(None));
    assert_eq!(row.get_bytes(1), Some(None));
    assert_eq!(row.iter().count(), 2);
}

#[test]
fn hostile_row_descriptions() {
    // 65535 fields announced, none present: refused before allocating.
    assert_invalid(RowDescription::decode(&raw(b'T', b"\xff\xff")));
    // One field too short, unknown format code, name without NUL.
    assert_invalid(RowDescription::decode(&raw(b'T', b"\0\x01a\0\0\0\0\0")));
    let mut body = b"\0\x01a\0".to_vec();
    body.extend_from_slice(&[0; 16]);
    body.extend_from_slice(&[0, 2]);
    assert_invalid(RowDescription::decode(&raw(b'T', &body)));
    assert_invalid(RowDescription::decode(&raw(
        b'T',
        b"\0\x01abcdefghijklmnopqrstuvwxyz",
    )));
}

#[test]
fn other_hostile_backend_messages() {
    assert_invalid(BackendMessage::decode(&raw(b'Z', b"X")));
    assert_invalid(BackendMessage::decode(&raw(b'Z', b"")));
    assert_invalid(BackendMessage::decode(&raw(b'K', b"\0\0\0\x01\0\0")));
    assert_invalid(BackendMessage::decode(&raw(b'E', b"SERROR\0")));
    assert_invalid(BackendMessage::decode(&raw(b'E', b"SERROR")));
    assert_invalid(BackendMessage::decode(&raw(b't', b"\x80\0\0\0\0\x17")));
    let npv = |body: &[u8]| BackendMessage::decode(&raw(b'v', body));
    assert_invalid(npv(b"\0\x03\0\0\x7f\xff\xff\xff"));
    assert_invalid(npv(b"\0\x03\0\0\xff\xff\xff\xff"));
    // A bare minor, or another major, is not what any server sends.
    assert_invalid(npv(b"\0\0\0\0\0\0\0\0"));
    assert_invalid(npv(b"\0\x04\0\0\0\0\0\0"));
    assert!(npv(b"\0\x03\0\x01\0\0\0\0").is_ok());
    assert_invalid(BackendMessage::decode(&raw(b'G', b"\x02\0\0")));
    assert_invalid(BackendMessage::decode(&raw(b'H', b"\0\xff\xff\0\0")));
    assert_invalid(BackendMessage::decode(&raw(b'V', b"\xff\xff\xff\xf0")));
    assert_invalid(BackendMessage::decode(&raw(b'A', b"\0\0\0\x01chan\0")));
    assert_invalid(BackendMessage::decode(&raw(b'1', b"\0")));
    assert_eq!(
        BackendMessage::decode(&raw(b'Q', b"x\0")),
        Err(DecodeError::UnexpectedTag(b'Q'))
    );
    assert_eq!(
        ErrorFields::decode(&raw(b'C', b"\0")),
        Err(DecodeError::UnexpectedTag(b'C'))
    );
}

#[test]
fn command_tag_row_counts() {
    let cases = [
        ("SELECT 5", Some(5)),
        ("INSERT 0 3", Some(3)),
        ("UPDATE 0", Some(0)),
        ("DELETE 12", Some(12)),
        ("MERGE 2", Some(2)),
        ("FETCH 100", Some(100)),
        ("MOVE 1", Some(1)),
        ("COPY 7", Some(7)),
        ("SELECT 18446744073709551615", Some(u64::MAX)),
        ("SELECT 18446744073709551616", None),
        ("INSERT 3", None),
        ("SELECT", None),
        ("SELECT -1", None),
        ("SELECT 1 2", None),
        ("CREATE TABLE", None),
        ("BEGIN", None),
        ("", None),
    ];
    for (tag, rows) in cases {
        assert_eq!(CommandComplete { tag: tag.into() }.rows(), rows, "{tag}");
    }
    assert_eq!(
        CommandComplete {
            tag: "CREATE TABLE".into()
        }
        .command(),
        "CREATE TABLE"
    );
    assert_eq!(
        CommandComplete {
            tag: "INSERT 0 1".into()
        }
        .command(),
        "INSERT"
    );
}

#[test]
fn fixed_encoders_byte_exact() {
    let mut out = Vec::new();
    encode_ready_for_query(TransactionStatus::InTransaction, &mut out);
    encode_parse_complete(&mut out);
    encode_bind_complete(&mut out);
    encode_close_complete(&mut out);
    encode_no_data(&mut out);
    encode_portal_suspended(&mut out);
    encode_empty_query_response(&mut out);
    assert_eq!(
        out,
        b"Z\0\0\0\x05T1\0\0\0\x042\0\0\0\x043\0\0\0\x04n\0\0\0\x04s\0\0\0\x04I\0\0\0\x04"
    );
    let mut out = Vec::new();
    encode_parameter_status("client_encoding", "UTF8", &mut out).unwrap();
    assert_eq!(out, b"S\0\0\0\x19client_encoding\0UTF8\0");
    let mut out = Vec::new();
    encode_backend_key_data(0x0102_0304, &[5, 6, 7, 8], &mut out).unwrap();
    assert_eq!(out, b"K\0\0\0\x0c\x01\x02\x03\x04\x05\x06\x07\x08");
    let mut out = Vec::new();
    encode_negotiate_protocol_version(0, &["_pq_.x"], &mut out).unwrap();
    // As PostgreSQL 15 sends it: the version word is 3.0, not bare 0.
    assert_eq!(out, b"v\0\0\0\x13\0\x03\0\0\0\0\0\x01_pq_.x\0");
    assert!(
        !format!(
            "{:?}",
            BackendKeyData {
                process_id: 1,
                secret_key: vec![1, 2, 3, 4]
            }
        )
        .contains("[1, 2")
    );
}

#[test]
fn data_row_ranges_borrow_and_check() {
    use crate::pg::backend::data_row_ranges;
    let mut msg = Vec::new();
    encode_data_row(&[Some(&b"ab"[..]), None, Some(&b""[..])], &mut msg).unwrap();
    let mut ranges = vec![None; 7];
    data_row_ranges(&msg, &mut ranges).unwrap();
    assert_eq!(ranges.len(), 3);
    assert_eq!(&msg[ranges[0].clone().unwrap()], b"ab");
    assert_eq!(ranges[1], None);
    assert_eq!(ranges[2].as_ref().map(|r| r.len()), Some(0));
    // Truncated, a length past the end, a wrong tag: errors.
    assert!(data_row_ranges(&msg[..msg.len() - 1], &mut ranges).is_err());
    let mut long = msg.clone();
    long[9..13].copy_from_slice(&1000i32.to_be_bytes());
    assert!(data_row_ranges(&long, &mut ranges).is_err());
    let mut tag = msg.clone();
    tag[0] = b'T';
    assert!(data_row_ranges(&tag, &mut ranges).is_err());
}

#[test]
fn data_row_values_check_first_then_iterate() {
    use crate::pg::backend::{RowValue, data_row_ranges, data_row_values};
    let mut msg = Vec::new();
    encode_data_row(&[Some(&b"ab"[..]), None, Some(&b""[..])], &mut msg).unwrap();
    let values = data_row_values(&msg).unwrap();
    assert_eq!(values.columns(), 3);
    let got: Vec<RowValue<'_>> = values.collect();
    assert_eq!(
        got,
        [
            RowValue {
                span: 7..13,
                value: Some(&b"ab"[..])
            },
            RowValue {
                span: 13..17,
                value: None
            },
            RowValue {
                span: 17..21,
                value: Some(&b""[..])
            },
        ]
    );
    assert_eq!(got[2].span.end, msg.len());
    // The same errors as data_row_ranges, for every truncation and for
    // each length word set to something that does not fit.
    let mut ranges = Vec::new();
    for cut in 0..msg.len() {
        assert_eq!(
            data_row_values(&msg[..cut]).map(|_| ()).unwrap_err(),
            data_row_ranges(&msg[..cut], &mut ranges).unwrap_err(),
        );
    }
    for bad in bad_length_words(&msg) {
        assert_eq!(
            data_row_values(&bad).map(|_| ()).unwrap_err(),
            data_row_ranges(&bad, &mut ranges).unwrap_err(),
            "{bad:?}"
        );
    }
    // No columns at all.
    let mut empty = Vec::new();
    encode_data_row::<&[u8]>(&[], &mut empty).unwrap();
    assert_eq!(data_row_values(&empty).unwrap().columns(), 0);
}

/// The three-value row of the tests above (`ab`, NULL, empty) with one
/// length word (or the column count, at 5) set to something that does
/// not fit.
fn bad_length_words(msg: &[u8]) -> Vec<Vec<u8>> {
    [(7, 1000i32), (7, -2), (13, 5), (17, 1), (5, 4), (5, 2)]
        .into_iter()
        .map(|(at, word)| {
            let mut bad = msg.to_vec();
            if at == 5 {
                bad[5..7].copy_from_slice(&(word as u16).to_be_bytes());
            } else {
                bad[at..at + 4].copy_from_slice(&word.to_be_bytes());
            }
            bad
        })
        .collect()
}

/// Reads a row with [`RowReader`] to its end: its values, or the first
/// error.
fn read_all(msg: &[u8]) -> Result<Vec<Option<&[u8]>>, crate::pg::DecodeError> {
    let mut row = crate::pg::backend::data_row_reader(msg)?;
    let mut values = Vec::new();
    while row.left() > 0 {
        values.push(row.next_value()?);
    }
    row.check_rest()?;
    Ok(values)
}

/// [`read_all`] with a [`crate::pg::backend::RowCursor`], the values
/// counted by the caller.
fn read_all_cursor(msg: &[u8]) -> Result<Vec<Option<&[u8]>>, crate::pg::DecodeError> {
    let row = crate::pg::backend::data_row_reader(msg)?;
    let n = row.left();
    let mut row = row.into_cursor();
    let values = (0..n)
        .map(|_| row.next_value())
        .collect::<Result<Vec<_>, _>>()?;
    row.check_rest(0)?;
    Ok(values)
}

#[test]
fn row_reader_checks_as_it_reads() {
    use crate::pg::backend::{data_row_ranges, data_row_reader};
    let mut msg = Vec::new();
    encode_data_row(&[Some(&b"ab"[..]), None, Some(&b""[..])], &mut msg).unwrap();
    assert_eq!(
        read_all(&msg).unwrap(),
        [Some(&b"ab"[..]), None, Some(&b""[..])]
    );
    assert_eq!(read_all_cursor(&msg).unwrap(), read_all(&msg).unwrap());
    let mut cursor = data_row_reader(&msg).unwrap().into_cursor();
    assert_eq!(cursor.pos(), 7);
    cursor.check_rest(3).unwrap();
    assert_eq!(cursor.next_value().unwrap(), Some(&b"ab"[..]));
    assert_eq!(cursor.pos(), 13);
    cursor.check_rest(2).unwrap();
    // A wrong count is caught: one value too few, or one too many.
    assert!(cursor.check_rest(1).is_err());
    assert!(cursor.check_rest(3).is_err());
    let mut row = data_row_reader(&msg).unwrap();
    assert_eq!(row.left(), 3);
    assert_eq!(row.pos(), 7);
    row.check_rest().unwrap();
    assert_eq!(row.next_value().unwrap(), Some(&b"ab"[..]));
    assert_eq!(row.pos(), 13);
    row.check_rest().unwrap();
    assert_eq!(row.next_value().unwrap(), None);
    assert_eq!(row.next_value().unwrap(), Some(&b""[..]));
    assert_eq!(row.pos(), msg.len());
    row.check_rest().unwrap();
    // Past the last value: an error, not the next bytes.
    assert!(row.next_value().is_err());
    // The same errors as data_row_ranges, for every truncation and for
    // each length word set to something that does not fit, whether read
    // to the end or checked after the first value.
    let mut ranges = Vec::new();
    let mut cases: Vec<Vec<u8>> = (0..msg.len()).map(|cut| msg[..cut].to_vec()).collect();
    cases.extend(bad_length_words(&msg));
    let mut trailing = msg.clone();
    trailing.push(0);
    cases.push(trailing);
    for bad in &cases {
        let want = data_row_ranges(bad, &mut ranges).unwrap_err();
        assert_eq!(read_all(bad).unwrap_err(), want, "{bad:?}");
        assert_eq!(read_all_cursor(bad).unwrap_err(), want, "{bad:?}");
        let first = data_row_reader(bad).and_then(|row| {
            let left = row.left();
            let mut row = row.into_cursor();
            if left > 0 && row.next_value().is_ok() {
                row.check_rest(left - 1)
            } else {
                Err(want.clone())
            }
        });
        assert_eq!(first.unwrap_err(), want, "{bad:?}");
        let first = data_row_reader(bad).and_then(|mut row| {
            if row.left() > 0 && row.next_value().is_ok() {
                row.check_rest()
            } else {
                Err(want.clone())
            }
        });
        assert_eq!(first.unwrap_err(), want, "{bad:?}");
    }
    // No columns at all.
    let mut empty = Vec::new();
    encode_data_row::<&[u8]>(&[], &mut empty).unwrap();
    assert_eq!(read_all(&empty).unwrap(), Vec::<Option<&[u8]>>::new());
}
