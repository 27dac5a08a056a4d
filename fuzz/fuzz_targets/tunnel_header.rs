//! Tunnel frames between `hoop` and `hoop-agent`: length prefix and JSON.

#![no_main]

use hoop_proto::tunnel::{self, Request, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Whatever decodes and re-encodes must decode to the same message.
    if let Ok((req, used)) = tunnel::decode::<Request>(data) {
        assert!(used <= data.len());
        let mut out = Vec::new();
        if tunnel::encode(&req, &mut out).is_ok() {
            let (again, _) = tunnel::decode::<Request>(&out).expect("re-encoded request decodes");
            assert_eq!(again, req);
        }
    }
    if let Ok((resp, used)) = tunnel::decode::<Response>(data) {
        assert!(used <= data.len());
        let mut out = Vec::new();
        if tunnel::encode(&resp, &mut out).is_ok() {
            let (again, _) = tunnel::decode::<Response>(&out).expect("re-encoded response decodes");
            assert_eq!(again, resp);
        }
    }
    let _ = tunnel::probe_version(data);
});
