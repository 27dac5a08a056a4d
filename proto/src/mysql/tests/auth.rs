use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;

use super::*;
use crate::mysql::auth::*;
use crate::mysql::flags::CLIENT_PROTOCOL_41;
use crate::mysql::scramble::*;

/// The scramble of the captured MariaDB handshake.
const NONCE: &[u8] = b"Z_MEO>)P9j.BCha/e/XM";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn native_password_known_answer() {
    // Computed independently with Python's hashlib:
    //   s1 = sha1(b"s3cret-pw"); s2 = sha1(nonce + sha1(s1))
    //   bytes(a ^ b for a, b in zip(s1, s2)).hex()
    assert_eq!(
        hex(&native_password(b"s3cret-pw", NONCE)),
        "85c1f68833a4610d8d32b8a5fa42efbfcd0ab535"
    );
    assert!(native_password(b"", NONCE).is_empty());
}

#[test]
fn caching_sha2_fast_auth_known_answer() {
    // Computed independently with Python's hashlib:
    //   s1 = sha256(b"s3cret-pw"); s2 = sha256(sha256(s1) + nonce)
    //   bytes(a ^ b for a, b in zip(s1, s2)).hex()
    assert_eq!(
        hex(&caching_sha2_password(b"s3cret-pw", NONCE)),
        "fcc2eca3fa285cedea3aea79c82e3f8f2c2afd391df76f8426c81a88a10a6b89"
    );
    assert!(caching_sha2_password(b"", NONCE).is_empty());
}

#[test]
fn xor_password_known_answers() {
    // Python: x = pw + b"\0"; bytes(c ^ nonce[i % 20] for i, c in enumerate(x)).hex()
    assert_eq!(
        hex(&xor_password(b"s3cret-pw", NONCE)),
        "296c2e372a4a04204e6a"
    );
    // Longer than the nonce: it repeats.
    assert_eq!(
        hex(&xor_password(b"correct horse battery staple", NONCE)),
        "39303f372a5d5d7051055c312648034e115b3d3f237f3e312e4e453539"
    );
    assert_eq!(xor_password(b"pw", b""), b"pw\0");
}

fn pem(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

#[test]
fn rsa_exchange_encrypts_what_the_server_decrypts() {
    let private = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
    let der = private.public_key().as_der().unwrap();
    // As MySQL sends it: AuthMoreData holding the PEM file, NUL included.
    let mut key = pem(der.as_ref()).into_bytes();
    key.push(0);

    let ciphertext = rsa_encrypt_password(&key, b"s3cret-pw", NONCE).unwrap();
    assert_eq!(ciphertext.len(), 256);
    let server = OaepPrivateDecryptingKey::new(private).unwrap();
    let mut buf = vec![0; server.min_output_size()];
    let plain = server
        .decrypt(&OAEP_SHA1_MGF1SHA1, &ciphertext, &mut buf, None)
        .unwrap();
    assert_eq!(plain, &xor_password(b"s3cret-pw", NONCE)[..]);

    // A 2048-bit key with OAEP-SHA1 takes 214 bytes: the password and NUL.
    assert!(rsa_encrypt_password(&key, &[b'p'; 213], NONCE).is_ok());
    assert_eq!(
        rsa_encrypt_password(&key, &[b'p'; 214], NONCE),
        Err(RsaError::PasswordTooLong { len: 214, max: 213 })
    );
}

#[test]
fn rsa_exchange_refuses_what_is_not_a_public_key() {
    assert_eq!(
        rsa_encrypt_password(b"hello", b"pw", NONCE),
        Err(RsaError::Pem)
    );
    assert_eq!(
        rsa_encrypt_password(
            b"-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----",
            b"pw",
            NONCE
        ),
        Err(RsaError::Pem)
    );
    let not_a_key = pem(b"\x30\x03\x02\x01\x00");
    assert!(matches!(
        rsa_encrypt_password(not_a_key.as_bytes(), b"pw", NONCE),
        Err(RsaError::Key(_))
    ));
    // An END marker before the BEGIN marker is not a block.
    assert_eq!(
        rsa_encrypt_password(
            b"-----END PUBLIC KEY----------BEGIN PUBLIC KEY-----",
            b"pw",
            NONCE
        ),
        Err(RsaError::Pem)
    );
}

#[test]
fn random_nonces_are_printable_c_strings() {
    let a = random_nonce().unwrap();
    let b = random_nonce().unwrap();
    assert_ne!(a, b);
    for n in a.iter().chain(&b) {
        assert!((1..=127).contains(n) && *n != b'$', "{n}");
    }
}

#[test]
fn auth_switch_request_round_trips_and_gives_its_nonce() {
    let mut wire = b"\xfemysql_native_password\0".to_vec();
    wire.extend_from_slice(NONCE);
    wire.push(0);
    let payload = Bytes::from(wire.clone());
    let req = AuthSwitchRequest::decode(&payload).unwrap();
    assert_eq!(req.plugin, MYSQL_NATIVE_PASSWORD);
    assert_eq!(req.scramble(), NONCE);
    let mut out = Vec::new();
    req.encode(&mut out).unwrap();
    assert_eq!(out, wire);

    assert!(matches!(
        AuthSwitchRequest::decode(&Bytes::from_static(b"\xfe")),
        Err(DecodeError::Unsupported { .. })
    ));
    assert_invalid(AuthSwitchRequest::decode(&Bytes::from_static(
        b"\xfeno-terminator",
    )));
    let bad = AuthSwitchRequest {
        plugin: "a\0b".into(),
        data: Bytes::new(),
    };
    assert!(bad.encode(&mut Vec::new()).is_err());
}

#[test]
fn auth_packets_are_told_apart_by_their_first_byte() {
    let caps = CLIENT_PROTOCOL_41;
    let decode = |bytes: &'static [u8]| AuthPacket::decode(&Bytes::from_static(bytes), caps);
    assert!(matches!(
        decode(b"\x00\x00\x00\x02\x00\x00\x00"),
        Ok(AuthPacket::Ok(_))
    ));
    assert!(
        matches!(decode(b"\xff\x15\x04#28000Access denied"), Ok(AuthPacket::Err(e)) if e.code == 1045)
    );
    assert!(matches!(
        decode(b"\xfecaching_sha2_password\0abc"),
        Ok(AuthPacket::Switch(s)) if s.plugin == CACHING_SHA2_PASSWORD
    ));
    let Ok(AuthPacket::MoreData(more)) = decode(b"\x01\x04") else {
        panic!("not more data")
    };
    assert_eq!(more.status(), Some(PERFORM_FULL_AUTH));
    let Ok(AuthPacket::MoreData(more)) = decode(b"\x01\x03") else {
        panic!("not more data")
    };
    assert_eq!(more.status(), Some(FAST_AUTH_SUCCESS));
    let Ok(AuthPacket::MoreData(more)) = decode(b"\x01-----BEGIN PUBLIC KEY-----") else {
        panic!("not more data")
    };
    assert_eq!(more.status(), None);
    let mut out = Vec::new();
    more.encode(&mut out);
    assert_eq!(out, b"\x01-----BEGIN PUBLIC KEY-----");

    assert!(matches!(
        decode(b"\x02"),
        Err(DecodeError::Unexpected { header: 2, .. })
    ));
    assert_invalid(decode(b""));
}

#[test]
fn client_auth_answers() {
    let mut out = Vec::new();
    encode_auth_data(&[REQUEST_PUBLIC_KEY], &mut out);
    assert_eq!(out, [2]);
    out.clear();
    encode_cleartext_password(b"pw", &mut out).unwrap();
    assert_eq!(out, b"pw\0");
    assert!(encode_cleartext_password(b"p\0w", &mut out).is_err());
}
