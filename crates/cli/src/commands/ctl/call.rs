//! `slipway ctl call`: any method, described by the machine's own gRPC
//! reflection (the multiplexer answers it for every component): the JSON
//! request becomes a dynamic message of the method's input type, sent as
//! raw bytes; each response is decoded with the output type and printed as
//! a line of JSON.

use std::collections::BTreeMap;
use std::io::Read as _;

use anyhow::{Context as _, anyhow, bail};
use bytes::{Buf as _, BufMut as _, Bytes};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor};
use prost_types::FileDescriptorProto;
use slipway_mux::proto::reflection::v1::server_reflection_client::ServerReflectionClient;
use slipway_mux::proto::reflection::v1::server_reflection_request::MessageRequest;
use slipway_mux::proto::reflection::v1::server_reflection_response::MessageResponse;
use slipway_mux::proto::reflection::v1::{ServerReflectionRequest, ServerReflectionResponse};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::Channel;
use tonic::{Request, Status};

use super::GrpcError;
use crate::output::outln;

pub async fn call(
    channel: Channel,
    method: Option<&str>,
    request: Option<&str>,
    headers: &[String],
) -> anyhow::Result<()> {
    let Some(method) = method else {
        for service in list_services(channel).await? {
            outln!("{service}")?;
        }
        return Ok(());
    };
    let (service, method) = split_method(method)?;
    let json = match request {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the request from standard input")?;
            text
        }
        Some(text) => text.to_owned(),
        None => "{}".to_owned(),
    };
    let path = PathAndQuery::from_maybe_shared(format!("/{service}/{method}"))
        .map_err(|e| anyhow!("{service}/{method} is not a method name: {e}"))?;
    let described = describe(channel.clone(), &service, &method).await;
    let (messages, output) = match &described {
        Ok(descriptor) => (
            encode_requests(&descriptor.input(), &json)?,
            Some(descriptor.output()),
        ),
        // Reflection does not know it: call it anyway, with an empty
        // message, so the machine's own answer (UNIMPLEMENTED for a method
        // nobody serves) is what is shown.
        Err(_) => (vec![Bytes::new()], None),
    };
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| GrpcError(Status::unavailable(e.to_string())))?;
    let mut req = Request::new(futures_util::stream::iter(messages));
    for header in headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| anyhow!("--header {header:?}: expected NAME:VALUE"))?;
        let name = MetadataKey::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
            .map_err(|e| anyhow!("--header {header:?}: {e}"))?;
        let value: MetadataValue<_> = value
            .trim()
            .parse()
            .map_err(|e| anyhow!("--header {header:?}: {e}"))?;
        req.metadata_mut().insert(name, value);
    }
    let mut responses = grpc
        .streaming(req, path, RawCodec)
        .await
        .map_err(GrpcError)?
        .into_inner();
    while let Some(bytes) = responses.message().await.map_err(GrpcError)? {
        let Some(output) = &output else {
            let why = described.as_ref().err().map(ToString::to_string);
            bail!(
                "{service}/{method} answered, but the machine's reflection does not describe it: {}",
                why.unwrap_or_default()
            );
        };
        let message = DynamicMessage::decode(output.clone(), bytes).with_context(|| {
            format!("decoding a {} from {service}/{method}", output.full_name())
        })?;
        outln!("{}", serde_json::to_string(&message)?)?;
    }
    Ok(())
}

/// `package.Service/Method`, `/package.Service/Method` or
/// `package.Service.Method`.
fn split_method(text: &str) -> anyhow::Result<(String, String)> {
    let text = text.strip_prefix('/').unwrap_or(text);
    let split = text.split_once('/').or_else(|| text.rsplit_once('.'));
    match split {
        Some((service, method)) if !service.is_empty() && !method.is_empty() => {
            Ok((service.to_owned(), method.to_owned()))
        }
        _ => bail!("{text:?} is not a method: expected package.Service/Method"),
    }
}

/// One message per JSON value in `json` (one for a unary call).
fn encode_requests(input: &MessageDescriptor, json: &str) -> anyhow::Result<Vec<Bytes>> {
    let mut messages = Vec::new();
    for value in serde_json::Deserializer::from_str(json).into_iter::<serde_json::Value>() {
        let value = value.context("reading the request JSON")?;
        let message = DynamicMessage::deserialize(input.clone(), value)
            .with_context(|| format!("the request is not a {}", input.full_name()))?;
        messages.push(Bytes::from(message.encode_to_vec()));
    }
    if messages.is_empty() {
        bail!("the request is empty: give a JSON object, {{}} for an empty message");
    }
    Ok(messages)
}

/// One reflection request, on a stream of its own.
async fn reflect(channel: Channel, request: MessageRequest) -> anyhow::Result<MessageResponse> {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .map_err(GrpcError)?
        .into_inner();
    let answer: Option<ServerReflectionResponse> = answers.message().await.map_err(GrpcError)?;
    answer
        .and_then(|a| a.message_response)
        .ok_or_else(|| anyhow!("the machine's reflection gave no answer"))
}

async fn list_services(channel: Channel) -> anyhow::Result<Vec<String>> {
    match reflect(channel, MessageRequest::ListServices(String::new())).await? {
        MessageResponse::ListServicesResponse(list) => {
            Ok(list.service.into_iter().map(|s| s.name).collect())
        }
        MessageResponse::ErrorResponse(e) => bail!("reflection: {}", e.error_message),
        other => bail!("reflection answered ListServices with {other:?}"),
    }
}

/// The files reflection gives for one request.
async fn files(
    channel: Channel,
    request: MessageRequest,
) -> anyhow::Result<Vec<FileDescriptorProto>> {
    match reflect(channel, request).await? {
        MessageResponse::FileDescriptorResponse(files) => files
            .file_descriptor_proto
            .iter()
            .map(|bytes| {
                FileDescriptorProto::decode(bytes.as_slice())
                    .context("decoding a file descriptor from reflection")
            })
            .collect(),
        MessageResponse::ErrorResponse(e) => bail!(
            "{}: {}",
            super::codes::name(tonic::Code::from(e.error_code)),
            e.error_message
        ),
        other => bail!("reflection answered with {other:?}"),
    }
}

/// The method's descriptor: the file declaring `service` and every file it
/// imports, transitively (asked for by name when an answer left one out).
async fn describe(
    channel: Channel,
    service: &str,
    method: &str,
) -> anyhow::Result<MethodDescriptor> {
    let mut known: BTreeMap<String, FileDescriptorProto> = BTreeMap::new();
    let first = files(
        channel.clone(),
        MessageRequest::FileContainingSymbol(service.to_owned()),
    )
    .await
    .with_context(|| format!("reflection on {service}"))?;
    let mut pending = first;
    while let Some(file) = pending.pop() {
        let missing: Vec<String> = file
            .dependency
            .iter()
            .filter(|d| !known.contains_key(*d) && !pending.iter().any(|p| p.name() == d.as_str()))
            .cloned()
            .collect();
        known.insert(file.name().to_owned(), file);
        for name in missing {
            if known.contains_key(&name) {
                continue;
            }
            let more = files(
                channel.clone(),
                MessageRequest::FileByFilename(name.clone()),
            )
            .await
            .with_context(|| format!("reflection on {name}"))?;
            pending.extend(more.into_iter().filter(|f| !known.contains_key(f.name())));
        }
    }
    let mut pool = DescriptorPool::new();
    pool.add_file_descriptor_protos(known.into_values())
        .context("the machine's reflection gave inconsistent descriptors")?;
    let descriptor = pool
        .get_service_by_name(service)
        .ok_or_else(|| anyhow!("reflection does not describe {service}"))?;
    let found = descriptor.methods().find(|m| m.name() == method);
    found.ok_or_else(|| anyhow!("{service} has no method {method}"))
}

/// Messages as they are on the wire: the bytes the dynamic messages encode
/// to, and the bytes the response messages decode from.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use super::split_method;

    #[test]
    fn method_names() {
        for text in ["a.B/M", "/a.B/M", "a.B.M"] {
            let (s, m) = split_method(text).unwrap();
            assert_eq!((s.as_str(), m.as_str()), ("a.B", "M"), "{text}");
        }
        assert!(split_method("nomethod").is_err());
        assert!(split_method("a.B/").is_err());
    }
}
