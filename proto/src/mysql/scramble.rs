//! Password proofs for the auth plugins the agent logs in with:
//! `mysql_native_password`, `caching_sha2_password` (fast auth, and full
//! auth by RSA when there is no TLS), and fresh nonces for the handshakes
//! the agent offers.
//!
//! The nonce is the server's 20-byte scramble without its trailing NUL
//! ([`super::InitialHandshake::scramble`],
//! [`super::AuthSwitchRequest::scramble`]). An empty password is an empty
//! proof for both plugins, as the servers expect.

use aws_lc_rs::rsa::{OAEP_SHA1_MGF1SHA1, OaepPublicEncryptingKey, PublicEncryptingKey};
use aws_lc_rs::{digest, rand};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// Length of the nonces servers send, and of the ones [`random_nonce`]
/// makes.
pub const NONCE_LEN: usize = 20;

/// `mysql_native_password`:
/// `SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password)))`, 20 bytes.
pub fn native_password(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, password);
    let stage2 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, stage1.as_ref());
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(nonce);
    ctx.update(stage2.as_ref());
    xor(stage1.as_ref(), ctx.finish().as_ref())
}

/// `caching_sha2_password` fast auth:
/// `SHA256(password) XOR SHA256(SHA256(SHA256(password)) + nonce)`,
/// 32 bytes.
pub fn caching_sha2_password(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = digest::digest(&digest::SHA256, password);
    let stage2 = digest::digest(&digest::SHA256, stage1.as_ref());
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(stage2.as_ref());
    ctx.update(nonce);
    xor(stage1.as_ref(), ctx.finish().as_ref())
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// What full auth without TLS encrypts: the password with a NUL appended,
/// XORed with the nonce repeated as often as needed. (An empty nonce
/// leaves it as is.)
pub fn xor_password(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(password.len() + 1);
    out.extend_from_slice(password);
    out.push(0);
    if !nonce.is_empty() {
        for (b, n) in out.iter_mut().zip(nonce.iter().cycle()) {
            *b ^= n;
        }
    }
    out
}

/// Why the password could not be encrypted for the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RsaError {
    /// The server's key is not a PEM `PUBLIC KEY` block.
    #[error("the server's RSA public key is not a PEM \"PUBLIC KEY\" block")]
    Pem,
    /// The key decodes but is not an RSA key of 2048 to 8192 bits.
    #[error("the server's RSA public key is not usable: {0}")]
    Key(String),
    /// The password does not fit in one OAEP block of this key.
    #[error("the password ({len} bytes) is too long for the server's RSA key (at most {max})")]
    PasswordTooLong { len: usize, max: usize },
    #[error("RSA encryption failed")]
    Encrypt,
}

/// Full auth without TLS (`caching_sha2_password` and `sha256_password`):
/// [`xor_password`] encrypted with RSA-OAEP (SHA-1, MGF1-SHA-1) under the
/// public key the server sent as AuthMoreData (PEM, `BEGIN PUBLIC KEY`).
pub fn rsa_encrypt_password(
    public_key_pem: &[u8],
    password: &[u8],
    nonce: &[u8],
) -> Result<Vec<u8>, RsaError> {
    let der = pem_public_key(public_key_pem).ok_or(RsaError::Pem)?;
    let key = PublicEncryptingKey::from_der(&der).map_err(|e| RsaError::Key(e.to_string()))?;
    let key = OaepPublicEncryptingKey::new(key).map_err(|_| RsaError::Key("not RSA".into()))?;
    let plaintext = xor_password(password, nonce);
    let max = key.max_plaintext_size(&OAEP_SHA1_MGF1SHA1);
    if plaintext.len() > max {
        return Err(RsaError::PasswordTooLong {
            len: password.len(),
            max: max.saturating_sub(1),
        });
    }
    let mut out = vec![0; key.ciphertext_size()];
    let len = key
        .encrypt(&OAEP_SHA1_MGF1SHA1, &plaintext, &mut out, None)
        .map_err(|_| RsaError::Encrypt)?
        .len();
    out.truncate(len);
    Ok(out)
}

/// The DER inside the first `PUBLIC KEY` PEM block of `pem`. Servers may
/// send text around it and a NUL after it.
fn pem_public_key(pem: &[u8]) -> Option<Vec<u8>> {
    const BEGIN: &[u8] = b"-----BEGIN PUBLIC KEY-----";
    const END: &[u8] = b"-----END PUBLIC KEY-----";
    let start = find(pem, BEGIN)? + BEGIN.len();
    let len = find(&pem[start..], END)?;
    let body: Vec<u8> = pem[start..start + len]
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    B64.decode(body).ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A fresh nonce for a handshake the agent offers: 20 random bytes in
/// 1..=127 without `$`, as MySQL makes them (clients treat the nonce as a
/// C string). `None` if the system's random source failed.
pub fn random_nonce() -> Option<[u8; NONCE_LEN]> {
    let mut nonce = [0; NONCE_LEN];
    rand::fill(&mut nonce).ok()?;
    for b in &mut nonce {
        *b &= 0x7F;
        if *b == 0 || *b == b'$' {
            *b += 1;
        }
    }
    Some(nonce)
}
