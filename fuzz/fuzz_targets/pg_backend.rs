//! Server → client bytes: framing, every backend decoder, and the SCRAM
//! client fed the server's SASL data.

#![no_main]

use bytes::BytesMut;
use hoop_proto::pg::backend::{BackendMessage, DataRow};
use hoop_proto::pg::scram::{ChannelBinding, ScramClient, try_tls_server_end_point_hash};
use hoop_proto::pg::{Authentication, MAX_MESSAGE_LEN, MAX_PRE_AUTH_MESSAGE_LEN, split_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for max in [MAX_MESSAGE_LEN, MAX_PRE_AUTH_MESSAGE_LEN] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(msg)) = split_message(&mut buf, max) {
            assert!(msg.len() <= max + 1);
            let decoded = BackendMessage::decode(&msg);
            if let Ok(m) = &decoded {
                // What decodes must re-encode to the same bytes, except for
                // authentication methods whose data is not kept.
                if !matches!(m, BackendMessage::Authentication(Authentication::Other(_))) {
                    let mut out = Vec::new();
                    m.encode(&mut out).expect("decoded message re-encodes");
                    assert_eq!(out, &msg.bytes[..]);
                }
            }
            if let Ok(row) = DataRow::decode(&msg) {
                for i in 0..row.len() {
                    assert!(row.get(i).is_some());
                }
            }
            if let Ok(Authentication::SaslContinue(d) | Authentication::SaslFinal(d)) =
                Authentication::decode(&msg)
            {
                let mut c = ScramClient::new(b"pw", ChannelBinding::Unsupported);
                c.client_first();
                let _ = c.handle_server_first(&d);
                let _ = c.verify_server_final(&d);
            }
        }
    }
    let _ = try_tls_server_end_point_hash(data);
});
