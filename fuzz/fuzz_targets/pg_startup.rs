//! The untagged first packet of a connection: StartupMessage, SSLRequest,
//! GSSENCRequest, CancelRequest.

#![no_main]

use bytes::BytesMut;
use hoop_proto::pg::{StartupPacket, split_startup};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    if let Ok(Some(packet)) = split_startup(&mut buf) {
        if let Ok(p) = StartupPacket::decode(&packet) {
            let mut out = Vec::new();
            p.encode(&mut out).expect("decoded packet re-encodes");
            assert_eq!(out, &packet[..]);
        }
    }
    let _ = StartupPacket::decode(data);
});
