//! Reading and writing length-prefixed headers on QUIC streams.

use hoop_proto::tunnel::{self, FrameError, PREFIX_LEN};
use quinn::{RecvStream, SendStream};
use serde::{Serialize, de::DeserializeOwned};

/// Why a header could not be read from a stream.
#[derive(Debug, thiserror::Error)]
pub enum ReadFrameError {
    /// The peer closed the stream before a whole header arrived.
    #[error("the stream ended before a complete header arrived")]
    Closed,
    #[error("stream read failed: {0}")]
    Read(#[from] quinn::ReadExactError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The body parsed as JSON but not as a known message; carries the
    /// version the peer announced, if any.
    #[error("unrecognised header ({detail})")]
    Unrecognised {
        version: Option<u32>,
        detail: String,
    },
}

/// Why a header could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteFrameError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("stream write failed: {0}")]
    Write(#[from] quinn::WriteError),
}

/// Reads one header. The length is checked against the cap before the body
/// buffer is allocated.
pub async fn read<T: DeserializeOwned>(recv: &mut RecvStream) -> Result<T, ReadFrameError> {
    let mut prefix = [0u8; PREFIX_LEN];
    match recv.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(ReadFrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = tunnel::body_len(prefix)?;
    let mut body = vec![0u8; len];
    match recv.read_exact(&mut body).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(ReadFrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    tunnel::decode_body(&body).map_err(|e| ReadFrameError::Unrecognised {
        version: tunnel::probe_version(&body),
        detail: e.to_string(),
    })
}

/// Writes one header.
pub async fn write<T: Serialize>(send: &mut SendStream, msg: &T) -> Result<(), WriteFrameError> {
    let mut buf = Vec::with_capacity(256);
    tunnel::encode(msg, &mut buf)?;
    send.write_all(&buf).await.map_err(|e| match e {
        quinn::WriteError::ClosedStream => WriteFrameError::Write(quinn::WriteError::ClosedStream),
        other => WriteFrameError::Write(other),
    })?;
    Ok(())
}
