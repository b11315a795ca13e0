//! The ADS methods as an HTTP/2 service: the gRPC framing of requests and
//! responses (see gRPC's PROTOCOL-HTTP2.md) around the stream task.
//!
//! tonic's generated server would do this with its message codec, which
//! encodes each response into one buffer per stream and keeps that buffer
//! at its largest size for the stream's life (a whole CDS or EDS response,
//! megabytes, per connected proxy), and keeps its decode buffer the same
//! way. Here responses go out as chunks that share the snapshot's encoded
//! resources ([`super::wire`]); a request is read in place when it arrives
//! whole inside one DATA frame, and otherwise assembled in a buffer of the
//! stream's own that is released once the message is decoded.

use super::wire::{Chunks, WireResponse, GRPC_PREFIX_BYTES};
use super::{AdsService, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES};
use bytes::{Bytes, BytesMut};
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use http_body::Frame;
use http_body_util::BodyExt;
use prost::{DecodeError, Message};
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
///
/// A message that arrives whole inside one DATA frame is a slice of that
/// frame's buffer (no copy). The start of a message that does not is
/// copied out of its frames into a buffer of the stream's own, so that the
/// memory a stream holds is bounded by the bytes it received (about four
/// times them at most, see [`grow`]), whatever the sizes of the frames they came
/// in: a frame's buffer is a chunk of h2's receive buffer, and holding many
/// small frames would hold many whole chunks.
pub(super) struct RequestStream<T> {
    body: Body,
    /// The unread rest of the latest DATA frame; held only while it starts
    /// with a whole message.
    frame: Bytes,
    /// The received start of an unfinished message (prefix included).
    partial: BytesMut,
    ended: bool,
    message: PhantomData<fn() -> T>,
}

impl<T: RequestMessage> RequestStream<T> {
    /// Reads the messages of `body`.
    pub(super) fn new(body: Body) -> Self {
        RequestStream {
            body,
            frame: Bytes::new(),
            partial: BytesMut::new(),
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
                let received = self.partial.len();
                return match self.partial.get(..GRPC_PREFIX_BYTES) {
                    None if received == 0 => Ok(None),
                    None => Err(RequestError::Refused(Status::invalid_argument(format!(
                        "the request stream ended inside a gRPC message prefix ({received} of its 5 bytes arrived)"
                    )))),
                    Some(prefix) => Err(RequestError::Refused(Status::invalid_argument(format!(
                        "the request stream ended inside a gRPC message: {} of its {} bytes arrived",
                        received - GRPC_PREFIX_BYTES,
                        u32::from_be_bytes(prefix[1..].try_into().expect("4 bytes"))
                    )))),
                };
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        // `decode_buffered` read the previous frame to its end.
                        self.frame = data;
                    }
                }
                Some(Err(status)) => return Err(RequestError::Transport(status)),
                None => self.ended = true,
            }
        }
    }

    /// The next whole message, from the frame or from the frame and the
    /// unfinished message before it; `None` once the frame is used up (its
    /// bytes of an unfinished message copied into `partial`).
    fn decode_buffered(&mut self) -> Result<Option<T>, Status> {
        if self.partial.is_empty() {
            if let Some(prefix) = self.frame.get(..GRPC_PREFIX_BYTES) {
                let len = message_len(prefix)?;
                if self.frame.len() >= GRPC_PREFIX_BYTES + len {
                    let message = self.frame.split_to(GRPC_PREFIX_BYTES + len);
                    return decode(message.slice(GRPC_PREFIX_BYTES..)).map(Some);
                }
            }
            self.partial.extend_from_slice(&self.frame);
            self.frame.clear();
        } else {
            // Complete the prefix, then the message, from the frame.
            let missing = GRPC_PREFIX_BYTES.saturating_sub(self.partial.len());
            let take = missing.min(self.frame.len());
            self.partial.extend_from_slice(&self.frame.split_to(take));
            if self.partial.len() >= GRPC_PREFIX_BYTES {
                let total = GRPC_PREFIX_BYTES + message_len(&self.partial[..GRPC_PREFIX_BYTES])?;
                let take = (total - self.partial.len()).min(self.frame.len());
                grow(&mut self.partial, take, total);
                self.partial.extend_from_slice(&self.frame.split_to(take));
                if self.partial.len() == total {
                    let message = std::mem::take(&mut self.partial).freeze();
                    return decode(message.slice(GRPC_PREFIX_BYTES..)).map(Some);
                }
            }
        }
        // A prefix alone reserves nothing: `partial` grows as bytes arrive
        // (see `grow`).
        if self.partial.len() >= GRPC_PREFIX_BYTES {
            message_len(&self.partial[..GRPC_PREFIX_BYTES])?;
        }
        Ok(None)
    }
}

/// Makes room in `partial`, the unfinished start of a message of `total`
/// bytes (prefix included), for `more` bytes: a buffer of four times the
/// bytes held (at least what is needed, at most `total`), not the twice
/// that `BytesMut` would reserve. An EDS ACK of a few MB (SotW: every
/// subscribed name) arriving in 16 KB frames is then copied by growth
/// about a third of a time instead of once (reallocation was a sixth of
/// the server's CPU reading 100 such ACKs at 10,000 services), and a stream
/// holds at most four times the bytes it received, never the length a
/// prefix merely announces.
fn grow(partial: &mut BytesMut, more: usize, total: usize) {
    let needed = partial.len() + more;
    if needed > partial.capacity() {
        let mut larger = BytesMut::with_capacity((4 * partial.len()).clamp(needed, total));
        larger.extend_from_slice(partial);
        *partial = larger;
    }
}

/// The length a gRPC message prefix (5 bytes) announces.
///
/// # Errors
/// `UNIMPLEMENTED` for a compressed message, `INVALID_ARGUMENT` for a flag
/// other than 0 and 1, `RESOURCE_EXHAUSTED` over [`MAX_REQUEST_BYTES`].
fn message_len(prefix: &[u8]) -> Result<usize, Status> {
    let len =
        u32::from_be_bytes(prefix[1..GRPC_PREFIX_BYTES].try_into().expect("4 bytes")) as usize;
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
    Ok(len)
}

/// Decodes one request message.
fn decode<T: RequestMessage>(message: Bytes) -> Result<T, Status> {
    T::decode_message(message)
        .map_err(|e| Status::invalid_argument(format!("not a valid request: {e}")))
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

    /// A request type that is its message's bytes, to see where they are.
    struct Raw(Bytes);

    impl RequestMessage for Raw {
        fn decode_message(message: Bytes) -> Result<Self, DecodeError> {
            Ok(Raw(message))
        }
    }

    #[tokio::test]
    async fn a_message_within_one_frame_is_a_slice_of_it_and_one_over_frames_is_copied() {
        let one = framed(&request(2));
        let mut bytes = one.clone();
        bytes.extend(&one);
        let frame = Bytes::from(bytes);
        // Frame 1: a whole message and the start of the next; frame 2: its end.
        let frames = [frame.slice(..one.len() + 3), frame.slice(one.len() + 3..)];
        let body = Body::new(http_body_util::StreamBody::new(futures::stream::iter(
            frames.map(|f| Ok::<_, Status>(Frame::data(f))),
        )));
        let mut stream = RequestStream::<Raw>::new(body);
        let Raw(first) = stream.message().await.unwrap().unwrap();
        assert_eq!(
            first.as_ptr(),
            frame[GRPC_PREFIX_BYTES..].as_ptr(),
            "a slice"
        );
        let Raw(second) = stream.message().await.unwrap().unwrap();
        assert_eq!(second, frame.slice(one.len() + GRPC_PREFIX_BYTES..));
        assert_ne!(
            second.as_ptr(),
            frame[one.len() + GRPC_PREFIX_BYTES..].as_ptr()
        );
        assert!(stream.message().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_unfinished_message_holds_the_bytes_received_not_its_frames() {
        // 20,000 one-byte frames of a message that never ends, each a slice
        // of one large buffer (as h2's frames are of its receive buffer).
        let mut bytes = vec![0];
        bytes.extend(1_000_000u32.to_be_bytes());
        bytes.resize(20_000, b'x');
        let buffer = Bytes::from(bytes);
        let frames: Vec<_> = (0..buffer.len())
            .map(|i| Ok::<_, Status>(Frame::data(buffer.slice(i..i + 1))))
            .collect();
        let body = Body::new(http_body_util::StreamBody::new(futures::StreamExt::chain(
            futures::stream::iter(frames),
            futures::stream::pending(),
        )));
        let mut stream = RequestStream::<Raw>::new(body);
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(200), stream.message()).await;
        assert!(waiting.is_err(), "the message is not complete");
        assert!(buffer.is_unique(), "no frame is held");
        assert!(stream.frame.is_empty());
        assert_eq!(stream.partial.len(), 20_000);
        assert!(
            stream.partial.capacity() <= 4 * 20_000,
            "{}",
            stream.partial.capacity()
        );
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
        assert!(stream.partial.is_empty() && stream.partial.capacity() == 0);
        assert_eq!(
            stream.frame.len(),
            small.len(),
            "only the next request is held"
        );
        assert_eq!(stream.message().await.unwrap().unwrap(), request(1));
        assert!(stream.frame.is_empty() && stream.partial.is_empty());
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
