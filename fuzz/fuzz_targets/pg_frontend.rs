//! Client → server bytes after startup: framing and every frontend
//! decoder, including the authentication answers.

#![no_main]

use bytes::BytesMut;
use hoop_proto::pg::auth::{SaslInitialResponse, decode_password, decode_sasl_response};
use hoop_proto::pg::frontend::FrontendMessage;
use hoop_proto::pg::{MAX_MESSAGE_LEN, MAX_PRE_AUTH_MESSAGE_LEN, split_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for max in [MAX_MESSAGE_LEN, MAX_PRE_AUTH_MESSAGE_LEN] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(msg)) = split_message(&mut buf, max) {
            if let Ok(m) = FrontendMessage::decode(&msg) {
                // What decodes must re-encode to the same bytes.
                let mut out = Vec::new();
                m.encode(&mut out).expect("decoded message re-encodes");
                assert_eq!(out, &msg.bytes[..]);
            }
            let _ = decode_password(&msg);
            let _ = SaslInitialResponse::decode(&msg);
            let _ = decode_sasl_response(&msg);
        }
    }
});
