//! Splits a backend connection into a read half and a write half for two
//! tasks.
//!
//! Plain TCP uses the socket's own owned halves (no lock per poll). TLS
//! cannot be split that way. `tokio::io::split` would do, but reading TLS
//! can also write (tokio-rustls flushes records the write half left
//! pending), and a socket keeps only the most recent writer's waker, so
//! the read task could take over the write half's wake-up. Here both
//! halves share the stream under a lock, each poll that leaves its half
//! waiting records its waker, and any poll of the other half wakes it: a
//! wake-up can come early, never get lost. (The write half still has to be
//! flushed: TLS records can wait in rustls's buffer until then.)

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::backend_tls::BackendStream;

struct Shared {
    stream: BackendStream,
    /// The read half's waker while it waits.
    reader: Option<Waker>,
    /// The write half's waker while it waits.
    writer: Option<Waker>,
}

type Lock = Arc<Mutex<Shared>>;

fn lock(l: &Lock) -> io::Result<MutexGuard<'_, Shared>> {
    l.lock()
        .map_err(|_| io::Error::other("backend stream lock poisoned"))
}

/// The read half.
pub struct ReadHalf(Reader);

/// The write half.
pub struct WriteHalf(Writer);

enum Reader {
    Plain(OwnedReadHalf),
    Tls(Lock),
}

enum Writer {
    Plain(OwnedWriteHalf),
    Tls(Lock),
}

/// Splits `stream` for a reading task and a writing task.
pub fn split(stream: BackendStream) -> (ReadHalf, WriteHalf) {
    match stream {
        BackendStream::Plain(tcp) => {
            let (r, w) = tcp.into_split();
            (ReadHalf(Reader::Plain(r)), WriteHalf(Writer::Plain(w)))
        }
        tls @ BackendStream::Tls(_) => {
            let shared = Arc::new(Mutex::new(Shared {
                stream: tls,
                reader: None,
                writer: None,
            }));
            (
                ReadHalf(Reader::Tls(shared.clone())),
                WriteHalf(Writer::Tls(shared)),
            )
        }
    }
}

/// Polls `op` on the shared stream as the read half (`reading`) or the
/// write half; wakes the other half if it was waiting.
fn poll_shared<T>(
    l: &Lock,
    cx: &mut Context<'_>,
    reading: bool,
    op: impl FnOnce(Pin<&mut BackendStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
) -> Poll<io::Result<T>> {
    let mut g = match lock(l) {
        Ok(g) => g,
        Err(e) => return Poll::Ready(Err(e)),
    };
    let result = op(Pin::new(&mut g.stream), cx);
    let g = &mut *g;
    let (mine, other) = if reading {
        (&mut g.reader, &mut g.writer)
    } else {
        (&mut g.writer, &mut g.reader)
    };
    *mine = result.is_pending().then(|| cx.waker().clone());
    // This poll may have used the socket for the other half (or made
    // room for it): let it look again.
    let other = other.take();
    if let Some(w) = other {
        w.wake();
    }
    result
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Reader::Plain(r) => Pin::new(r).poll_read(cx, buf),
            Reader::Tls(l) => poll_shared(l, cx, true, |s, cx| s.poll_read(cx, buf)),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Writer::Plain(w) => Pin::new(w).poll_write(cx, buf),
            Writer::Tls(l) => poll_shared(l, cx, false, |s, cx| s.poll_write(cx, buf)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Writer::Plain(w) => Pin::new(w).poll_flush(cx),
            Writer::Tls(l) => poll_shared(l, cx, false, |s, cx| s.poll_flush(cx)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Writer::Plain(w) => Pin::new(w).poll_shutdown(cx),
            Writer::Tls(l) => poll_shared(l, cx, false, |s, cx| s.poll_shutdown(cx)),
        }
    }
}
