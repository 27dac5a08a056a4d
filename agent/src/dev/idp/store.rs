//! The dev provider's memory: authorization codes, refresh tokens and device
//! codes. Every map is bounded, so a script in a loop cannot exhaust the
//! agent's memory: when one is full, expired entries go first, then the
//! entry closest to expiry.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Most entries a map holds.
pub const MAX_ENTRIES: usize = 10_000;

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The `sub` claim.
    pub sub: String,
    /// The `email` claim, when the subject has one (people do, services not).
    pub email: Option<String>,
    pub groups: Vec<String>,
}

/// An authorization code waiting to be exchanged.
#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    /// `BASE64URL(SHA256(code_verifier))`.
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub scope: String,
    pub subject: Subject,
    pub expires: Instant,
}

/// A refresh token's grant.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub client_id: String,
    pub scope: String,
    pub subject: Subject,
}

/// Where a device authorization stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved,
    Denied,
}

/// A device authorization (RFC 8628).
#[derive(Debug, Clone)]
pub struct DeviceGrant {
    pub user_code: String,
    pub client_id: String,
    pub scope: String,
    pub expires: Instant,
    /// Least time between two polls; grows by 5 s at each `slow_down`.
    pub interval: Duration,
    pub last_poll: Option<Instant>,
    pub status: DeviceStatus,
}

/// A map whose entries carry a deadline after which they may be dropped.
#[derive(Debug)]
pub struct Bounded<V> {
    map: HashMap<String, (Instant, V)>,
    cap: usize,
}

impl<V> Bounded<V> {
    pub fn new(cap: usize) -> Self {
        Bounded {
            map: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// Inserts `value` under `key`, kept at least until `keep_until` unless
    /// the map is full of fresher entries.
    pub fn insert(&mut self, key: String, keep_until: Instant, value: V) {
        if self.map.len() >= self.cap && !self.map.contains_key(&key) {
            let now = Instant::now();
            self.map.retain(|_, (deadline, _)| *deadline > now);
            if self.map.len() >= self.cap {
                let oldest = self
                    .map
                    .iter()
                    .min_by_key(|(_, (deadline, _))| *deadline)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.map.remove(&k);
                }
            }
        }
        self.map.insert(key, (keep_until, value));
    }

    /// Removes and returns the entry, unless it is past its deadline.
    pub fn take(&mut self, key: &str) -> Option<V> {
        let (deadline, v) = self.map.remove(key)?;
        (deadline > Instant::now()).then_some(v)
    }

    /// The live entry under `key`.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let now = Instant::now();
        match self.map.get_mut(key) {
            Some((deadline, v)) if *deadline > now => Some(v),
            _ => None,
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.map.remove(key).map(|(_, v)| v)
    }

    #[cfg(test)]
    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// All of the provider's state, behind one mutex in [`super::Idp`].
#[derive(Debug)]
pub struct Store {
    pub codes: Bounded<CodeGrant>,
    pub refresh: Bounded<RefreshGrant>,
    /// By device code.
    pub devices: Bounded<DeviceGrant>,
    /// User code (normalised, without the dash) → device code.
    pub user_codes: Bounded<String>,
}

impl Store {
    pub fn new(cap: usize) -> Self {
        Store {
            codes: Bounded::new(cap),
            refresh: Bounded::new(cap),
            devices: Bounded::new(cap),
            user_codes: Bounded::new(cap),
        }
    }

    /// The device code a user code belongs to, while it is pending and live.
    pub fn device_for_user_code(&mut self, user_code: &str) -> Option<(String, &mut DeviceGrant)> {
        let device_code = self.user_codes.get_mut(user_code)?.clone();
        let grant = self.devices.get_mut(&device_code)?;
        if grant.expires <= Instant::now() || grant.user_code != user_code {
            return None;
        }
        Some((device_code, grant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_map_drops_expired_then_oldest() {
        let now = Instant::now();
        let mut m = Bounded::new(3);
        m.insert("gone".into(), now, 0);
        m.insert("soon".into(), now + Duration::from_secs(10), 1);
        m.insert("late".into(), now + Duration::from_secs(30), 2);
        assert_eq!(m.len(), 3);
        // Full: the expired entry makes room.
        m.insert("a".into(), now + Duration::from_secs(20), 3);
        assert_eq!(m.len(), 3);
        assert!(!m.contains("gone"));
        // Full of live entries: the one closest to expiry goes.
        m.insert("b".into(), now + Duration::from_secs(40), 4);
        assert_eq!(m.len(), 3);
        assert!(!m.contains("soon"));
        assert!(m.contains("late") && m.contains("a") && m.contains("b"));
        for i in 0..10_000 {
            m.insert(format!("k{i}"), now + Duration::from_secs(60), i);
        }
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn take_is_single_use_and_ignores_expired() {
        let now = Instant::now();
        let mut m = Bounded::new(10);
        m.insert("k".into(), now + Duration::from_secs(60), 1);
        m.insert("old".into(), now, 2);
        assert_eq!(m.take("k"), Some(1));
        assert_eq!(m.take("k"), None);
        assert_eq!(m.take("old"), None);
        assert!(m.is_empty());
    }
}
