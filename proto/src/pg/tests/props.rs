//! Property tests: arbitrary bytes into every decoder never panic, and
//! encoded values decode back to themselves.

use bytes::BytesMut;
use proptest::prelude::*;

use super::*;
use crate::pg::auth::{SaslInitialResponse, decode_password, decode_sasl_response};
use crate::pg::backend::{
    DataRow, data_row_ranges, data_row_reader, data_row_values, encode_data_row,
};
use crate::pg::frontend::{Bind, encode_bind};

/// Runs every decoder that could see this message.
fn decode_everything(msg: &RawMessage) {
    let _ = BackendMessage::decode(msg);
    let _ = FrontendMessage::decode(msg);
    let _ = Authentication::decode(msg);
    let _ = decode_password(msg);
    let _ = SaslInitialResponse::decode(msg);
    let _ = decode_sasl_response(msg);
    if let Ok(BackendMessage::DataRow(row)) = BackendMessage::decode(msg) {
        for i in 0..row.len() {
            assert!(row.get(i).is_some());
        }
    }
}

/// A tag byte that is usually a real one, so bodies reach the decoders.
fn tag() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(b"RSKZvTDCENA123nstIGHWdcVQPBEDCSHfFXp".to_vec()),
        any::<u8>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_streams_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        for max in [MAX_MESSAGE_LEN, MAX_PRE_AUTH_MESSAGE_LEN, 16] {
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(msg)) = split_message(&mut buf, max) {
                prop_assert!(msg.len() <= max + 1);
                decode_everything(&msg);
            }
        }
        let mut buf = BytesMut::from(&data[..]);
        if let Ok(Some(packet)) = split_startup(&mut buf) {
            let _ = StartupPacket::decode(&packet);
        }
        let _ = StartupPacket::decode(&data);
        let _ = crate::pg::scram::try_tls_server_end_point_hash(&data);
    }

    #[test]
    fn arbitrary_bodies_never_panic(tag in tag(), body in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_everything(&raw(tag, &body));
    }

    #[test]
    fn arbitrary_startup_bodies_never_panic(code in any::<u32>(), body in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut packet = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        packet.extend_from_slice(&code.to_be_bytes());
        packet.extend_from_slice(&body);
        let _ = StartupPacket::decode(&packet);
        // Real version codes too, with parameter-like bodies.
        packet[4..8].copy_from_slice(&[0, 3, 0, 0]);
        let _ = StartupPacket::decode(&packet);
    }

    #[test]
    fn scram_server_messages_never_panic(msg in prop::collection::vec(any::<u8>(), 0..128), text in "[rsie=,a-zA-Z0-9+/]{0,64}") {
        use crate::pg::scram::{ChannelBinding, ScramClient};
        for m in [&msg[..], text.as_bytes()] {
            let mut c = ScramClient::new(b"pw", ChannelBinding::Unsupported);
            c.client_first();
            let _ = c.handle_server_first(m);
            let _ = c.verify_server_final(m);
        }
    }

    #[test]
    fn data_rows_round_trip(values in prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..32)), 0..20)) {
        let mut out = Vec::new();
        encode_data_row(&values, &mut out).unwrap();
        let row = DataRow::decode(&framed(&out)).unwrap();
        let back: Vec<Option<Vec<u8>>> = row.iter().map(|v| v.map(<[u8]>::to_vec)).collect();
        prop_assert_eq!(back, values);
    }

    /// The row walks the masking relay uses agree with `DataRow::decode`
    /// on every body, well-formed or not: the same values, the same errors.
    #[test]
    fn data_row_walks_agree_with_decode(
        values in prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..8)), 0..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
        poke in prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
        junk in prop::collection::vec(any::<u8>(), 0..24),
        use_junk in any::<bool>(),
    ) {
        let mut body = if use_junk {
            junk
        } else {
            let mut out = Vec::new();
            encode_data_row(&values, &mut out).unwrap();
            out.split_off(5)
        };
        if let Some((at, b)) = poke {
            if !body.is_empty() {
                let at = at.index(body.len());
                body[at] = b;
            }
        }
        if let Some(cut) = cut {
            body.truncate(cut.index(body.len() + 1));
        }
        let msg = raw(b'D', &body);
        let want = DataRow::decode(&msg);
        let mut ranges = vec![None; 3];
        let got = data_row_ranges(&msg.bytes, &mut ranges);
        let walked = data_row_values(&msg.bytes);
        // Read value by value, each checked as it is read.
        let read = data_row_reader(&msg.bytes).and_then(|mut r| {
            let mut vals = Vec::new();
            while r.left() > 0 {
                vals.push(r.next_value()?);
            }
            r.check_rest().map(|()| vals)
        });
        match want {
            Ok(row) => {
                prop_assert_eq!(got, Ok(()));
                prop_assert_eq!(&ranges, &row.values);
                let walked = walked.unwrap();
                prop_assert_eq!(walked.columns(), row.len());
                let vals: Vec<Option<&[u8]>> = walked.map(|v| v.value).collect();
                prop_assert_eq!(&vals, &row.iter().collect::<Vec<_>>());
                prop_assert_eq!(read, Ok(vals));
            }
            Err(e) => {
                prop_assert_eq!(got, Err(e.clone()));
                prop_assert_eq!(walked.map(|_| ()), Err(e.clone()));
                prop_assert_eq!(read.map(|_| ()), Err(e));
            }
        }
    }

    #[test]
    fn binds_round_trip(
        portal in "[a-z]{0,8}",
        params in prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..16)), 0..10),
        formats in prop::collection::vec(0i16..2, 0..4),
    ) {
        let mut out = Vec::new();
        encode_bind(&portal, "s", &formats, &params, &formats, &mut out).unwrap();
        let msg = framed(&out);
        let bind = Bind::decode(&msg).unwrap();
        prop_assert_eq!(bind.portal, portal.as_str());
        prop_assert_eq!(&bind.param_formats, &formats);
        let back: Vec<Option<Vec<u8>>> = bind.params.iter().map(|v| v.map(<[u8]>::to_vec)).collect();
        prop_assert_eq!(back, params);
    }

    #[test]
    fn queries_round_trip(sql in "[^\u{0}]{0,64}") {
        let mut out = Vec::new();
        crate::pg::frontend::encode_query(&sql, &mut out).unwrap();
        let msg = framed(&out);
        let FrontendMessage::Query(q) = FrontendMessage::decode(&msg).unwrap() else {
            panic!("not a query")
        };
        prop_assert_eq!(q.query, sql.as_str());
    }
}
