//! HTTP/2 keepalive of the xDS server, over a real TCP connection on
//! loopback: the client side speaks raw HTTP/2 frames so that it can leave
//! the server's PING unanswered, which no HTTP/2 library would.

use super::registry::Registry;
use super::AdsService;
use crate::cache::SnapshotCache;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// HTTP/2 frame types (RFC 9113 §6).
const PING: u8 = 6;
const GOAWAY: u8 = 7;
/// The ACK flag of a PING frame.
const ACK: u8 = 1;

/// Reads frames until the server closes the connection: each frame's type
/// and flags, in order.
async fn frames_until_closed(conn: &mut tokio::net::TcpStream) -> Vec<(u8, u8)> {
    let mut frames = Vec::new();
    let mut header = [0u8; 9];
    loop {
        if conn.read_exact(&mut header).await.is_err() {
            return frames;
        }
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; len];
        if conn.read_exact(&mut payload).await.is_err() {
            return frames;
        }
        frames.push((header[3], header[4]));
    }
}

/// A client that sends its preface and settings and then never answers is
/// sent a PING once it has been silent for the interval, and its connection
/// is closed (GOAWAY, then end of stream) when the timeout passes without
/// the PING's ACK: interval + timeout = 2 s here. The 8 s limit catches
/// either default left in place (30 s interval, 10 s timeout).
#[tokio::test]
async fn a_connection_that_leaves_a_keepalive_ping_unanswered_is_closed() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = AdsService::new(
        Arc::new(SnapshotCache::new(Default::default())),
        Arc::new(Registry::default()),
    )
    .with_keepalive(Duration::from_secs(1), Duration::from_secs(1));
    let server = tokio::spawn(service.serve(listener, std::future::pending()));
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    // An empty SETTINGS frame (type 4) on stream 0.
    conn.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let started = Instant::now();
    let frames = tokio::time::timeout(Duration::from_secs(8), frames_until_closed(&mut conn))
        .await
        .expect("the connection is still open after 8 s");
    let closed_after = started.elapsed();
    server.abort();
    assert!(
        frames
            .iter()
            .any(|(t, flags)| *t == PING && flags & ACK == 0),
        "no keepalive PING before the close; frames (type, flags): {frames:?}"
    );
    assert_eq!(frames.last().map(|f| f.0), Some(GOAWAY), "{frames:?}");
    assert!(
        closed_after >= Duration::from_millis(1500),
        "closed after {closed_after:?}, before the interval and the timeout had passed"
    );
}
