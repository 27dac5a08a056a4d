//! Byte relay between a TCP socket and a QUIC bidirectional stream.
//!
//! Each direction runs on its own and ends on its own, so a half-close on
//! either side (TCP `shutdown(SHUT_WR)`, QUIC `finish`) is carried across.
//! No buffer is held while a connection is idle: reads go into one buffer
//! per thread, shared by every relay on it, and each read leaves with only
//! its own bytes (a view of that buffer that the QUIC stream keeps until
//! the peer has them). A small message thus costs no allocation of its own
//! and idle connections stay cheap.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use quinn::{RecvStream, SendStream, VarInt};
use socket2::SockRef;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::ReadHalf;

/// Size of each thread's shared read buffer: the largest read from TCP in
/// one go.
const CHUNK: usize = 64 * 1024;
/// A new shared buffer is started when less than this is left of the old
/// one, so that bulk reads stay large.
const MIN_READ: usize = 16 * 1024;

thread_local! {
    /// What is left of this thread's read buffer (initialized bytes, so a
    /// read needs no `unsafe`); reads split their bytes off its front.
    static SPARE: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}
/// Most QUIC chunks (about one datagram each) gathered into one TCP write.
const MAX_CHUNKS: usize = 32;

/// Application error code sent when a stream is reset because its TCP side
/// failed.
pub const RESET_TCP_ERROR: VarInt = VarInt::from_u32(1);

/// Bytes moved by one relay.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayStats {
    /// From the TCP socket into the QUIC stream.
    pub tcp_to_quic: u64,
    /// From the QUIC stream out to the TCP socket.
    pub quic_to_tcp: u64,
}

/// How a relay ended early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("TCP connection failed: {0}")]
    Tcp(#[source] io::Error),
    #[error("tunnel stream failed: {0}")]
    QuicWrite(#[source] quinn::WriteError),
    #[error("tunnel stream failed: {0}")]
    QuicRead(#[source] quinn::ReadError),
}

/// Relays until both directions are done. Returns the byte counts even when
/// a direction failed, with the first failure. When the tunnel side fails,
/// the TCP connection is reset rather than closed, so the local client
/// does not mistake a broken transfer for a complete one.
pub async fn relay(
    tcp: TcpStream,
    send: SendStream,
    recv: RecvStream,
) -> (RelayStats, Result<(), RelayError>) {
    let mut tcp = tcp;
    let _ = tcp.set_nodelay(true);
    let (rd, wr) = tcp.split();
    let (up, down) = tokio::join!(tcp_to_quic(rd, send), quic_to_tcp(recv, wr.as_ref()));
    let stats = RelayStats {
        tcp_to_quic: up.0,
        quic_to_tcp: down.0,
    };
    let result = up.1.and(down.1);
    if result.is_err() {
        let _ = SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
    }
    (stats, result)
}

async fn tcp_to_quic(mut tcp: ReadHalf<'_>, mut send: SendStream) -> (u64, Result<(), RelayError>) {
    let mut total = 0u64;
    loop {
        // Wait for readiness first so an idle connection holds no buffer.
        let ready = tokio::select! {
            r = tcp.readable() => r,
            // The peer stopped reading: nothing we read could be delivered.
            _ = send.stopped() => return (total, Ok(())),
        };
        if let Err(e) = ready {
            let _ = send.reset(RESET_TCP_ERROR);
            return (total, Err(RelayError::Tcp(e)));
        }
        match poll_fn(|cx| read_shared(&mut tcp, cx)).await {
            Ok(chunk) if chunk.is_empty() => {
                let _ = send.finish();
                return (total, Ok(()));
            }
            Ok(chunk) => {
                total += chunk.len() as u64;
                if let Err(e) = send.write_chunk(chunk).await {
                    return (total, Err(RelayError::QuicWrite(e)));
                }
            }
            Err(e) => {
                let _ = send.reset(RESET_TCP_ERROR);
                return (total, Err(RelayError::Tcp(e)));
            }
        }
    }
}

/// One read into this thread's shared buffer; the bytes read leave as
/// their own `Bytes` (empty at end of stream). Through `poll_read`, which
/// (unlike `try_read`) takes a short read as proof that the socket is
/// drained, so the next wait goes straight to epoll instead of first
/// making a read that fails with `EAGAIN`: one system call less per
/// message.
fn read_shared(tcp: &mut ReadHalf<'_>, cx: &mut Context<'_>) -> Poll<io::Result<Bytes>> {
    SPARE.with_borrow_mut(|spare| {
        if spare.len() < MIN_READ {
            *spare = BytesMut::zeroed(CHUNK);
        }
        let mut buf = ReadBuf::new(&mut spare[..]);
        ready!(Pin::new(tcp).poll_read(cx, &mut buf))?;
        let n = buf.filled().len();
        Poll::Ready(Ok(spare.split_to(n).freeze()))
    })
}

async fn quic_to_tcp(mut recv: RecvStream, tcp: &TcpStream) -> (u64, Result<(), RelayError>) {
    let mut total = 0u64;
    // quinn hands out one chunk per STREAM frame, about one datagram; a
    // write per chunk costs a TCP segment and a wake-up of the reader per
    // ~1.4 KiB. Take every chunk that is ready and write them at once.
    let mut chunks: [Bytes; MAX_CHUNKS] = Default::default();
    loop {
        match recv.read_chunks(&mut chunks).await {
            Ok(Some(n)) => {
                let len: usize = chunks[..n].iter().map(Bytes::len).sum();
                let result = write_all_vectored(tcp, &mut chunks[..n]).await;
                // Release the data now rather than at the next read.
                chunks[..n].fill(Bytes::new());
                if let Err(e) = result {
                    let _ = recv.stop(RESET_TCP_ERROR);
                    return (total, Err(RelayError::Tcp(e)));
                }
                total += len as u64;
            }
            Ok(None) => {
                // Peer finished: half-close our write side only.
                let _ = SockRef::from(tcp).shutdown(Shutdown::Write);
                return (total, Ok(()));
            }
            Err(e) => return (total, Err(RelayError::QuicRead(e))),
        }
    }
}

/// Writes every chunk, in order, with vectored writes.
async fn write_all_vectored(tcp: &TcpStream, chunks: &mut [Bytes]) -> io::Result<()> {
    let mut first = 0;
    while first < chunks.len() {
        tcp.writable().await?;
        let pending = &chunks[first..];
        let mut slices = [io::IoSlice::new(&[]); MAX_CHUNKS];
        for (slice, chunk) in slices.iter_mut().zip(pending) {
            *slice = io::IoSlice::new(chunk);
        }
        let mut written = match tcp.try_write_vectored(&slices[..pending.len()]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        // Drop what was written: whole chunks, then part of the next.
        while first < chunks.len() && written >= chunks[first].len() {
            written -= chunks[first].len();
            first += 1;
        }
        if written > 0 {
            chunks[first].advance(written);
        }
    }
    Ok(())
}
