//! The containerd calls the backend makes, each with the namespace header
//! containerd requires on every request.

use std::path::Path;
use std::time::Duration;

use slipway_control::channel::connect_unix;
use slipway_control::containerd::services::containers::v1::{
    Container, CreateContainerRequest, DeleteContainerRequest, ListContainersRequest,
    containers_client::ContainersClient,
};
use slipway_control::containerd::services::namespaces::v1::{
    CreateNamespaceRequest, GetNamespaceRequest, Namespace, namespaces_client::NamespacesClient,
};
use slipway_control::containerd::services::tasks::v1::{
    CreateTaskRequest, DeleteTaskRequest, KillRequest, StartRequest, WaitRequest,
    tasks_client::TasksClient,
};
use slipway_control::containerd::services::version::v1::version_client::VersionClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

/// The gRPC metadata key naming the containerd namespace of a call.
pub const NAMESPACE_HEADER: &str = "containerd-namespace";

/// A failed containerd call: what was being done and containerd's status.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {}", .status.message())]
pub struct CallError {
    /// The call, e.g. `containerd create task web`.
    pub what: String,
    /// containerd's answer.
    #[source]
    pub status: Status,
}

impl CallError {
    /// containerd's status code.
    pub fn code(&self) -> Code {
        self.status.code()
    }
}

/// Why containerd could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The socket did not appear, or did not answer `Version`, in time.
    #[error("containerd did not answer on {socket} within {waited:?}: {last}")]
    Timeout {
        /// The socket.
        socket: String,
        /// How long was waited.
        waited: Duration,
        /// The last failure seen.
        last: String,
    },
    /// A call made while setting up failed.
    #[error(transparent)]
    Call(#[from] CallError),
}

/// A connection to containerd, scoped to one namespace.
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    namespace: String,
    /// containerd's version, as `Version` reported it.
    pub version: String,
}

impl Client {
    /// Wait up to `timeout` for containerd to answer `Version` on `socket`
    /// (it may still be starting), then make sure `namespace` exists.
    pub async fn connect(
        socket: &Path,
        namespace: &str,
        timeout: Duration,
    ) -> Result<Client, ConnectError> {
        let mut last = String::from("no answer yet");
        let attempts = async {
            loop {
                match Self::try_version(socket).await {
                    Ok(answer) => return answer,
                    Err(why) => last = why,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let Ok((channel, version)) = tokio::time::timeout(timeout, attempts).await else {
            return Err(ConnectError::Timeout {
                socket: socket.display().to_string(),
                waited: timeout,
                last,
            });
        };
        let client = Client {
            channel,
            namespace: namespace.to_owned(),
            version,
        };
        client.ensure_namespace().await?;
        Ok(client)
    }

    async fn try_version(socket: &Path) -> Result<(Channel, String), String> {
        let channel = connect_unix(socket).await.map_err(|e| {
            // The transport error's own text is generic; its source says why.
            let source = std::error::Error::source(&e).map(ToString::to_string);
            source.unwrap_or_else(|| e.to_string())
        })?;
        let version = VersionClient::new(channel.clone())
            .version(Request::new(()))
            .await
            .map_err(|s| s.message().to_owned())?
            .into_inner();
        Ok((channel, version.version))
    }

    /// The same connection, for calls in `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Client {
        Client {
            namespace: namespace.to_owned(),
            ..self.clone()
        }
    }

    /// The namespace of the calls.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A request carrying the namespace header.
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Ok(value) = MetadataValue::try_from(self.namespace.as_str()) {
            request.metadata_mut().insert(NAMESPACE_HEADER, value);
        }
        request
    }

    fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }

    fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }

    /// Create the namespace unless it exists.
    pub async fn ensure_namespace(&self) -> Result<(), CallError> {
        let mut namespaces = NamespacesClient::new(self.channel.clone());
        let name = self.namespace.clone();
        let what = || format!("containerd namespace {name}");
        match namespaces
            .get(Request::new(GetNamespaceRequest { name: name.clone() }))
            .await
        {
            Ok(_) => return Ok(()),
            Err(status) if status.code() == Code::NotFound => {}
            Err(status) => {
                return Err(CallError {
                    what: what(),
                    status,
                });
            }
        }
        let create = CreateNamespaceRequest {
            namespace: Some(Namespace {
                name: name.clone(),
                labels: Default::default(),
            }),
        };
        match namespaces.create(Request::new(create)).await {
            // Created by someone else meanwhile: as good.
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::AlreadyExists => Ok(()),
            Err(status) => Err(CallError {
                what: what(),
                status,
            }),
        }
    }

    /// The ids of every container in the namespace.
    pub async fn container_ids(&self) -> Result<Vec<String>, CallError> {
        let list = self
            .containers()
            .list(self.request(ListContainersRequest { filters: vec![] }))
            .await
            .map_err(|status| CallError {
                what: "containerd list containers".into(),
                status,
            })?;
        Ok(list
            .into_inner()
            .containers
            .into_iter()
            .map(|c| c.id)
            .collect())
    }

    /// Create a container.
    pub async fn create_container(&self, container: Container) -> Result<(), CallError> {
        let what = format!("containerd create container {}", container.id);
        self.containers()
            .create(self.request(CreateContainerRequest {
                container: Some(container),
            }))
            .await
            .map(drop)
            .map_err(|status| CallError { what, status })
    }

    /// Delete a container (its task must be gone). A missing one is fine.
    pub async fn delete_container(&self, id: &str) -> Result<(), CallError> {
        let request = DeleteContainerRequest { id: id.to_owned() };
        match self.containers().delete(self.request(request)).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(CallError {
                what: format!("containerd delete container {id}"),
                status,
            }),
        }
    }

    /// Create the container's task (the runtime's `create`) with its
    /// stdout and stderr on the FIFOs given; returns its pid.
    pub async fn create_task(
        &self,
        id: &str,
        stdout: &Path,
        stderr: &Path,
        options: Option<prost_types::Any>,
    ) -> Result<u32, CallError> {
        let request = CreateTaskRequest {
            container_id: id.to_owned(),
            stdout: stdout.to_string_lossy().into_owned(),
            stderr: stderr.to_string_lossy().into_owned(),
            options,
            ..Default::default()
        };
        self.tasks()
            .create(self.request(request))
            .await
            .map(|r| r.into_inner().pid)
            .map_err(|status| CallError {
                what: format!("containerd create task {id}"),
                status,
            })
    }

    /// Start a created task.
    pub async fn start_task(&self, id: &str) -> Result<(), CallError> {
        let request = StartRequest {
            container_id: id.to_owned(),
            exec_id: String::new(),
        };
        self.tasks()
            .start(self.request(request))
            .await
            .map(drop)
            .map_err(|status| CallError {
                what: format!("containerd start task {id}"),
                status,
            })
    }

    /// Signal the task's first process.
    pub async fn kill(&self, id: &str, signal: u32) -> Result<(), CallError> {
        let request = KillRequest {
            container_id: id.to_owned(),
            exec_id: String::new(),
            signal,
            all: false,
        };
        self.tasks()
            .kill(self.request(request))
            .await
            .map(drop)
            .map_err(|status| CallError {
                what: format!("containerd kill task {id}"),
                status,
            })
    }

    /// Wait for the task to end; its exit status (128 + n for signal n).
    pub async fn wait(&self, id: &str) -> Result<u32, CallError> {
        let request = WaitRequest {
            container_id: id.to_owned(),
            exec_id: String::new(),
        };
        self.tasks()
            .wait(self.request(request))
            .await
            .map(|r| r.into_inner().exit_status)
            .map_err(|status| CallError {
                what: format!("containerd wait task {id}"),
                status,
            })
    }

    /// Delete an ended task. A missing one is fine.
    pub async fn delete_task(&self, id: &str) -> Result<(), CallError> {
        let request = DeleteTaskRequest {
            container_id: id.to_owned(),
        };
        match self.tasks().delete(self.request(request)).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(CallError {
                what: format!("containerd delete task {id}"),
                status,
            }),
        }
    }

    /// Remove whatever a container `id` left: its task (killed first) and
    /// the container itself. Used for stale containers of an earlier boot
    /// and after a failed start.
    pub async fn remove(&self, id: &str) -> Result<(), CallError> {
        if self.kill(id, super::spec::SIGKILL).await.is_ok() {
            // Bounded: a task that does not die still gets its delete tried.
            let _ = tokio::time::timeout(Duration::from_secs(5), self.wait(id)).await;
        }
        self.delete_task(id).await?;
        self.delete_container(id).await
    }
}
