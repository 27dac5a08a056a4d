//! Cancel keys. The client gets a key made by the agent; a CancelRequest
//! (which arrives on a new connection) is matched against it and sent to
//! the right backend with the backend's real key, which never leaves the
//! agent.

use std::collections::HashMap;
use std::sync::Mutex;

/// Where a cancel goes.
#[derive(Clone)]
pub struct Target {
    pub connection: String,
    pub user: String,
    pub backend_pid: i32,
    pub backend_key: Vec<u8>,
}

struct Entry {
    key: [u8; 4],
    target: Target,
}

/// All live sessions' cancel keys.
#[derive(Default)]
pub struct CancelRegistry {
    entries: Mutex<HashMap<i32, Entry>>,
}

impl CancelRegistry {
    /// Registers a session; returns the (pid, key) to give the client.
    pub fn register(&self, target: Target) -> (i32, [u8; 4]) {
        let Ok(mut map) = self.entries.lock() else {
            return (0, [0; 4]);
        };
        loop {
            let mut r = [0u8; 8];
            // On RNG failure the zero key still works; collisions are checked.
            let _ = aws_lc_rs::rand::fill(&mut r);
            let pid = i32::from_be_bytes([r[0] & 0x7f, r[1], r[2], r[3]]).max(1);
            if map.contains_key(&pid) {
                continue;
            }
            let key = [r[4], r[5], r[6], r[7]];
            map.insert(pid, Entry { key, target });
            return (pid, key);
        }
    }

    pub fn unregister(&self, pid: i32) {
        if let Ok(mut map) = self.entries.lock() {
            map.remove(&pid);
        }
    }

    /// The target for a cancel from `user`, if the key matches.
    pub fn lookup(&self, pid: i32, key: &[u8], user: &str) -> Option<Target> {
        let map = self.entries.lock().ok()?;
        let e = map.get(&pid)?;
        let same_key = key.len() == 4
            && aws_lc_rs::constant_time::verify_slices_are_equal(&e.key, key).is_ok();
        (same_key && e.target.user == user).then(|| e.target.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_only_for_the_same_user_and_key() {
        let r = CancelRegistry::default();
        let t = Target {
            connection: "db".into(),
            user: "alice".into(),
            backend_pid: 42,
            backend_key: vec![1, 2, 3, 4],
        };
        let (pid, key) = r.register(t);
        assert!(pid > 0);
        assert_eq!(r.lookup(pid, &key, "alice").unwrap().backend_pid, 42);
        assert!(r.lookup(pid, &key, "mallory").is_none());
        let mut wrong = key;
        wrong[0] ^= 1;
        assert!(r.lookup(pid, &wrong, "alice").is_none());
        assert!(r.lookup(pid, &key[..3], "alice").is_none());
        r.unregister(pid);
        assert!(r.lookup(pid, &key, "alice").is_none());
    }
}
