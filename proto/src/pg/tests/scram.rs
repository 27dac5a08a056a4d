use std::num::NonZeroU32;

use aws_lc_rs::{digest, hmac, pbkdf2};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::pg::scram::*;

const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

fn rfc_client() -> ScramClient {
    ScramClient::with_nonce(b"pencil", ChannelBinding::Unsupported, "user", CLIENT_NONCE)
}

#[test]
fn rfc7677_test_vector() {
    let mut c = rfc_client();
    assert_eq!(c.mechanism(), "SCRAM-SHA-256");
    assert_eq!(c.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    let client_final = c.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
    assert_eq!(
        String::from_utf8(client_final).unwrap(),
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
         p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    );
    c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        .unwrap();
}

#[test]
fn wrong_server_signature_is_refused() {
    let mut c = rfc_client();
    c.client_first();
    c.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
    assert_eq!(
        c.verify_server_final(b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
        Err(ScramError::BadServerSignature)
    );
    assert_eq!(
        c.verify_server_final(b"v=AAAA"),
        Err(ScramError::BadServerSignature)
    );
    assert!(matches!(
        c.verify_server_final(b"v=!!"),
        Err(ScramError::Malformed(_))
    ));
    assert!(matches!(
        c.verify_server_final(b"x=1"),
        Err(ScramError::Malformed(_))
    ));
    assert_eq!(
        c.verify_server_final(b"e=invalid-proof"),
        Err(ScramError::Server("invalid-proof".into()))
    );
}

#[test]
fn hostile_server_first_messages() {
    type Check = fn(&ScramError) -> bool;
    let cases: &[(&str, Check)] = &[
        // Nonce that does not extend ours, or only repeats it.
        ("r=XOprNGfwEbeRWgbNEkqOabc,s=QSXCR+Q6sek8bf92,i=4096", |e| {
            *e == ScramError::NonceMismatch
        }),
        ("r=rOprNGfwEbeRWgbNEkqO,s=QSXCR+Q6sek8bf92,i=4096", |e| {
            *e == ScramError::NonceMismatch
        }),
        ("r=rOprNGfwEbeRWgbNEkqOab,s=QSXCR+Q6sek8bf92,i=0", |e| {
            *e == ScramError::Iterations(0)
        }),
        (
            "r=rOprNGfwEbeRWgbNEkqOab,s=QSXCR+Q6sek8bf92,i=10000001",
            |e| *e == ScramError::Iterations(10_000_001),
        ),
        (
            "r=rOprNGfwEbeRWgbNEkqOab,s=QSXCR+Q6sek8bf92,i=99999999999999999999999",
            |e| matches!(e, ScramError::Iterations(_)),
        ),
        ("r=rOprNGfwEbeRWgbNEkqOab,s=QSXCR+Q6sek8bf92,i=-1", |e| {
            matches!(e, ScramError::Malformed(_))
        }),
        ("r=rOprNGfwEbeRWgbNEkqOab,s=***,i=4096", |e| {
            matches!(e, ScramError::Malformed(_))
        }),
        ("r=rOprNGfwEbeRWgbNEkqOab,s=,i=4096", |e| {
            matches!(e, ScramError::Malformed(_))
        }),
        ("r=rOprNGfwEbeRWgbNEkqOab,i=4096", |e| {
            matches!(e, ScramError::Malformed(_))
        }),
        (
            "m=ext,r=rOprNGfwEbeRWgbNEkqOab,s=QSXCR+Q6sek8bf92,i=1",
            |e| matches!(e, ScramError::Malformed(_)),
        ),
        (
            "r=rOprNGfwEbeRWgbNEkqOa\u{e9},s=QSXCR+Q6sek8bf92,i=1",
            |e| matches!(e, ScramError::Malformed(_)),
        ),
        ("e=other-error", |e| {
            *e == ScramError::Server("other-error".into())
        }),
        ("", |e| matches!(e, ScramError::Malformed(_))),
    ];
    for (msg, check) in cases {
        let mut c = rfc_client();
        c.client_first();
        let err = c.handle_server_first(msg.as_bytes()).unwrap_err();
        assert!(check(&err), "{msg}: {err:?}");
    }
    let mut c = rfc_client();
    c.client_first();
    assert!(c.handle_server_first(b"\xff\xfe").is_err());
}

#[test]
fn steps_out_of_order_are_refused() {
    let mut c = rfc_client();
    assert_eq!(
        c.handle_server_first(SERVER_FIRST.as_bytes()),
        Err(ScramError::OutOfOrder)
    );
    assert_eq!(c.verify_server_final(b"v=x"), Err(ScramError::OutOfOrder));
    c.client_first();
    c.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
    // A second server-first cannot restart the exchange.
    assert_eq!(
        c.handle_server_first(SERVER_FIRST.as_bytes()),
        Err(ScramError::OutOfOrder)
    );
}

#[test]
fn random_nonces_are_distinct_and_username_is_empty() {
    let mut a = ScramClient::new(b"pw", ChannelBinding::SupportedButNotUsed);
    let mut b = ScramClient::new(b"pw", ChannelBinding::SupportedButNotUsed);
    let (a, b) = (a.client_first(), b.client_first());
    assert_ne!(a, b);
    let a = String::from_utf8(a).unwrap();
    assert!(a.starts_with("y,,n=,r="), "{a}");
    assert_eq!(a.len(), "y,,n=,r=".len() + 24);
    assert!(
        !format!(
            "{:?}",
            ScramClient::new(b"hunter2", ChannelBinding::Unsupported)
        )
        .contains("hunter2")
    );
}

/// The server side of SCRAM-SHA-256, as PostgreSQL computes it, to check
/// the client against something other than itself.
fn server_check(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    client_first_bare: &str,
    server_first: &str,
    client_final: &str,
) -> String {
    let (without_proof, proof) = client_final.rsplit_once(",p=").unwrap();
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(iterations).unwrap(),
        salt,
        password,
        &mut salted,
    );
    let salted = hmac::Key::new(hmac::HMAC_SHA256, &salted);
    let client_key = hmac::sign(&salted, b"Client Key");
    let stored = digest::digest(&digest::SHA256, client_key.as_ref());
    let signature = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, stored.as_ref()),
        auth_message.as_bytes(),
    );
    let proof = B64.decode(proof).unwrap();
    let recovered: Vec<u8> = proof
        .iter()
        .zip(signature.as_ref())
        .map(|(p, s)| p ^ s)
        .collect();
    assert_eq!(
        digest::digest(&digest::SHA256, &recovered).as_ref(),
        stored.as_ref(),
        "client proof"
    );
    let server_key = hmac::sign(&salted, b"Server Key");
    let v = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, server_key.as_ref()),
        auth_message.as_bytes(),
    );
    format!("v={}", B64.encode(v))
}

#[test]
fn channel_binding_plus_exchange_against_a_reference_server() {
    let cert_hash = vec![0x5a; 32];
    let mut c = ScramClient::new(
        b"s3cret",
        ChannelBinding::TlsServerEndPoint(cert_hash.clone()),
    );
    assert_eq!(c.mechanism(), "SCRAM-SHA-256-PLUS");
    let first = String::from_utf8(c.client_first()).unwrap();
    let bare = first.strip_prefix("p=tls-server-end-point,,").unwrap();
    let nonce = bare.strip_prefix("n=,r=").unwrap();
    let salt = b"0123456789abcdef";
    let server_first = format!("r={nonce}SERVERPART,s={},i=4096", B64.encode(salt));
    let client_final =
        String::from_utf8(c.handle_server_first(server_first.as_bytes()).unwrap()).unwrap();
    let cbind = client_final
        .strip_prefix("c=")
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let mut expected = b"p=tls-server-end-point,,".to_vec();
    expected.extend_from_slice(&cert_hash);
    assert_eq!(B64.decode(cbind).unwrap(), expected);
    let server_final = server_check(b"s3cret", salt, 4096, bare, &server_first, &client_final);
    c.verify_server_final(server_final.as_bytes()).unwrap();
}

#[test]
fn low_iteration_counts_are_accepted_like_libpq() {
    // PostgreSQL 16+ lets scram_iterations go down to 1.
    let mut c = ScramClient::new(b"pw", ChannelBinding::Unsupported);
    let first = String::from_utf8(c.client_first()).unwrap();
    let bare = first.strip_prefix("n,,").unwrap().to_owned();
    let nonce = bare.strip_prefix("n=,r=").unwrap();
    let server_first = format!("r={nonce}x,s=c2FsdA==,i=1,ext=ignored");
    let client_final =
        String::from_utf8(c.handle_server_first(server_first.as_bytes()).unwrap()).unwrap();
    let v = server_check(b"pw", b"salt", 1, &bare, &server_first, &client_final);
    c.verify_server_final(v.as_bytes()).unwrap();
}

/// `SEQUENCE { SEQUENCE {} , SEQUENCE { OID oid, NULL }, BIT STRING }`.
fn fake_cert(oid: &[u8]) -> Vec<u8> {
    let mut alg = vec![0x06, oid.len() as u8];
    alg.extend_from_slice(oid);
    alg.extend_from_slice(&[0x05, 0x00]);
    let mut body = vec![0x30, 0x00, 0x30, alg.len() as u8];
    body.extend_from_slice(&alg);
    body.extend_from_slice(&[0x03, 0x02, 0x00, 0xff]);
    let mut cert = vec![0x30, 0x81, body.len() as u8];
    cert.extend_from_slice(&body);
    cert
}

#[test]
fn tls_server_end_point_follows_rfc5929_hash_choice() {
    let sha256 = |d: &[u8]| digest::digest(&digest::SHA256, d).as_ref().to_vec();
    let sha384 = |d: &[u8]| digest::digest(&digest::SHA384, d).as_ref().to_vec();
    let sha512 = |d: &[u8]| digest::digest(&digest::SHA512, d).as_ref().to_vec();
    let rsa = |n: u8| fake_cert(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, n]);
    let ecdsa = |n: u8| fake_cert(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, n]);
    // md5WithRSA and sha1WithRSA are upgraded to SHA-256.
    for cert in [rsa(4), rsa(5), rsa(11), ecdsa(2)] {
        assert_eq!(tls_server_end_point_hash(&cert), sha256(&cert));
    }
    assert_eq!(tls_server_end_point_hash(&rsa(12)), sha384(&rsa(12)));
    assert_eq!(tls_server_end_point_hash(&ecdsa(3)), sha384(&ecdsa(3)));
    assert_eq!(tls_server_end_point_hash(&ecdsa(4)), sha512(&ecdsa(4)));
    // Ed25519 names no hash: PostgreSQL cannot bind to it either.
    let ed25519 = fake_cert(&[0x2b, 0x65, 0x70]);
    assert_eq!(try_tls_server_end_point_hash(&ed25519), None);
    assert_eq!(tls_server_end_point_hash(&ed25519), sha256(&ed25519));
    // Garbage does not panic.
    for junk in [
        &b""[..],
        b"\x30",
        b"\x30\x84\xff\xff\xff\xff",
        b"\x30\x03\x30\x80\x00",
    ] {
        assert_eq!(try_tls_server_end_point_hash(junk), None);
    }
}

/// One exchange against [`server_check`]: the client-final-message, after
/// checking the server's signature is accepted.
fn login_once(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    cache: Option<&SaltedPasswordCache>,
) -> String {
    let mut c = ScramClient::with_nonce(password, ChannelBinding::Unsupported, "", "NONCE");
    let first = String::from_utf8(c.client_first()).unwrap();
    let bare = first.strip_prefix("n,,").unwrap().to_owned();
    let server_first = format!("r=NONCEserver,s={},i={iterations}", B64.encode(salt));
    let client_final = match cache {
        Some(cache) => c.handle_server_first_cached(server_first.as_bytes(), cache),
        None => c.handle_server_first(server_first.as_bytes()),
    };
    let client_final = String::from_utf8(client_final.unwrap()).unwrap();
    let v = server_check(
        password,
        salt,
        iterations,
        &bare,
        &server_first,
        &client_final,
    );
    c.verify_server_final(v.as_bytes()).unwrap();
    // A server that does not know the password is still refused.
    assert_eq!(
        c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
        Err(ScramError::BadServerSignature)
    );
    client_final
}

#[test]
fn cached_salted_password_gives_the_same_proof() {
    let cache = SaltedPasswordCache::new(64);
    // The RFC 7677 vector through the cache: a miss, then a hit.
    for round in 0..2 {
        let mut c = rfc_client();
        c.client_first();
        let client_final = c
            .handle_server_first_cached(SERVER_FIRST.as_bytes(), &cache)
            .unwrap();
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "round {round}"
        );
        c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert_eq!(
            c.verify_server_final(b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(ScramError::BadServerSignature)
        );
    }
    assert_eq!((cache.hits(), cache.misses(), cache.len()), (1, 1, 1));

    let fresh = login_once(b"pw", b"salt-one", 64, None);
    assert_eq!(login_once(b"pw", b"salt-one", 64, Some(&cache)), fresh);
    assert_eq!(login_once(b"pw", b"salt-one", 64, Some(&cache)), fresh);
    assert_eq!((cache.hits(), cache.misses()), (2, 2));
}

#[test]
fn cache_misses_on_another_password_salt_or_count() {
    let cache = SaltedPasswordCache::new(64);
    let base = login_once(b"pw", b"salt", 16, Some(&cache));
    let others = [
        login_once(b"pw2", b"salt", 16, Some(&cache)),
        login_once(b"pw", b"salt2", 16, Some(&cache)),
        login_once(b"pw", b"salt", 17, Some(&cache)),
    ];
    assert_eq!((cache.hits(), cache.misses(), cache.len()), (0, 4, 4));
    for other in others {
        assert_ne!(other, base);
    }
    // Each is then found, with its own proof.
    assert_eq!(login_once(b"pw", b"salt", 16, Some(&cache)), base);
    assert_eq!(
        login_once(b"pw2", b"salt", 16, None),
        login_once(b"pw2", b"salt", 16, Some(&cache))
    );
    assert_eq!((cache.hits(), cache.misses()), (2, 4));
}

#[test]
fn cache_is_bounded_and_keeps_the_recently_used() {
    let cache = SaltedPasswordCache::new(4);
    for i in 0..4u8 {
        login_once(b"pw", &[i], 1, Some(&cache));
    }
    // Use salt 0 again, then add a fifth: salt 1, least recently used, goes.
    login_once(b"pw", &[0], 1, Some(&cache));
    login_once(b"pw", &[4], 1, Some(&cache));
    assert_eq!(cache.len(), 4);
    assert_eq!((cache.hits(), cache.misses()), (1, 5));
    login_once(b"pw", &[0], 1, Some(&cache));
    assert_eq!(cache.misses(), 5);
    login_once(b"pw", &[1], 1, Some(&cache));
    assert_eq!(cache.misses(), 6);
    assert_eq!(cache.len(), 4);

    // Capacity 0 caches nothing; huge salts are not kept.
    let none = SaltedPasswordCache::new(0);
    login_once(b"pw", b"salt", 1, Some(&none));
    login_once(b"pw", b"salt", 1, Some(&none));
    assert_eq!((none.hits(), none.misses(), none.len()), (0, 2, 0));
    let big = SaltedPasswordCache::new(4);
    login_once(b"pw", &[7; 1000], 1, Some(&big));
    assert!(big.is_empty());
}

#[test]
fn cache_debug_shows_no_secrets() {
    let cache = SaltedPasswordCache::new(4);
    login_once(b"hunter2", b"salt", 1, Some(&cache));
    let shown = format!("{cache:?}");
    assert_eq!(
        shown,
        "SaltedPasswordCache { capacity: 4, len: 1, hits: 0, misses: 1 }"
    );
}
