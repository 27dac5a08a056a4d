//! QUIC transport tuning and UDP sockets sized for bulk transfers.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::{Endpoint, EndpointConfig, MtuDiscoveryConfig, TokioRuntime, TransportConfig, VarInt};
use socket2::{Domain, Protocol, Socket, Type};

/// Per-stream receive window: one stream can have this much in flight.
const STREAM_WINDOW: u32 = 8 * 1024 * 1024;
/// Connection-wide receive window, shared by all streams.
const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;
/// UDP socket buffer asked of the kernel (capped by net.core.rmem_max /
/// net.core.wmem_max).
pub const UDP_BUFFER: usize = 8 * 1024 * 1024;
/// Streams (forwarded TCP connections) one tunnel may carry at once.
const MAX_STREAMS: u32 = 16 * 1024;
/// Largest UDP payload we accept and that MTU discovery may try, in bytes
/// (quinn's defaults: 1472 accepted, 1452 tried). Paths with a 1500-byte MTU
/// still settle at about 1452; loopback and jumbo-frame links get fewer,
/// larger packets: about 40% less CPU per byte on loopback. Kept at or
/// below 6500 because quinn batches up to 10 datagrams into one GSO send
/// and the kernel refuses a batch over 64 KiB (EMSGSIZE): at 9000 and 16384
/// bulk throughput fell below the 1452 default.
const MAX_UDP_PAYLOAD: u16 = 6000;

/// Transport settings used by both ends.
pub fn transport_config() -> TransportConfig {
    let mut t = TransportConfig::default();
    t.stream_receive_window(VarInt::from_u32(STREAM_WINDOW))
        .receive_window(VarInt::from_u32(CONNECTION_WINDOW))
        .send_window(u64::from(CONNECTION_WINDOW))
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .keep_alive_interval(Some(Duration::from_secs(10)))
        .max_idle_timeout(Some(VarInt::from_u32(30_000).into()));
    let mut mtud = MtuDiscoveryConfig::default();
    mtud.upper_bound(MAX_UDP_PAYLOAD);
    t.mtu_discovery_config(Some(mtud));
    t
}

/// Endpoint settings used by both ends: accept datagrams up to
/// [`MAX_UDP_PAYLOAD`] so the peer's MTU discovery can use them.
fn endpoint_config(mut config: EndpointConfig) -> EndpointConfig {
    config
        .max_udp_payload_size(MAX_UDP_PAYLOAD)
        .expect("MAX_UDP_PAYLOAD is within 1200..=65527");
    config
}

/// What the kernel granted for the UDP socket buffers.
#[derive(Debug, Clone, Copy)]
pub struct BufferSizes {
    pub recv: usize,
    pub send: usize,
}

impl BufferSizes {
    /// True when the kernel capped the buffers well below what was asked.
    /// Linux reports twice the value set, so half of the request is the bar.
    pub fn capped(&self) -> bool {
        self.recv < UDP_BUFFER / 2 || self.send < UDP_BUFFER / 2
    }
}

/// Binds a UDP socket with large buffers.
pub fn bind_udp(addr: SocketAddr) -> io::Result<(std::net::UdpSocket, BufferSizes)> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Accept IPv4-mapped peers too when bound to [::].
        let _ = sock.set_only_v6(false);
    }
    // Best effort: the kernel silently caps these at rmem_max / wmem_max.
    let _ = sock.set_recv_buffer_size(UDP_BUFFER);
    let _ = sock.set_send_buffer_size(UDP_BUFFER);
    sock.bind(&addr.into())?;
    sock.set_nonblocking(true)?;
    let sizes = BufferSizes {
        recv: sock.recv_buffer_size().unwrap_or(0),
        send: sock.send_buffer_size().unwrap_or(0),
    };
    Ok((sock.into(), sizes))
}

/// A QUIC endpoint on `addr`, serving when `server` is given.
pub fn endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> io::Result<(Endpoint, BufferSizes)> {
    let (sock, sizes) = bind_udp(addr)?;
    let ep = Endpoint::new_with_abstract_socket(
        endpoint_config(EndpointConfig::default()),
        server,
        Arc::new(crate::udp::Socket::new(sock)?),
        Arc::new(TokioRuntime),
    )?;
    Ok((ep, sizes))
}

/// The sysctl line that lifts the kernel's UDP buffer cap, for messages.
pub const SYSCTL_HINT: &str = "sysctl -w net.core.rmem_max=16777216 net.core.wmem_max=16777216";

/// Like [`endpoint`], with a stateless-reset secret that survives restarts:
/// a restarted agent can then tell clients at once that their old tunnel
/// is gone, instead of leaving them to wait for the idle timeout.
pub fn endpoint_with_reset_key(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
    reset_key: &[u8; 32],
) -> io::Result<(Endpoint, BufferSizes)> {
    let (sock, sizes) = bind_udp(addr)?;
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, reset_key);
    let ep = Endpoint::new_with_abstract_socket(
        endpoint_config(EndpointConfig::new(Arc::new(key))),
        server,
        Arc::new(crate::udp::Socket::new(sock)?),
        Arc::new(TokioRuntime),
    )?;
    Ok((ep, sizes))
}
