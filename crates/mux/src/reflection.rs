//! Aggregated gRPC server reflection (v1 and v1alpha, which share one wire
//! format): the services of every component plus the multiplexer's own.
//!
//! A lookup goes to whoever can answer it, in this order: the component
//! owning the symbol (for symbol lookups), the multiplexer's own
//! descriptors, then every component by name. A component is asked through
//! its registered descriptor set if it gave one, or else its own reflection
//! service (v1, then v1alpha).

use std::pin::Pin;
use std::sync::Arc;

use prost::Message as _;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::call::{CallError, call};
use crate::descriptors::DescriptorIndex;
use crate::proto::reflection::{v1, v1alpha};
use crate::registry::{Component, OWN_SERVICES, Registry, Table};
use v1::server_reflection_request::MessageRequest;
use v1::server_reflection_response::MessageResponse;

const V1_PATH: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const V1ALPHA_PATH: &str = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The reflection service, for both protocol versions.
#[derive(Debug, Clone)]
pub struct Reflection {
    registry: Arc<Registry>,
    own: Arc<DescriptorIndex>,
}

impl Reflection {
    pub fn new(registry: Arc<Registry>, own: Arc<DescriptorIndex>) -> Self {
        Reflection { registry, own }
    }

    /// Answers one request.
    pub async fn answer(
        &self,
        request: v1::ServerReflectionRequest,
    ) -> v1::ServerReflectionResponse {
        let table = self.registry.table();
        let answer = match request.message_request.clone() {
            None => Err(Status::invalid_argument("empty reflection request")),
            Some(MessageRequest::ListServices(_)) => Ok(self.list_services(&table)),
            Some(MessageRequest::FileByFilename(name)) => {
                self.lookup(
                    &table,
                    None,
                    &request,
                    &|i: &DescriptorIndex| i.file_with_imports(&name).map(files),
                    &format!("file {name}"),
                )
                .await
            }
            Some(MessageRequest::FileContainingSymbol(symbol)) => {
                let owner = table.owner_of_symbol(&symbol).cloned();
                self.lookup(
                    &table,
                    owner,
                    &request,
                    &|i: &DescriptorIndex| i.file_containing_symbol(&symbol).map(files),
                    &format!("symbol {symbol}"),
                )
                .await
            }
            Some(MessageRequest::FileContainingExtension(ext)) => {
                let owner = table.owner_of_symbol(&ext.containing_type).cloned();
                self.lookup(
                    &table,
                    owner,
                    &request,
                    &|i: &DescriptorIndex| {
                        i.file_containing_extension(&ext.containing_type, ext.extension_number)
                            .map(files)
                    },
                    &format!(
                        "extension {} of {}",
                        ext.extension_number, ext.containing_type
                    ),
                )
                .await
            }
            Some(MessageRequest::AllExtensionNumbersOfType(ty)) => {
                let owner = table.owner_of_symbol(&ty).cloned();
                self.lookup(
                    &table,
                    owner,
                    &request,
                    &|i: &DescriptorIndex| {
                        i.extension_numbers(&ty).map(|numbers| {
                            MessageResponse::AllExtensionNumbersResponse(
                                v1::ExtensionNumberResponse {
                                    base_type_name: ty.clone(),
                                    extension_number: numbers,
                                },
                            )
                        })
                    },
                    &format!("type {ty}"),
                )
                .await
            }
        };
        let message_response = match answer {
            Ok(r) => r,
            Err(status) => MessageResponse::ErrorResponse(v1::ErrorResponse {
                error_code: status.code() as i32,
                error_message: status.message().to_string(),
            }),
        };
        v1::ServerReflectionResponse {
            valid_host: request.host.clone(),
            original_request: Some(request),
            message_response: Some(message_response),
        }
    }

    fn list_services(&self, table: &Table) -> MessageResponse {
        let mut names = table.services();
        names.extend(OWN_SERVICES.iter().map(|s| s.to_string()));
        names.sort();
        names.dedup();
        MessageResponse::ListServicesResponse(v1::ListServiceResponse {
            service: names
                .into_iter()
                .map(|name| v1::ServiceResponse { name })
                .collect(),
        })
    }

    async fn lookup(
        &self,
        table: &Table,
        owner: Option<Arc<Component>>,
        request: &v1::ServerReflectionRequest,
        from_index: &(dyn Fn(&DescriptorIndex) -> Option<MessageResponse> + Sync),
        what: &str,
    ) -> Result<MessageResponse, Status> {
        if let Some(owner) = &owner
            && let Some(r) = ask(owner, request, from_index).await
        {
            return Ok(r);
        }
        if let Some(r) = from_index(&self.own) {
            return Ok(r);
        }
        for c in &table.components {
            if owner.as_ref().is_some_and(|o| Arc::ptr_eq(o, c)) {
                continue;
            }
            if let Some(r) = ask(c, request, from_index).await {
                return Ok(r);
            }
        }
        Err(Status::not_found(format!("{what} not found")))
    }
}

fn files(files: Vec<bytes::Bytes>) -> MessageResponse {
    MessageResponse::FileDescriptorResponse(v1::FileDescriptorResponse {
        file_descriptor_proto: files.into_iter().map(Vec::from).collect(),
    })
}

/// One component's answer, if it has one.
async fn ask(
    component: &Component,
    request: &v1::ServerReflectionRequest,
    from_index: &(dyn Fn(&DescriptorIndex) -> Option<MessageResponse> + Sync),
) -> Option<MessageResponse> {
    if let Some(index) = component.descriptors().await {
        return match index {
            Ok(index) => from_index(&index),
            Err(e) => {
                eprintln!("slipway-mux: component \"{}\": {e}", component.name());
                None
            }
        };
    }
    let sender = component.backend.sender().await.ok()?;
    let encoded = request.encode_to_vec();
    for path in [V1_PATH, V1ALPHA_PATH] {
        match call(sender.clone(), path, &encoded).await {
            Ok(bytes) => {
                let response = v1::ServerReflectionResponse::decode(bytes).ok()?;
                return match response.message_response? {
                    MessageResponse::ErrorResponse(_) => None,
                    r => Some(r),
                };
            }
            Err(CallError::Status {
                code: tonic::Code::Unimplemented,
                ..
            }) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// Converts between the two versions, whose messages are the same on the wire.
fn convert<A: prost::Message, B: prost::Message + Default>(a: &A) -> Option<B> {
    B::decode(a.encode_to_vec().as_slice()).ok()
}

fn respond<In, Out>(
    this: Reflection,
    inbound: Streaming<In>,
    to_v1: fn(&In) -> Option<v1::ServerReflectionRequest>,
    from_v1: fn(&v1::ServerReflectionResponse) -> Option<Out>,
) -> ResponseStream<Out>
where
    In: Send + 'static,
    Out: Send + 'static,
{
    let stream =
        futures_util::stream::unfold((this, inbound), move |(this, mut inbound)| async move {
            let request = match inbound.message().await {
                Ok(Some(r)) => r,
                Ok(None) => return None,
                Err(status) => return Some((Err(status), (this, inbound))),
            };
            let Some(request) = to_v1(&request) else {
                return Some((
                    Err(Status::invalid_argument("undecodable request")),
                    (this, inbound),
                ));
            };
            let answer = this.answer(request).await;
            let out = from_v1(&answer).ok_or_else(|| Status::internal("unencodable response"));
            Some((out, (this, inbound)))
        });
    Box::pin(stream)
}

#[tonic::async_trait]
impl v1::server_reflection_server::ServerReflection for Reflection {
    type ServerReflectionInfoStream = ResponseStream<v1::ServerReflectionResponse>;

    async fn server_reflection_info(
        &self,
        request: Request<Streaming<v1::ServerReflectionRequest>>,
    ) -> Result<Response<Self::ServerReflectionInfoStream>, Status> {
        Ok(Response::new(respond(
            self.clone(),
            request.into_inner(),
            |r| Some(r.clone()),
            |r| Some(r.clone()),
        )))
    }
}

#[tonic::async_trait]
impl v1alpha::server_reflection_server::ServerReflection for Reflection {
    type ServerReflectionInfoStream = ResponseStream<v1alpha::ServerReflectionResponse>;

    async fn server_reflection_info(
        &self,
        request: Request<Streaming<v1alpha::ServerReflectionRequest>>,
    ) -> Result<Response<Self::ServerReflectionInfoStream>, Status> {
        Ok(Response::new(respond(
            self.clone(),
            request.into_inner(),
            convert,
            convert,
        )))
    }
}
