//! The ADS methods as an HTTP/2 service: the gRPC framing of requests and
//! responses (see gRPC's PROTOCOL-HTTP2.md) around the stream task.
//!
//! tonic's generated server would do this with its message codec, which
//! encodes each response into one buffer per stream and keeps that buffer
//! at its largest size for the stream's life (a whole CDS or EDS response,
//! megabytes, per connected proxy), and keeps its decode buffer the same
//! way. Here responses go out as chunks that share the snapshot's encoded
//! resources ([`super::wire`]), and requests are read from the received
//! frames' own buffers, nothing of which is kept once a message is decoded.

use super::wire::{Chunks, WireResponse, GRPC_PREFIX_BYTES};
use super::{AdsService, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES};
use bytes::{Bytes, BytesMut};
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use http_body::Frame;
use http_body_util::BodyExt;
use prost::{DecodeError, Message};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tonic::body::Body;
use tonic::Status;

/// The gRPC service name of ADS.
const SERVICE: &str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
/// The path of the SotW method.
const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
/// The path of the delta method.
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// `AggregatedDiscoveryService` as a tower service for tonic's router.
#[derive(Clone, Debug)]
pub struct AdsEndpoint {
    pub(super) service: AdsService,
}

impl tonic::server::NamedService for AdsEndpoint {
    const NAME: &'static str = SERVICE;
}

impl tower_service::Service<http::Request<Body>> for AdsEndpoint {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if let Some(refusal) = not_grpc(&request) {
            return std::future::ready(Ok(refusal));
        }
        let response = match request.uri().path() {
            SOTW_PATH => self.service.spawn::<super::sotw::Sotw>(request),
            DELTA_PATH => self.service.spawn::<super::delta::Delta>(request),
            path => Status::unimplemented(format!("Sextant does not serve the gRPC method {path}"))
                .into_http(),
        };
        std::future::ready(Ok(response))
    }
}

/// The HTTP answer to a request that is not a gRPC call, following gRPC's
/// PROTOCOL-HTTP2.md: 415 for a content type that is not
/// `application/grpc[+proto]`, 405 for a method other than POST.
fn not_grpc(request: &http::Request<Body>) -> Option<http::Response<Body>> {
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let grpc = content_type == "application/grpc"
        || content_type.starts_with("application/grpc+proto")
        || content_type.starts_with("application/grpc;");
    let (status, why) = if request.method() != http::Method::POST {
        (http::StatusCode::METHOD_NOT_ALLOWED, "gRPC calls are POSTs")
    } else if !grpc {
        (
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "gRPC calls have content-type application/grpc",
        )
    } else {
        return None;
    };
    let mut response = http::Response::new(Body::new(http_body_util::Full::new(Bytes::from(why))));
    *response.status_mut() = status;
    Some(response)
}

/// The response of a stream: HTTP 200 with the gRPC content type, whose
/// body is `responses` and ends with the status they end with.
pub(super) fn response(
    responses: mpsc::Receiver<Result<WireResponse, Status>>,
) -> http::Response<Body> {
    let mut response = http::Response::new(Body::new(ResponseBody {
        responses,
        current: None,
        ended: false,
    }));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        tonic::metadata::GRPC_CONTENT_TYPE,
    );
    response.headers_mut().insert(
        "grpc-accept-encoding",
        http::HeaderValue::from_static("identity"),
    );
    response
}

/// The body of a stream's response: each response as gRPC message chunks,
/// then trailers with the stream's status (`OK` when the stream task ends
/// without an error).
struct ResponseBody {
    responses: mpsc::Receiver<Result<WireResponse, Status>>,
    current: Option<Chunks>,
    ended: bool,
}

impl ResponseBody {
    fn trailers(&mut self, status: &Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.ended = true;
        let mut trailers = http::HeaderMap::new();
        if let Err(status) = status.add_header(&mut trailers) {
            return Poll::Ready(Some(Err(status)));
        }
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        loop {
            if let Some(chunk) = self.current.as_mut().and_then(Iterator::next) {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            self.current = None;
            if self.ended {
                return Poll::Ready(None);
            }
            match self.responses.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(response))) => match response.into_chunks(MAX_RESPONSE_BYTES) {
                    Ok(chunks) => self.current = Some(chunks),
                    Err(len) => {
                        tracing::error!(
                            len,
                            limit = MAX_RESPONSE_BYTES,
                            "ending an ADS stream: a response is larger than the limit"
                        );
                        return self.trailers(&Status::resource_exhausted(format!(
                            "a response of {len} bytes is over Sextant's limit of {MAX_RESPONSE_BYTES} bytes"
                        )));
                    }
                },
                Poll::Ready(Some(Err(status))) => return self.trailers(&status),
                Poll::Ready(None) => return self.trailers(&Status::ok("")),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.current.is_none()
    }
}

/// Why a stream's next request could not be read.
#[derive(Debug)]
pub(super) enum RequestError {
    /// The transport failed: the proxy reset the stream or went away.
    Transport(Status),
    /// A message Sextant refuses (compressed, too long, cut short, not a
    /// request): the stream ends with this status.
    Refused(Status),
}

/// A request message of an ADS stream, decoded from the bytes of one gRPC
/// message (a slice of the frame it arrived in, when it arrived in one).
pub(super) trait RequestMessage: Sized {
    /// Decodes `message`.
    ///
    /// # Errors
    /// Whatever prost's decoding of the protocol's message type returns.
    fn decode_message(message: Bytes) -> Result<Self, DecodeError>;
}

impl RequestMessage for DiscoveryRequest {
    fn decode_message(message: Bytes) -> Result<Self, DecodeError> {
        Self::decode(message)
    }
}

impl RequestMessage for DeltaDiscoveryRequest {
    fn decode_message(message: Bytes) -> Result<Self, DecodeError> {
        Self::decode(message)
    }
}

/// The requests of a stream, decoded from its gRPC messages.
pub(super) struct RequestStream<T> {
    body: Body,
    /// Received bytes not yet part of a decoded message: the DATA frames'
    /// own buffers, oldest first, not copied (a message within one frame
    /// is a slice of it; one spread over frames is copied once, into a
    /// buffer of its exact length, when its last byte arrives).
    frames: VecDeque<Bytes>,
    /// Their total length, bytes.
    buffered: usize,
    ended: bool,
    message: PhantomData<fn() -> T>,
}

impl<T: RequestMessage> RequestStream<T> {
    /// Reads the messages of `body`.
    pub(super) fn new(body: Body) -> Self {
        RequestStream {
            body,
            frames: VecDeque::new(),
            buffered: 0,
            ended: false,
            message: PhantomData,
        }
    }

    /// The next request, or `None` once the proxy ended its half of the
    /// stream. Cancel-safe: dropping the future loses no bytes.
    ///
    /// # Errors
    /// [`RequestError::Transport`]: the proxy reset the stream, or went away.
    /// [`RequestError::Refused`]: a message is compressed (Sextant offers
    /// no compression), longer than [`MAX_REQUEST_BYTES`], cut short by the
    /// end of the stream, or not a valid request.
    pub(super) async fn message(&mut self) -> Result<Option<T>, RequestError> {
        loop {
            if let Some(message) = self.decode_buffered().map_err(RequestError::Refused)? {
                return Ok(Some(message));
            }
            if self.ended {
                return match self.prefix() {
                    None if self.buffered == 0 => Ok(None),
                    None => Err(RequestError::Refused(Status::invalid_argument(format!(
                        "the request stream ended inside a gRPC message prefix ({} of its 5 bytes arrived)",
                        self.buffered
                    )))),
                    Some(prefix) => Err(RequestError::Refused(Status::invalid_argument(format!(
                        "the request stream ended inside a gRPC message: {} of its {} bytes arrived",
                        self.buffered - GRPC_PREFIX_BYTES,
                        u32::from_be_bytes(prefix[1..].try_into().expect("4 bytes"))
                    )))),
                };
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            self.buffered += data.len();
                            self.frames.push_back(data);
                        }
                    }
                }
                Some(Err(status)) => return Err(RequestError::Transport(status)),
                None => self.ended = true,
            }
        }
    }

    /// The first 5 buffered bytes (a message prefix), if they arrived.
    fn prefix(&self) -> Option<[u8; GRPC_PREFIX_BYTES]> {
        if self.buffered < GRPC_PREFIX_BYTES {
            return None;
        }
        let mut prefix = [0; GRPC_PREFIX_BYTES];
        let mut filled = 0;
        for frame in &self.frames {
            let n = frame.len().min(GRPC_PREFIX_BYTES - filled);
            prefix[filled..filled + n].copy_from_slice(&frame[..n]);
            filled += n;
            if filled == GRPC_PREFIX_BYTES {
                break;
            }
        }
        Some(prefix)
    }

    /// Removes the first `n` buffered bytes (at most `buffered`): a slice of
    /// the first frame if it holds them all, else one copy.
    fn take(&mut self, n: usize) -> Bytes {
        self.buffered -= n;
        let front = self.frames.front_mut().expect("n bytes are buffered");
        if front.len() >= n {
            let taken = front.split_to(n);
            if front.is_empty() {
                self.frames.pop_front();
            }
            return taken;
        }
        let mut out = BytesMut::with_capacity(n);
        while out.len() < n {
            let front = self.frames.front_mut().expect("n bytes are buffered");
            let k = front.len().min(n - out.len());
            out.extend_from_slice(&front.split_to(k));
            if front.is_empty() {
                self.frames.pop_front();
            }
        }
        out.freeze()
    }

    /// The first whole message in the buffer, if there is one.
    fn decode_buffered(&mut self) -> Result<Option<T>, Status> {
        let Some(prefix) = self.prefix() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(prefix[1..].try_into().expect("4 bytes")) as usize;
        match prefix[0] {
            0 => {}
            1 => {
                return Err(Status::unimplemented(
                    "a compressed gRPC message: Sextant accepts only uncompressed ones (grpc-accept-encoding: identity)",
                ))
            }
            flag => {
                return Err(Status::invalid_argument(format!(
                    "a gRPC message prefix whose compressed flag is {flag} (only 0 and 1 exist)"
                )))
            }
        }
        if len > MAX_REQUEST_BYTES {
            return Err(Status::resource_exhausted(format!(
                "a request of {len} bytes is over Sextant's limit of {MAX_REQUEST_BYTES} bytes"
            )));
        }
        // Nothing is reserved for the claimed length: a prefix alone costs
        // nothing, and the message is assembled once all of it is here.
        if self.buffered < GRPC_PREFIX_BYTES + len {
            return Ok(None);
        }
        let body = self
            .take(GRPC_PREFIX_BYTES + len)
            .slice(GRPC_PREFIX_BYTES..);
        let message = T::decode_message(body)
            .map_err(|e| Status::invalid_argument(format!("not a valid request: {e}")))?;
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
    use prost::Message;

    /// A request body that arrives as `frames` of bytes.
    fn body(frames: Vec<Vec<u8>>) -> Body {
        let frames = frames
            .into_iter()
            .map(|f| Ok::<_, Status>(Frame::data(Bytes::from(f))));
        Body::new(http_body_util::StreamBody::new(futures::stream::iter(
            frames,
        )))
    }

    /// `message` as a gRPC message: flag, length, bytes.
    fn framed(message: &impl Message) -> Vec<u8> {
        let bytes = message.encode_to_vec();
        let mut out = vec![0];
        out.extend((bytes.len() as u32).to_be_bytes());
        out.extend(bytes);
        out
    }

    fn request(names: usize) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment".into(),
            resource_names: (0..names)
                .map(|i| format!("outbound|80||svc-{i}.ns"))
                .collect(),
            response_nonce: names.to_string(),
            ..Default::default()
        }
    }

    async fn all(
        mut stream: RequestStream<DiscoveryRequest>,
    ) -> Result<Vec<DiscoveryRequest>, Status> {
        let mut out = Vec::new();
        loop {
            match stream.message().await {
                Ok(Some(message)) => out.push(message),
                Ok(None) => return Ok(out),
                Err(RequestError::Refused(status)) => return Err(status),
                Err(RequestError::Transport(status)) => panic!("no transport here: {status:?}"),
            }
        }
    }

    #[tokio::test]
    async fn requests_are_read_across_and_within_frames() {
        let (a, b, c) = (request(1), request(3_000), request(2));
        let mut bytes = framed(&a);
        bytes.extend(framed(&b));
        bytes.extend(framed(&c));
        // Frames cut at every awkward place: inside a prefix, inside a
        // message, and several messages in one frame.
        let cuts = [2, 7, 100, bytes.len() - 3];
        let mut frames = Vec::new();
        let mut from = 0;
        for cut in cuts {
            frames.push(bytes[from..cut].to_vec());
            from = cut;
        }
        frames.push(bytes[from..].to_vec());
        let got = all(RequestStream::new(body(frames))).await.unwrap();
        assert_eq!(got, vec![a, b, c]);
    }

    #[tokio::test]
    async fn nothing_of_a_request_is_kept_once_it_is_read() {
        // A large request over many frames, and a small one in the same
        // frame as the large one's end.
        let large = framed(&request(3_000));
        let small = framed(&request(1));
        let mut bytes = large.clone();
        bytes.extend(&small);
        let frames: Vec<Vec<u8>> = bytes.chunks(16 * 1024).map(<[u8]>::to_vec).collect();
        assert!(frames.len() > 4);
        let mut stream = RequestStream::<DiscoveryRequest>::new(body(frames));
        assert_eq!(stream.message().await.unwrap().unwrap(), request(3_000));
        assert_eq!(
            stream.buffered,
            small.len(),
            "only the next request is held"
        );
        let held: usize = stream.frames.iter().map(Bytes::len).sum();
        assert_eq!(held, small.len());
        assert_eq!(stream.message().await.unwrap().unwrap(), request(1));
        assert_eq!((stream.buffered, stream.frames.len()), (0, 0));
    }

    #[test]
    fn bytes_within_one_frame_are_a_slice_of_it_and_bytes_over_frames_one_copy() {
        let mut stream = RequestStream::<DiscoveryRequest>::new(body(vec![]));
        let first = Bytes::from(vec![1u8; 100]);
        stream
            .frames
            .extend([first.clone(), Bytes::from(vec![2u8; 50])]);
        stream.buffered = 150;
        let within = stream.take(60);
        assert_eq!(within.as_ptr(), first.as_ptr(), "not copied");
        assert_eq!(within.len(), 60);
        let over = stream.take(80);
        assert_eq!(&over[..], [[1u8; 40].as_slice(), &[2u8; 40]].concat());
        assert_eq!((stream.buffered, stream.frames.len()), (10, 1));
        assert_eq!(&stream.take(10)[..], [2u8; 10]);
        assert!(stream.frames.is_empty());
    }

    #[tokio::test]
    async fn a_compressed_message_is_refused() {
        let mut bytes = framed(&request(1));
        bytes[0] = 1;
        let err = all(RequestStream::new(body(vec![bytes])))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unimplemented);
        assert!(err.message().contains("compressed"), "{err:?}");

        let mut bytes = framed(&request(1));
        bytes[0] = 2;
        let err = all(RequestStream::new(body(vec![bytes])))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("flag is 2"), "{err:?}");
    }

    #[tokio::test]
    async fn a_request_over_the_limit_is_refused_before_it_arrives() {
        let mut prefix = vec![0];
        prefix.extend((MAX_REQUEST_BYTES as u32 + 1).to_be_bytes());
        let err = all(RequestStream::new(body(vec![prefix])))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(
            err.message().contains(&MAX_REQUEST_BYTES.to_string()),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_message_is_an_error_and_garbage_is_invalid() {
        let mut bytes = framed(&request(10));
        let len = bytes.len() - 5;
        bytes.truncate(bytes.len() - 1);
        let err = all(RequestStream::new(body(vec![bytes])))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        let said = format!("{} of its {len} bytes arrived", len - 1);
        assert!(err.message().contains(&said), "{err:?}");

        let garbage = vec![0, 0, 0, 0, 2, 0xff, 0xff];
        let err = all(RequestStream::new(body(vec![garbage])))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("not a valid request"), "{err:?}");
    }

    /// Collects a response body: the data bytes and the trailers.
    async fn collect(mut body: Body) -> (Vec<u8>, http::HeaderMap) {
        let (mut data, mut trailers) = (Vec::new(), http::HeaderMap::new());
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap();
            match frame.into_data() {
                Ok(bytes) => data.extend_from_slice(&bytes),
                Err(frame) => trailers = frame.into_trailers().unwrap(),
            }
        }
        (data, trailers)
    }

    fn small_response() -> WireResponse {
        WireResponse::sotw(
            crate::envoy::TypeUrl::Cluster,
            Default::default(),
            Default::default(),
        )
    }

    #[tokio::test]
    async fn a_response_body_carries_its_messages_then_the_status() {
        let (tx, rx) = mpsc::channel(4);
        tx.send(Ok(small_response())).await.unwrap();
        tx.send(Ok(small_response())).await.unwrap();
        drop(tx);
        let http = response(rx);
        assert_eq!(
            http.headers()[http::header::CONTENT_TYPE],
            "application/grpc"
        );
        let (data, trailers) = collect(http.into_body()).await;
        let one: Vec<u8> = small_response()
            .into_chunks(usize::MAX)
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(data, [one.clone(), one].concat());
        assert_eq!(trailers["grpc-status"], "0");

        let (tx, rx) = mpsc::channel(4);
        tx.send(Err(Status::unauthenticated("no token")))
            .await
            .unwrap();
        let (data, trailers) = collect(response(rx).into_body()).await;
        assert!(data.is_empty());
        assert_eq!(trailers["grpc-status"], "16");
        assert_eq!(trailers["grpc-message"], "no%20token");
    }
}

/// The endpoint as tonic's router calls it: HTTP requests in, HTTP
/// responses (with their trailers) out, a stream task behind each.
#[cfg(test)]
mod endpoint_tests {
    use super::*;
    use crate::cache::SnapshotCache;
    use crate::server::registry::Registry;
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
    use prost::Message;
    use std::sync::Arc;
    use tower_service::Service;

    fn endpoint() -> AdsEndpoint {
        AdsService::new(
            Arc::new(SnapshotCache::new(Default::default())),
            Arc::new(Registry::default()),
        )
        .into_endpoint()
    }

    fn call(content_type: &str, bytes: Vec<u8>) -> http::Response<Body> {
        let body = Body::new(http_body_util::Full::new(Bytes::from(bytes)));
        let request = http::Request::post(SOTW_PATH)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body)
            .unwrap();
        let mut endpoint = endpoint();
        futures::executor::block_on(endpoint.call(request)).unwrap()
    }

    /// A first request with a node, as the load tool's proxies send it.
    fn first_request() -> Vec<u8> {
        let bytes = DiscoveryRequest {
            node: Some(crate::load::proxy::node(0, "default")),
            type_url: crate::envoy::TypeUrl::Cluster.as_str().into(),
            ..Default::default()
        }
        .encode_to_vec();
        let mut out = vec![0];
        out.extend((bytes.len() as u32).to_be_bytes());
        out.extend(bytes);
        out
    }

    async fn trailers(response: http::Response<Body>) -> http::HeaderMap {
        let mut body = response.into_body();
        let mut trailers = http::HeaderMap::new();
        while let Some(frame) = body.frame().await {
            if let Ok(t) = frame.unwrap().into_trailers() {
                trailers = t;
            }
        }
        trailers
    }

    #[tokio::test]
    async fn a_refused_request_ends_the_stream_with_its_status_first_or_later() {
        let compressed = [1, 0, 0, 0, 1, 0];
        let over_limit = [0, 0xff, 0xff, 0xff, 0xff];
        let bad_flag = [7, 0, 0, 0, 0];
        for (bad, code) in [
            (&compressed[..], "12"),
            (&over_limit[..], "8"),
            (&bad_flag[..], "3"),
        ] {
            for after_a_good_one in [false, true] {
                let mut bytes = if after_a_good_one {
                    first_request()
                } else {
                    Vec::new()
                };
                bytes.extend_from_slice(bad);
                let trailers = trailers(call("application/grpc", bytes)).await;
                assert_eq!(
                    trailers["grpc-status"], code,
                    "{bad:?} (after a good request: {after_a_good_one}): {trailers:?}"
                );
                assert!(trailers.contains_key("grpc-message"), "{trailers:?}");
            }
        }
    }

    #[tokio::test]
    async fn what_is_not_a_grpc_call_gets_an_http_error() {
        let response = call("application/json", first_request());
        assert_eq!(response.status(), http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let request = http::Request::get(SOTW_PATH)
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .body(Body::empty())
            .unwrap();
        let response = endpoint().call(request).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::METHOD_NOT_ALLOWED);
        let ok = call("application/grpc+proto", first_request());
        assert_eq!(ok.status(), http::StatusCode::OK);
        assert_eq!(ok.headers()["grpc-accept-encoding"], "identity");
    }
}
