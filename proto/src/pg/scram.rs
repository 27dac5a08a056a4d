//! SCRAM-SHA-256 and SCRAM-SHA-256-PLUS, client side (RFC 5802, RFC 7677),
//! as PostgreSQL runs them inside AuthenticationSASL: the data of the
//! SASL messages in [`super::auth`].
//!
//! Passwords are used as given. PostgreSQL runs SASLprep (RFC 4013) on the
//! password when it is valid UTF-8 and SASLprep accepts it, and uses the raw
//! bytes otherwise. For ASCII passwords both give the same bytes (SASLprep
//! changes no printable ASCII and rejects control characters, which makes
//! PostgreSQL fall back to the raw bytes), so ASCII passwords always work;
//! a non-ASCII password that SASLprep would rewrite (compatibility forms,
//! non-ASCII spaces) does not. Store such passwords NFKC-normalised.
//!
//! PBKDF2 is most of a login's cost (4096 iterations of HMAC-SHA-256 at
//! PostgreSQL's default, about a millisecond); a [`SaltedPasswordCache`]
//! kept across logins skips it when the password, salt and iteration count
//! repeat, as they do for every login of one role until its password
//! changes.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use aws_lc_rs::{constant_time, digest, hmac, pbkdf2, rand};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// The mechanism without channel binding.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// The mechanism with channel binding.
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";

/// Most PBKDF2 iterations accepted from a server. PostgreSQL's default is
/// 4096; ten million already costs seconds of CPU per login, so more is a
/// broken or hostile server.
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// Random bytes in the client nonce (libpq's `SCRAM_RAW_NONCE_LEN`).
const NONCE_LEN: usize = 18;

/// Longest salt a [`SaltedPasswordCache`] keeps (PostgreSQL's are 16
/// bytes), so that a hostile server cannot make it hold megabytes.
const MAX_CACHED_SALT: usize = 256;

/// Channel binding, announced in the GS2 header.
#[derive(Clone, PartialEq, Eq)]
pub enum ChannelBinding {
    /// No TLS, or the client cannot bind: GS2 header `n,,`.
    Unsupported,
    /// The client could bind but the server offered no `-PLUS` mechanism:
    /// GS2 header `y,,`. A server that did offer `-PLUS` treats this as a
    /// downgrade attack and fails the login.
    SupportedButNotUsed,
    /// Bind to the server certificate: GS2 header
    /// `p=tls-server-end-point,,` with [`tls_server_end_point_hash`] of the
    /// certificate the server presented. Use with `SCRAM-SHA-256-PLUS`.
    TlsServerEndPoint(Vec<u8>),
}

impl fmt::Debug for ChannelBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelBinding::Unsupported => f.write_str("Unsupported"),
            ChannelBinding::SupportedButNotUsed => f.write_str("SupportedButNotUsed"),
            ChannelBinding::TlsServerEndPoint(h) => {
                write!(f, "TlsServerEndPoint({} bytes)", h.len())
            }
        }
    }
}

impl ChannelBinding {
    fn gs2_header(&self) -> &'static str {
        match self {
            ChannelBinding::Unsupported => "n,,",
            ChannelBinding::SupportedButNotUsed => "y,,",
            ChannelBinding::TlsServerEndPoint(_) => "p=tls-server-end-point,,",
        }
    }
}

/// Why a SCRAM exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// The server's message does not follow RFC 5802.
    #[error("malformed SCRAM message from the server: {0}")]
    Malformed(&'static str),
    /// The server's nonce does not extend the client's.
    #[error("SCRAM server nonce does not extend the client nonce")]
    NonceMismatch,
    /// The server asked for an iteration count outside 1..=MAX_ITERATIONS.
    #[error("SCRAM iteration count {0} is outside 1..={MAX_ITERATIONS}")]
    Iterations(u64),
    /// The server sent `e=...`.
    #[error("server rejected SCRAM authentication: {0}")]
    Server(String),
    /// The server's signature is wrong: it does not know the password.
    #[error("SCRAM server signature does not match: the server may be an impostor")]
    BadServerSignature,
    /// A message arrived in the wrong step of the exchange.
    #[error("SCRAM message out of order")]
    OutOfOrder,
    /// The system random generator failed.
    #[error("could not generate a random SCRAM nonce")]
    Random,
}

enum State {
    Initial,
    ClientFirstSent,
    ClientFinalSent { server_signature: [u8; 32] },
    Done,
}

/// One SCRAM-SHA-256 login, client side:
/// [`client_first`](ScramClient::client_first) → SASLInitialResponse,
/// SASLContinue → [`handle_server_first`](ScramClient::handle_server_first)
/// → SASLResponse, SASLFinal →
/// [`verify_server_final`](ScramClient::verify_server_final).
pub struct ScramClient {
    password: Vec<u8>,
    channel_binding: ChannelBinding,
    /// saslname-encoded; empty as libpq sends it (PostgreSQL uses the
    /// startup packet's user instead).
    username: String,
    nonce: Result<String, ScramError>,
    client_first_bare: String,
    state: State,
}

impl Drop for ScramClient {
    fn drop(&mut self) {
        wipe(&mut self.password);
    }
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("password", &"***")
            .field("channel_binding", &self.channel_binding)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// A client for `password` with a fresh random nonce.
    pub fn new(password: &[u8], channel_binding: ChannelBinding) -> Self {
        let mut raw = [0u8; NONCE_LEN];
        // AWS-LC aborts rather than fail here; keep the error path anyway
        // and report it at the next step instead of panicking.
        let nonce = rand::fill(&mut raw)
            .map(|()| B64.encode(raw))
            .map_err(|_| ScramError::Random);
        Self::build(password, channel_binding, "", nonce)
    }

    /// A client with a fixed nonce and user name, for test vectors.
    #[cfg(test)]
    pub(crate) fn with_nonce(
        password: &[u8],
        channel_binding: ChannelBinding,
        username: &str,
        nonce: &str,
    ) -> Self {
        Self::build(password, channel_binding, username, Ok(nonce.to_owned()))
    }

    fn build(
        password: &[u8],
        channel_binding: ChannelBinding,
        username: &str,
        nonce: Result<String, ScramError>,
    ) -> Self {
        ScramClient {
            password: password.to_vec(),
            channel_binding,
            username: username.replace('=', "=3D").replace(',', "=2C"),
            nonce,
            client_first_bare: String::new(),
            state: State::Initial,
        }
    }

    /// The mechanism name to send in SASLInitialResponse:
    /// `SCRAM-SHA-256-PLUS` when binding to the certificate.
    pub fn mechanism(&self) -> &'static str {
        match self.channel_binding {
            ChannelBinding::TlsServerEndPoint(_) => SCRAM_SHA_256_PLUS,
            _ => SCRAM_SHA_256,
        }
    }

    /// client-first-message, the data of SASLInitialResponse.
    pub fn client_first(&mut self) -> Vec<u8> {
        let nonce = self.nonce.as_deref().unwrap_or_default();
        self.client_first_bare = format!("n={},r={}", self.username, nonce);
        self.state = State::ClientFirstSent;
        format!(
            "{}{}",
            self.channel_binding.gs2_header(),
            self.client_first_bare
        )
        .into_bytes()
    }

    /// Checks server-first-message (the data of AuthenticationSASLContinue)
    /// and returns client-final-message, the data of SASLResponse.
    pub fn handle_server_first(&mut self, msg: &[u8]) -> Result<Vec<u8>, ScramError> {
        self.server_first(msg, None)
    }

    /// [`handle_server_first`](ScramClient::handle_server_first), taking
    /// the salted password from `cache` when an earlier login derived it
    /// for the same password, salt and iteration count, and adding it
    /// there otherwise. The proof sent and the server signature expected
    /// are the same as without the cache.
    pub fn handle_server_first_cached(
        &mut self,
        msg: &[u8],
        cache: &SaltedPasswordCache,
    ) -> Result<Vec<u8>, ScramError> {
        self.server_first(msg, Some(cache))
    }

    fn server_first(
        &mut self,
        msg: &[u8],
        cache: Option<&SaltedPasswordCache>,
    ) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, State::ClientFirstSent) {
            return Err(ScramError::OutOfOrder);
        }
        // Whatever happens next, this exchange cannot be resumed.
        self.state = State::Done;
        let client_nonce = self.nonce.clone()?;
        let server_first =
            std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        if let Some(error) = server_first.strip_prefix("e=") {
            return Err(ScramError::Server(error.to_owned()));
        }
        if server_first.starts_with("m=") {
            return Err(ScramError::Malformed("unsupported mandatory extension"));
        }
        let mut attrs = server_first.split(',');
        let mut next = |name: &'static str| {
            attrs
                .next()
                .and_then(|a| a.strip_prefix(name))
                .ok_or(ScramError::Malformed(name))
        };
        let nonce = next("r=")?;
        let salt = next("s=")?;
        let iterations = next("i=")?;
        // Extensions after i= are allowed and ignored (RFC 5802 §5.1).
        if nonce.len() <= client_nonce.len() || !nonce.starts_with(&client_nonce) {
            return Err(ScramError::NonceMismatch);
        }
        if !nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
        {
            return Err(ScramError::Malformed(
                "nonce has characters outside printable ASCII",
            ));
        }
        let salt = B64
            .decode(salt)
            .map_err(|_| ScramError::Malformed("salt is not base64"))?;
        if salt.is_empty() {
            return Err(ScramError::Malformed("empty salt"));
        }
        if iterations.is_empty() || !iterations.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ScramError::Malformed("iteration count is not a number"));
        }
        // Saturate absurdly long digit strings instead of failing to parse.
        let count = iterations.parse::<u64>().unwrap_or(u64::MAX);
        let iterations = u32::try_from(count)
            .ok()
            .filter(|&i| i <= MAX_ITERATIONS)
            .and_then(NonZeroU32::new)
            .ok_or(ScramError::Iterations(count))?;

        let mut cbind = self.channel_binding.gs2_header().as_bytes().to_vec();
        if let ChannelBinding::TlsServerEndPoint(hash) = &self.channel_binding {
            cbind.extend_from_slice(hash);
        }
        let without_proof = format!("c={},r={}", B64.encode(&cbind), nonce);
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, server_first, without_proof
        );

        let salted = match cache {
            Some(cache) => cache.get_or_derive(&self.password, &salt, iterations),
            None => salt_password(&self.password, &salt, iterations),
        };
        let salted = hmac::Key::new(hmac::HMAC_SHA256, &salted.0);
        let client_key = hmac::sign(&salted, b"Client Key");
        let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
        let stored_key = hmac::Key::new(hmac::HMAC_SHA256, stored_key.as_ref());
        let client_signature = hmac::sign(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(client_signature.as_ref())
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac::sign(&salted, b"Server Key");
        let server_key = hmac::Key::new(hmac::HMAC_SHA256, server_key.as_ref());
        let mut server_signature = [0u8; 32];
        server_signature.copy_from_slice(hmac::sign(&server_key, auth_message.as_bytes()).as_ref());
        self.state = State::ClientFinalSent { server_signature };
        Ok(format!("{},p={}", without_proof, B64.encode(proof)).into_bytes())
    }

    /// Checks server-final-message (the data of AuthenticationSASLFinal):
    /// the server proves it knows the password too. Compared in constant
    /// time; `e=...` becomes [`ScramError::Server`].
    pub fn verify_server_final(&self, msg: &[u8]) -> Result<(), ScramError> {
        let State::ClientFinalSent { server_signature } = &self.state else {
            return Err(ScramError::OutOfOrder);
        };
        let msg = std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        if let Some(error) = msg.strip_prefix("e=") {
            let error = error.split(',').next().unwrap_or_default();
            return Err(ScramError::Server(error.to_owned()));
        }
        let Some(verifier) = msg.split(',').next().and_then(|a| a.strip_prefix("v=")) else {
            return Err(ScramError::Malformed("v="));
        };
        let verifier = B64
            .decode(verifier)
            .map_err(|_| ScramError::Malformed("server signature is not base64"))?;
        constant_time::verify_slices_are_equal(&verifier, server_signature)
            .map_err(|_| ScramError::BadServerSignature)
    }
}

/// 32 secret bytes: zeroed when dropped, never printed.
#[derive(Clone, PartialEq, Eq)]
struct Key32([u8; 32]);

impl Drop for Key32 {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Overwrites a secret with zeros. Best effort, without `unsafe`: the
/// `black_box` keeps the compiler from dropping the stores as dead, but
/// copies made earlier (moves, reallocations) are not reached.
fn wipe(secret: &mut [u8]) {
    secret.fill(0);
    std::hint::black_box(&*secret);
}

/// SaltedPassword := Hi(password, salt, i), PBKDF2-HMAC-SHA-256.
fn salt_password(password: &[u8], salt: &[u8], iterations: NonZeroU32) -> Key32 {
    let mut salted = Key32([0u8; 32]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        password,
        &mut salted.0,
    );
    salted
}

/// Salted passwords from earlier logins, keyed by (SHA-256 of the
/// password, salt, iteration count), so that PBKDF2 runs once per key
/// instead of at every login. Bounded: past `capacity` entries the least
/// recently used goes. Share one (e.g. a `static`) between all the logins
/// of a process; the lock is not held while deriving.
///
/// It holds secrets: each salted password lets whoever has it log in as
/// the role to that server (as PostgreSQL's stored verifier does not).
/// They stay in memory until evicted, zeroed then (best effort), and
/// nothing here prints them. A changed password is a new key; the old
/// entry ages out.
pub struct SaltedPasswordCache {
    capacity: usize,
    /// Least recently used first. A few dozen entries: a linear scan is
    /// cheaper than hashing the salt would be.
    entries: Mutex<Vec<CacheEntry>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct CacheEntry {
    password_hash: Key32,
    salt: Vec<u8>,
    iterations: NonZeroU32,
    salted: Key32,
}

impl fmt::Debug for SaltedPasswordCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaltedPasswordCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish()
    }
}

impl SaltedPasswordCache {
    /// An empty cache of at most `capacity` entries (0 caches nothing).
    pub const fn new(capacity: usize) -> Self {
        SaltedPasswordCache {
            capacity,
            entries: Mutex::new(Vec::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Logins that found their salted password here.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Logins that had to derive it.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<CacheEntry>> {
        // Nothing panics while the lock is held, but a poisoned list is
        // still a consistent one.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get_or_derive(&self, password: &[u8], salt: &[u8], iterations: NonZeroU32) -> Key32 {
        let mut password_hash = Key32([0u8; 32]);
        password_hash
            .0
            .copy_from_slice(digest::digest(&digest::SHA256, password).as_ref());
        let matches = |e: &CacheEntry| {
            e.password_hash == password_hash && e.iterations == iterations && e.salt == salt
        };
        {
            let mut entries = self.lock();
            if let Some(i) = entries.iter().position(matches) {
                let entry = entries.remove(i);
                let salted = entry.salted.clone();
                entries.push(entry);
                self.hits.fetch_add(1, Ordering::Relaxed);
                return salted;
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let salted = salt_password(password, salt, iterations);
        if self.capacity > 0 && salt.len() <= MAX_CACHED_SALT {
            let mut entries = self.lock();
            // Another login may have derived it meanwhile.
            if !entries.iter().any(matches) {
                if entries.len() >= self.capacity {
                    entries.remove(0);
                }
                entries.push(CacheEntry {
                    password_hash,
                    salt: salt.to_vec(),
                    iterations,
                    salted: salted.clone(),
                });
            }
        }
        salted
    }
}

/// Channel binding data for `tls-server-end-point` (RFC 5929 §4.1): the
/// hash of the server's DER certificate, with the hash function of the
/// certificate's signature algorithm, SHA-256 when that is MD5 or SHA-1.
///
/// Falls back to SHA-256 when the signature algorithm is not recognised
/// (RSA-PSS, Ed25519, ...). PostgreSQL cannot bind to such certificates
/// either and fails a `-PLUS` login, so the fallback changes nothing; use
/// [`try_tls_server_end_point_hash`] to tell that case apart and fall back
/// to [`ChannelBinding::Unsupported`] instead.
pub fn tls_server_end_point_hash(cert_der: &[u8]) -> Vec<u8> {
    try_tls_server_end_point_hash(cert_der)
        .unwrap_or_else(|| digest::digest(&digest::SHA256, cert_der).as_ref().to_vec())
}

/// Like [`tls_server_end_point_hash`], but `None` when the certificate
/// cannot be parsed or its signature algorithm names no hash PostgreSQL
/// would use.
pub fn try_tls_server_end_point_hash(cert_der: &[u8]) -> Option<Vec<u8>> {
    let algorithm = match signature_algorithm_oid(cert_der)? {
        // md5WithRSA, sha1WithRSA, ecdsa-with-SHA1, dsa-with-sha1: SHA-256.
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04 | 0x05]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01]
        | [0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03] => &digest::SHA256,
        // sha{256,384,512,224}WithRSAEncryption.
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, n] => sha2_rsa(*n)?,
        // ecdsa-with-SHA{224,256,384,512}.
        [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, n] => sha2_index(*n)?,
        // dsa-with-sha{224,256} (NIST sigAlgs).
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x01] => &digest::SHA224,
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x02] => &digest::SHA256,
        _ => return None,
    };
    Some(digest::digest(algorithm, cert_der).as_ref().to_vec())
}

fn sha2_rsa(n: u8) -> Option<&'static digest::Algorithm> {
    match n {
        11 => Some(&digest::SHA256),
        12 => Some(&digest::SHA384),
        13 => Some(&digest::SHA512),
        14 => Some(&digest::SHA224),
        _ => None,
    }
}

fn sha2_index(n: u8) -> Option<&'static digest::Algorithm> {
    match n {
        1 => Some(&digest::SHA224),
        2 => Some(&digest::SHA256),
        3 => Some(&digest::SHA384),
        4 => Some(&digest::SHA512),
        _ => None,
    }
}

/// The OID bytes of `Certificate.signatureAlgorithm.algorithm`:
/// `SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE { OID, .. }, .. }`.
fn signature_algorithm_oid(der: &[u8]) -> Option<&[u8]> {
    let (certificate, _) = der_tlv(der, 0x30)?;
    let (_tbs, rest) = der_tlv(certificate, 0x30)?;
    let (algorithm, _) = der_tlv(rest, 0x30)?;
    let (oid, _) = der_tlv(algorithm, 0x06)?;
    Some(oid)
}

/// Splits one DER element with tag `tag` off `input`: (contents, rest).
fn der_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (digits, rest) = rest.split_at(n);
        (
            digits
                .iter()
                .fold(0usize, |acc, &d| (acc << 8) | usize::from(d)),
            rest,
        )
    };
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}
