//! Bodies passed through the agent: counted as they stream (never
//! buffered), and the per-request audit record, written when the response
//! body ends, fails or is dropped.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Response, StatusCode, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::json;
use crate::audit::{AuditLog, Event, KubeRequest, Who};
use crate::mask::{MaskSummary, Masker};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the agent sends, either way.
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// A body of fixed bytes.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

/// A response the agent makes itself: JSON `{"error": ..., "rule": ...}`.
pub fn agent_response(status: StatusCode, message: &str, rule: Option<&str>) -> Response<Body> {
    let mut v =
        serde_json::json!({ "error": format!("hoop: {message}"), "status": status.as_u16() });
    if let Some(r) = rule {
        v["rule"] = r.into();
    }
    let text = v.to_string();
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Counts the data bytes of a body into a shared counter.
pub struct Counted<B> {
    inner: B,
    count: Arc<AtomicU64>,
}

impl<B> Counted<B> {
    pub fn new(inner: B, count: Arc<AtomicU64>) -> Self {
        Counted { inner, count }
    }
}

impl<B> HttpBody for Counted<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r {
            let n = f.data_ref().map_or(0, Bytes::len);
            self.count.fetch_add(n as u64, Ordering::Relaxed);
        }
        r.map(|o| o.map(|r| r.map_err(Into::into)))
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The audit record of one request. Written once: by [`Record::finish`]
/// or, failing that, when dropped (the caller went away mid-response).
pub struct Record {
    pub audit: AuditLog,
    pub session: String,
    pub who: Who,
    pub connection: String,
    pub method: String,
    pub path: String,
    pub query: Vec<String>,
    pub upgrade: Option<String>,
    pub started: Instant,
    pub status: u16,
    /// Request body bytes, counted as they are read.
    pub up: Arc<AtomicU64>,
    /// Response body bytes sent to the caller.
    pub down: u64,
    pub outcome: &'static str,
    pub rule: Option<String>,
    pub error: Option<String>,
    pub masked: Arc<Mutex<MaskSummary>>,
    /// `kubernetes` connections: what the API path names.
    pub kube: Option<KubeRequest>,
    /// A recorded `exec`/`attach`: its file under the data dir.
    pub recording: Option<String>,
    done: bool,
}

impl Record {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        audit: AuditLog,
        session: String,
        who: Who,
        connection: String,
        method: String,
        path: String,
        query: Vec<String>,
        upgrade: Option<String>,
    ) -> Record {
        Record {
            audit,
            session,
            who,
            connection,
            method,
            path,
            query,
            upgrade,
            started: Instant::now(),
            status: 0,
            up: Arc::default(),
            down: 0,
            outcome: "ok",
            rule: None,
            error: None,
            masked: Arc::default(),
            kube: None,
            recording: None,
            done: false,
        }
    }

    /// Marks the exchange failed with `error`.
    pub fn fail(&mut self, error: impl Into<String>) {
        self.outcome = "error";
        self.error = Some(error.into());
    }

    /// Writes the event.
    pub fn finish(mut self) {
        self.write();
    }

    fn write(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let masked = self
            .masked
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default();
        let duration_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let bytes_up = self.up.load(Ordering::Relaxed);
        tracing::debug!(
            session = %self.session,
            method = %self.method,
            path = %self.path,
            status = self.status,
            up = bytes_up,
            down = self.down,
            duration_us,
            "http request"
        );
        self.audit.record(Event::HttpRequest {
            session: std::mem::take(&mut self.session),
            who: self.who.clone(),
            connection: std::mem::take(&mut self.connection),
            method: std::mem::take(&mut self.method),
            path: std::mem::take(&mut self.path),
            query: std::mem::take(&mut self.query),
            upgrade: self.upgrade.take(),
            status: self.status,
            bytes_up,
            bytes_down: self.down,
            duration_us,
            outcome: self.outcome.to_string(),
            rule: self.rule.take(),
            error: self.error.take(),
            masked: (!masked.is_empty()).then_some(masked),
            kube: self.kube.take(),
            recording: self.recording.take(),
        });
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if !self.done && self.error.is_none() && self.outcome == "ok" {
            self.fail("the caller went away before the response ended");
        }
        self.write();
    }
}

/// The response body sent to the caller: counts bytes, and writes the
/// request's audit record when it ends.
pub struct Tracked<B> {
    inner: B,
    record: Option<Record>,
    /// The body had ended before it was sent (`HEAD`, `204`, `304`):
    /// hyper never polls such a body, it only drops it.
    empty: bool,
}

impl<B: HttpBody> Tracked<B> {
    pub fn new(inner: B, record: Record) -> Self {
        Tracked {
            empty: inner.is_end_stream(),
            inner,
            record: Some(record),
        }
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        if let Some(rec) = self.record.take() {
            if self.empty {
                rec.finish();
            }
            // Otherwise the record says the response was cut short.
        }
    }
}

impl<B> HttpBody for Tracked<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let r = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r.map(|r| r.map_err(Into::into)),
        };
        match &r {
            Some(Ok(f)) => {
                if let (Some(d), Some(rec)) = (f.data_ref(), self.record.as_mut()) {
                    rec.down += d.len() as u64;
                }
                if self.inner.is_end_stream() {
                    if let Some(rec) = self.record.take() {
                        rec.finish();
                    }
                }
            }
            Some(Err(e)) => {
                if let Some(mut rec) = self.record.take() {
                    rec.fail(format!("the response body failed: {e}"));
                    rec.finish();
                }
            }
            None => {
                if let Some(rec) = self.record.take() {
                    rec.finish();
                }
            }
        }
        Poll::Ready(r)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A stream of JSON documents, one per line, masked line by line as
/// whole lines arrive. A line that is not JSON, or longer than `cap`,
/// ends the stream with an error (the caller sees it cut short), so
/// nothing unmasked gets through.
pub struct MaskLines<B> {
    inner: B,
    masker: Arc<Masker>,
    summary: Arc<Mutex<MaskSummary>>,
    buf: BytesMut,
    cap: usize,
    ended: bool,
}

impl<B> MaskLines<B> {
    pub fn new(
        inner: B,
        masker: Arc<Masker>,
        summary: Arc<Mutex<MaskSummary>>,
        cap: usize,
    ) -> Self {
        MaskLines {
            inner,
            masker,
            summary,
            buf: BytesMut::new(),
            cap,
            ended: false,
        }
    }

    /// Masks `chunk` (whole lines, or the last bytes of the stream).
    fn mask(&self, chunk: &[u8]) -> Result<Bytes, BoxError> {
        let mut out = Vec::with_capacity(chunk.len());
        let mut summary = MaskSummary::default();
        for line in chunk.split_inclusive(|b| *b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                out.extend_from_slice(line);
                continue;
            }
            match json::mask_document(&self.masker, line, &mut summary) {
                Ok(Some(m)) => out.extend_from_slice(&m),
                Ok(None) => out.extend_from_slice(line),
                Err(e) => {
                    return Err(format!(
                        "masking is on and a line of the JSON stream does not parse ({e}); the stream was cut"
                    )
                    .into());
                }
            }
        }
        if let Ok(mut s) = self.summary.lock() {
            s.absorb(&mut summary);
        }
        Ok(Bytes::from(out))
    }
}

impl<B> HttpBody for MaskLines<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if let Some(last) = self.buf.iter().rposition(|b| *b == b'\n') {
                let lines = self.buf.split_to(last + 1);
                return Poll::Ready(Some(self.mask(&lines).map(Frame::data)));
            }
            if self.ended {
                if self.buf.is_empty() {
                    return Poll::Ready(None);
                }
                let rest = self.buf.split();
                return Poll::Ready(Some(self.mask(&rest).map(Frame::data)));
            }
            if self.buf.len() > self.cap {
                return Poll::Ready(Some(Err(format!(
                    "masking is on and a line of the JSON stream is longer than {} MiB; the stream was cut",
                    self.cap >> 20
                )
                .into())));
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => self.ended = true,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Some(Ok(f))) => {
                    // Trailers are dropped: none are asked for (TE is not
                    // forwarded).
                    if let Ok(d) = f.into_data() {
                        self.buf.extend_from_slice(&d);
                    }
                }
            }
        }
    }
    fn is_end_stream(&self) -> bool {
        self.ended && self.buf.is_empty()
    }
}

/// Counts the bytes read from and written to a stream.
pub struct CountingIo<T> {
    inner: T,
    pub read: Arc<AtomicU64>,
    pub written: Arc<AtomicU64>,
}

impl<T> CountingIo<T> {
    pub fn new(inner: T) -> Self {
        CountingIo {
            inner,
            read: Arc::default(),
            written: Arc::default(),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CountingIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CountingIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &r {
            self.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
