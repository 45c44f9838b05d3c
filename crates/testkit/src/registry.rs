//! A real registry for tests: Debian's `docker-registry` (distribution 2.8)
//! on a free loopback port, with its own config and storage in a temporary
//! directory, stopped when dropped.
//!
//! ```no_run
//! let registry = slipway_testkit::Registry::start().unwrap();
//! println!("push to {}/test/image:tag", registry.host());
//! ```

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::TestkitError;
use crate::http::{Request, send};

/// The binary, overridable for machines that install it elsewhere.
const BINARY_ENV: &str = "SLIPWAY_TEST_REGISTRY_BIN";
const DEFAULT_BINARY: &str = "docker-registry";
/// How long the registry may take to answer `/v2/` after starting.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Credentials the registry requires, when started with basic auth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl BasicAuth {
    /// The `Authorization` header value.
    pub fn header(&self) -> String {
        use base64::Engine as _;
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// A running `docker-registry`; killed and reaped on drop.
#[derive(Debug)]
pub struct Registry {
    child: Option<Child>,
    addr: SocketAddr,
    dir: TempDir,
    auth: Option<BasicAuth>,
}

impl Registry {
    /// Starts an anonymous registry.
    pub fn start() -> Result<Registry, TestkitError> {
        Registry::start_inner(None)
    }

    /// Starts a registry that requires HTTP basic auth (htpasswd, bcrypt).
    pub fn start_with_basic_auth(username: &str, password: &str) -> Result<Registry, TestkitError> {
        Registry::start_inner(Some(BasicAuth {
            username: username.into(),
            password: password.into(),
        }))
    }

    fn start_inner(auth: Option<BasicAuth>) -> Result<Registry, TestkitError> {
        let dir = tempfile::Builder::new()
            .prefix("slipway-registry-")
            .tempdir()
            .map_err(|source| TestkitError::Io {
                what: "creating the registry's temporary directory".into(),
                source,
            })?;
        let mut registry = Registry {
            child: None,
            addr: free_loopback_port()?,
            dir,
            auth,
        };
        registry.spawn()?;
        Ok(registry)
    }

    /// `127.0.0.1:<port>`: the registry part of image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The credentials it requires, if any.
    pub fn auth(&self) -> Option<&BasicAuth> {
        self.auth.as_ref()
    }

    /// Where the registry keeps its blobs and repositories.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The registry's own log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Kills the registry (SIGKILL, as a crash would) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Errors mean it has already exited; waiting reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the registry again on the same port with the same storage.
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        self.kill();
        self.spawn()
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn spawn(&mut self) -> Result<(), TestkitError> {
        let binary = std::env::var(BINARY_ENV).unwrap_or_else(|_| DEFAULT_BINARY.into());
        let config = self.write_config()?;
        let log_path = self.dir.path().join("registry.log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| TestkitError::Io {
                what: format!("opening {}", log_path.display()),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| TestkitError::Io {
            what: "duplicating the log handle".into(),
            source,
        })?;
        let child = Command::new(&binary)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    TestkitError::RegistryMissing {
                        binary: binary.clone(),
                    }
                } else {
                    TestkitError::Io {
                        what: format!("starting {binary}"),
                        source,
                    }
                }
            })?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn write_config(&self) -> Result<PathBuf, TestkitError> {
        let root = self.dir.path();
        let storage = self.storage_dir();
        let io = |what: String| move |source| TestkitError::Io { what, source };
        fs::create_dir_all(&storage).map_err(io(format!("creating {}", storage.display())))?;
        let mut config = format!(
            "version: 0.1\n\
             log: {{level: info, fields: {{service: registry}}}}\n\
             storage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\n\
             http: {{addr: {}, secret: slipway-test-only}}\n",
            yaml_str(&storage),
            self.addr
        );
        if let Some(auth) = &self.auth {
            let htpasswd = root.join("htpasswd");
            fs::write(&htpasswd, htpasswd_line(auth)?)
                .map_err(io(format!("writing {}", htpasswd.display())))?;
            config.push_str(&format!(
                "auth:\n  htpasswd: {{realm: slipway-test, path: {}}}\n",
                yaml_str(&htpasswd)
            ));
        }
        let path = root.join("config.yml");
        fs::write(&path, config).map_err(io(format!("writing {}", path.display())))?;
        Ok(path)
    }

    fn wait_ready(&mut self) -> Result<(), TestkitError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(TestkitError::RegistryFailed {
                    reason: format!("exited with {status}"),
                    log: self.log(),
                });
            }
            let probe = send(
                self.addr,
                &Request::new("GET", "/v2/"),
                Duration::from_secs(2),
            );
            // 401 means it is up and asking for credentials.
            if let Ok(r) = probe
                && (r.status == 200 || r.status == 401)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(TestkitError::RegistryFailed {
                    reason: format!(
                        "no answer on http://{}/v2/ within {READY_TIMEOUT:?}",
                        self.addr
                    ),
                    log: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nobody listens on now. The registry binds it a moment later; a
/// clash is unlikely and shows up as a failed start with the log.
pub fn free_loopback_port() -> Result<SocketAddr, TestkitError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|source| TestkitError::Io {
        what: "finding a free loopback port".into(),
        source,
    })?;
    listener.local_addr().map_err(|source| TestkitError::Io {
        what: "finding a free loopback port".into(),
        source,
    })
}

fn yaml_str(path: &Path) -> String {
    // JSON strings are valid YAML flow scalars, and escape whatever the path holds.
    serde_json::Value::String(path.display().to_string()).to_string()
}

fn htpasswd_line(auth: &BasicAuth) -> Result<String, TestkitError> {
    // A fixed salt keeps the file deterministic; cost 4 keeps it fast.
    let hash = bcrypt::hash_with_salt(&auth.password, 4, *b"slipway-testkit!")
        .map_err(|e| TestkitError::Htpasswd(e.to_string()))?;
    Ok(format!(
        "{}:{}\n",
        auth.username,
        hash.format_for_version(bcrypt::Version::TwoY)
    ))
}
