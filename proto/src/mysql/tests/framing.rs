use bytes::{BufMut, BytesMut};

use super::*;

#[test]
fn split_packet_returns_each_packet_whole_and_shares_memory() {
    let stream = unhex(MARIADB_TEXT_RESULT);
    let mut buf = BytesMut::from(&stream[..]);
    let mut seqs = Vec::new();
    let mut total = 0;
    while let Some(p) = split_packet(&mut buf, MAX_PACKET_LEN).unwrap() {
        assert_eq!(p.payload.len() + HEADER_LEN, p.raw.len());
        assert_eq!(&p.raw[HEADER_LEN..], &p.payload[..]);
        // One chunk: the payload is a view of the raw bytes, not a copy.
        assert_eq!(p.payload.as_ptr(), p.raw[HEADER_LEN..].as_ptr());
        assert_eq!(p.seq, p.last_seq);
        assert_eq!(p.next_seq(), p.seq + 1);
        total += p.raw.len();
        seqs.push(p.seq);
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(total, stream.len());
    assert!(buf.is_empty());
}

#[test]
fn every_cut_of_a_stream_is_incomplete_never_an_error() {
    let stream = unhex(MARIADB_TEXT_RESULT);
    for cut in 0..=stream.len() {
        let mut buf = BytesMut::from(&stream[..cut]);
        let mut seen = Vec::new();
        while let Some(p) = split_packet(&mut buf, MAX_PACKET_LEN).unwrap() {
            seen.extend_from_slice(&p.raw);
        }
        seen.extend_from_slice(&buf);
        assert_eq!(seen, &stream[..cut], "cut at {cut}");
    }
}

#[test]
fn hostile_length_is_refused_from_the_header_alone_without_allocating() {
    // A 16 MiB announcement when only 128 KiB are allowed before login.
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0x00][..]);
    let capacity = buf.capacity();
    assert_eq!(
        split_packet(&mut buf, MAX_PRE_AUTH_PACKET_LEN),
        Err(DecodeError::TooLong {
            len: MAX_CHUNK_LEN,
            max: MAX_PRE_AUTH_PACKET_LEN
        })
    );
    assert_eq!(buf.capacity(), capacity, "nothing reserved");
    assert_eq!(buf.len(), 4, "nothing consumed");
    assert!(matches!(
        check_header(&buf, MAX_PRE_AUTH_PACKET_LEN),
        Err(DecodeError::TooLong { .. })
    ));

    // The limit itself is allowed, and waiting for it reserves nothing.
    let mut buf = BytesMut::new();
    buf.put_slice(&(MAX_PRE_AUTH_PACKET_LEN as u32).to_le_bytes()[..3]);
    buf.put_u8(1);
    let capacity = buf.capacity();
    assert_eq!(split_packet(&mut buf, MAX_PRE_AUTH_PACKET_LEN), Ok(None));
    assert_eq!(buf.capacity(), capacity);
}

#[test]
fn the_cap_counts_all_continuation_chunks_together() {
    // Two full chunks announced; the second header alone pushes the total
    // over a 20 MiB cap, before its payload has arrived.
    let cap = 20 << 20;
    let mut stream = vec![0xff, 0xff, 0xff, 0];
    stream.resize(HEADER_LEN + MAX_CHUNK_LEN, b'x');
    let mut buf = BytesMut::from(&stream[..]);
    assert_eq!(split_packet(&mut buf, cap), Ok(None));
    buf.put_slice(&[0xff, 0xff, 0xff, 1]);
    assert_eq!(
        split_packet(&mut buf, cap),
        Err(DecodeError::TooLong {
            len: 2 * MAX_CHUNK_LEN,
            max: cap
        })
    );
}

#[test]
fn continuation_packets_are_joined_and_reencoded_alike() {
    for len in [
        MAX_CHUNK_LEN - 1,
        MAX_CHUNK_LEN,
        MAX_CHUNK_LEN + 1,
        2 * MAX_CHUNK_LEN,
    ] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        let next = encode_packet(250, &payload, &mut wire).unwrap();
        let chunks = len / MAX_CHUNK_LEN + 1;
        assert_eq!(wire.len(), len + chunks * HEADER_LEN, "len {len}");
        assert_eq!(next, 250u8.wrapping_add(chunks as u8));

        let mut buf = BytesMut::from(&wire[..]);
        let p = split_packet(&mut buf, MAX_PACKET_LEN).unwrap().unwrap();
        assert!(buf.is_empty());
        assert_eq!(p.seq, 250);
        assert_eq!(p.next_seq(), next, "sequence ids wrap at 255");
        assert_eq!(p.payload.len(), len);
        assert!(p.payload == payload[..]);
        assert_eq!(p.raw.len(), wire.len());

        // The same through write_packet's patched header.
        let mut out = BytesMut::new();
        let next2 = write_packet(&mut out, 250, |o| {
            o.put_slice(&payload);
            Ok(())
        })
        .unwrap();
        assert_eq!(next2, next);
        assert!(out[..] == wire[..], "len {len}");
    }
}

#[test]
fn an_exact_multiple_of_the_chunk_size_ends_with_an_empty_packet() {
    let payload = vec![7; MAX_CHUNK_LEN];
    let mut wire = Vec::new();
    encode_packet(0, &payload, &mut wire).unwrap();
    assert_eq!(&wire[wire.len() - 4..], &[0, 0, 0, 1]);
    // Without that empty packet the logical packet is incomplete.
    let mut buf = BytesMut::from(&wire[..wire.len() - 4]);
    assert_eq!(split_packet(&mut buf, MAX_PACKET_LEN), Ok(None));
}

#[test]
fn a_continuation_out_of_sequence_is_invalid() {
    let mut wire = vec![0xff, 0xff, 0xff, 3];
    wire.resize(HEADER_LEN + MAX_CHUNK_LEN, 0);
    wire.extend_from_slice(&[1, 0, 0, 5, b'x']);
    let mut buf = BytesMut::from(&wire[..]);
    assert_invalid(split_packet(&mut buf, MAX_PACKET_LEN));
}

#[test]
fn empty_packets_and_small_writes() {
    let mut buf = BytesMut::from(&[0, 0, 0, 9, 1, 0, 0][..]);
    let p = split_packet(&mut buf, 0).unwrap().unwrap();
    assert!(p.payload.is_empty());
    assert_eq!(p.seq, 9);
    assert_eq!(&buf[..], &[1, 0, 0]);

    let mut out = BytesMut::from(&b"keep"[..]);
    let next = write_packet(&mut out, 3, |o| {
        o.put_slice(b"\x0e");
        Ok(())
    })
    .unwrap();
    assert_eq!(next, 4);
    assert_eq!(&out[..], b"keep\x01\x00\x00\x03\x0e");

    // A failing writer leaves the buffer as it was.
    let err = write_packet(&mut out, 0, |o| {
        o.put_slice(b"partial");
        Err(EncodeError::Nul { field: "x" })
    });
    assert!(err.is_err());
    assert_eq!(&out[..], b"keep\x01\x00\x00\x03\x0e");
}

#[test]
fn from_bytes_refuses_trailing_bytes() {
    let mut wire = frame(0, b"\x0e");
    wire.push(0);
    assert_invalid(Packet::from_bytes(&wire, MAX_PACKET_LEN));
    assert_eq!(Packet::from_bytes(&wire[..3], MAX_PACKET_LEN), Ok(None));
}
