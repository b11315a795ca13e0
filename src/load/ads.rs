//! One ADS stream on its own HTTP/2 connection, read with a [`Scanner`]
//! as its bytes arrive.
//!
//! The simulated proxies speak gRPC over `h2` directly rather than through
//! tonic, whose decoder holds each message whole and keeps its buffer at
//! the largest message's size: 1,000 streams of 10 MB CDS responses would
//! need 10 GB in the load tool. Here a stream holds what its HTTP/2 window
//! lets the server send ahead (the `window` of [`AdsStream::open`]).
//!
//! Requests are framed as gRPC messages (`PROTOCOL-HTTP2.md`: no
//! compression); the response's `grpc-status` is read from its trailers,
//! or from its headers for a trailers-only response.

use super::proxy::Protocol;
use super::scan::{Layout, Scanner, Sink};
use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;
use prost::Message;
use std::net::SocketAddr;
use tokio::task::JoinHandle;

/// The gRPC method of each ADS flavour.
fn path(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Sotw => {
            "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
        }
        Protocol::Delta => {
            "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
        }
    }
}

/// The response side: its headers until they arrive, then its body.
enum Inbound {
    Waiting(h2::client::ResponseFuture),
    Open(h2::RecvStream),
    Done,
}

/// An open ADS stream.
pub struct AdsStream {
    outbound: h2::SendStream<Bytes>,
    inbound: Inbound,
    scanner: Scanner,
    connection: JoinHandle<()>,
}

impl Drop for AdsStream {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl AdsStream {
    /// Connects to `address` and opens the `protocol`'s ADS method,
    /// receiving with HTTP/2 windows of `window` bytes per stream and per
    /// connection. Responses are read by [`AdsStream::read`]; the server
    /// may wait for a first request before it answers.
    ///
    /// # Errors
    /// The TCP connect, the HTTP/2 handshake or the request's headers failed.
    pub async fn open(
        address: SocketAddr,
        protocol: Protocol,
        window: u32,
    ) -> Result<AdsStream, String> {
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| format!("connecting to {address}: {e}"))?;
        tcp.set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let (client, connection) = h2::client::Builder::new()
            .initial_window_size(window)
            .initial_connection_window_size(window)
            .handshake::<_, Bytes>(tcp)
            .await
            .map_err(|e| format!("HTTP/2 handshake with {address}: {e}"))?;
        let connection = tokio::spawn(async move {
            // Its errors reach the stream's reads and writes.
            let _ = connection.await;
        });
        let mut client = client
            .ready()
            .await
            .map_err(|e| format!("HTTP/2 connection to {address}: {e}"))?;
        let request = http::Request::post(format!("http://{address}{}", path(protocol)))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .map_err(|e| format!("request headers: {e}"))?;
        let (response, outbound) = client
            .send_request(request, false)
            .map_err(|e| format!("opening {}: {e}", path(protocol)))?;
        let layout = match protocol {
            Protocol::Sotw => Layout::Sotw,
            Protocol::Delta => Layout::Delta,
        };
        Ok(AdsStream {
            outbound,
            inbound: Inbound::Waiting(response),
            scanner: Scanner::new(layout),
            connection,
        })
    }

    /// Sends one request message.
    ///
    /// # Errors
    /// The stream or connection is closed.
    pub fn send(&mut self, request: &impl Message) -> Result<(), String> {
        let len = request.encoded_len();
        let mut frame = BytesMut::with_capacity(5 + len);
        frame.put_u8(0);
        frame.put_u32(u32::try_from(len).map_err(|_| format!("a request of {len} bytes"))?);
        request
            .encode(&mut frame)
            .expect("the buffer has the message's length");
        self.outbound
            .send_data(frame.freeze(), false)
            .map_err(|e| format!("sending a request: {e}"))
    }

    /// Reads what arrives next (one HTTP/2 DATA frame's bytes) into
    /// `sink`; false once the server ended the stream with `grpc-status` 0.
    ///
    /// # Errors
    /// An HTTP/2 error, a response that is not gRPC, a non-zero
    /// `grpc-status` (with its message), a message the [`Scanner`] cannot
    /// read, or a stream ending inside a message.
    pub async fn read(&mut self, sink: &mut impl Sink) -> Result<bool, String> {
        loop {
            match &mut self.inbound {
                Inbound::Waiting(response) => {
                    let response = response
                        .await
                        .map_err(|e| format!("response headers: {e}"))?;
                    if response.status() != http::StatusCode::OK {
                        return Err(format!("HTTP status {}", response.status()));
                    }
                    let content_type = response.headers().get(http::header::CONTENT_TYPE);
                    if !content_type
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.starts_with("application/grpc"))
                    {
                        return Err(format!(
                            "not a gRPC response (content-type {content_type:?})"
                        ));
                    }
                    if response.headers().contains_key("grpc-status") {
                        // Trailers-only: the stream ended before any message.
                        self.inbound = Inbound::Done;
                        grpc_status(response.headers())?;
                        return Ok(false);
                    }
                    self.inbound = Inbound::Open(response.into_body());
                }
                Inbound::Open(body) => {
                    return match body.data().await {
                        Some(Ok(chunk)) => {
                            let len = chunk.len();
                            self.scanner.feed(chunk, sink)?;
                            body.flow_control()
                                .release_capacity(len)
                                .map_err(|e| format!("HTTP/2 flow control: {e}"))?;
                            Ok(true)
                        }
                        Some(Err(e)) => Err(format!("HTTP/2: {e}")),
                        None => {
                            let trailers = body
                                .trailers()
                                .await
                                .map_err(|e| format!("trailers: {e}"))?;
                            self.inbound = Inbound::Done;
                            grpc_status(&trailers.unwrap_or_default())?;
                            if !self.scanner.at_boundary() {
                                return Err("the stream ended inside a message".into());
                            }
                            Ok(false)
                        }
                    };
                }
                Inbound::Done => return Ok(false),
            }
        }
    }
}

/// `grpc-status` of `headers` as an error when it is not 0 (or missing).
fn grpc_status(headers: &HeaderMap) -> Result<(), String> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    match text("grpc-status").as_str() {
        "0" => Ok(()),
        "" => Err("the stream ended without a grpc-status".into()),
        code => Err(format!(
            "grpc-status {code}: {}",
            // Percent-encoded (`PROTOCOL-HTTP2.md`).
            percent_encoding::percent_decode_str(&text("grpc-message")).decode_utf8_lossy()
        )),
    }
}
