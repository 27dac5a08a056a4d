use super::*;

#[test]
fn every_form_decodes() {
    let cases: &[(&[u8], Option<u64>, usize)] = &[
        (&[0x00], Some(0), 1),
        (&[0xfa], Some(250), 1),
        (&[0xfb], None, 1),
        (&[0xfc, 0xfb, 0x00], Some(251), 3),
        (&[0xfc, 0xff, 0xff], Some(0xffff), 3),
        (&[0xfd, 0x00, 0x00, 0x01], Some(0x1_0000), 4),
        (&[0xfd, 0xff, 0xff, 0xff], Some(0xff_ffff), 4),
        (&[0xfe, 0, 0, 0, 1, 0, 0, 0, 0], Some(0x100_0000), 9),
        (
            &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            Some(u64::MAX),
            9,
        ),
        // Non-minimal forms are read as servers read them.
        (&[0xfc, 0x01, 0x00], Some(1), 3),
    ];
    for &(bytes, value, used) in cases {
        let mut with_tail = bytes.to_vec();
        with_tail.push(0xAA);
        assert_eq!(
            decode_lenenc_int(&with_tail),
            Ok((value, used)),
            "{bytes:02x?}"
        );
    }
}

#[test]
fn encoding_picks_the_shortest_form_and_round_trips() {
    for n in [
        0,
        250,
        251,
        0xffff,
        0x1_0000,
        0xff_ffff,
        0x100_0000,
        u64::from(u32::MAX),
        u64::MAX,
    ] {
        let mut out = Vec::new();
        encode_lenenc_int(n, &mut out);
        let expected_len = match n {
            0..=250 => 1,
            251..=0xffff => 3,
            0x1_0000..=0xff_ffff => 4,
            _ => 9,
        };
        assert_eq!(out.len(), expected_len, "{n}");
        assert_eq!(decode_lenenc_int(&out), Ok((Some(n), out.len())));
    }
}

#[test]
fn truncated_and_invalid_forms_are_errors() {
    for bytes in [
        &[][..],
        &[0xfc],
        &[0xfc, 0x01],
        &[0xfd, 0x01, 0x02],
        &[0xfe, 1, 2, 3, 4, 5, 6, 7],
        &[0xff],
        &[0xff, 0, 0],
    ] {
        assert_invalid(decode_lenenc_int(bytes));
    }
}

#[test]
fn strings_check_their_length_before_using_it() {
    assert_eq!(decode_lenenc_str(b"\x03abcdef"), Ok((Some(&b"abc"[..]), 4)));
    assert_eq!(decode_lenenc_str(b"\x00"), Ok((Some(&b""[..]), 1)));
    assert_eq!(decode_lenenc_str(b"\xfb"), Ok((None, 1)));
    assert_invalid(decode_lenenc_str(b"\x04abc"));
    // 2^64 - 1 bytes announced in 9 bytes: an error, not an allocation.
    assert_invalid(decode_lenenc_str(&[
        0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, b'x',
    ]));
    assert_invalid(decode_lenenc_str(&[0xfd, 0xff, 0xff, 0xff]));

    let mut out = Vec::new();
    encode_lenenc_str(Some(&[7; 300]), &mut out);
    encode_lenenc_str(None, &mut out);
    assert_eq!(&out[..3], &[0xfc, 0x2c, 0x01]);
    let (value, used) = decode_lenenc_str(&out).unwrap();
    assert_eq!(value, Some(&[7; 300][..]));
    assert_eq!(decode_lenenc_str(&out[used..]), Ok((None, 1)));
}
