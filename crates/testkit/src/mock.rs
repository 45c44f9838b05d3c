//! An in-process registry for faults a real one cannot be made to show:
//! wrong bytes, 5xx bursts, stalls, dropped connections, bearer tokens.
//! Use it beside [`crate::Registry`], not instead of it.
//!
//! It serves the read side of the distribution API (`/v2/`, manifests,
//! blobs) from images added with [`MockRegistry::add`], one thread per
//! connection, `Connection: close`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::TestkitError;
use crate::image::{Artifact, Blob};

/// A misbehaviour, applied to requests whose path contains `path_contains`
/// (a digest, a tag, `/blobs/`, ...), for the first `times` of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub path_contains: String,
    pub times: usize,
    pub kind: FaultKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status and an error body.
    Status(u16),
    /// Serve the right length of wrong bytes.
    WrongBytes,
    /// Send the headers and this many body bytes, then nothing, keeping the
    /// connection open (until the mock is dropped).
    Stall { after: usize },
    /// Send the headers and this many body bytes, then close.
    Drop { after: usize },
}

impl Fault {
    pub fn new(path_contains: impl Into<String>, times: usize, kind: FaultKind) -> Fault {
        Fault {
            path_contains: path_contains.into(),
            times,
            kind,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// (repository, tag or digest) → root blob digest.
    names: HashMap<(String, String), String>,
    blobs: HashMap<String, Blob>,
    faults: Vec<Fault>,
    bearer_token: Option<String>,
    requests: Vec<String>,
}

/// The running mock; stops (and releases stalled connections) on drop.
#[derive(Debug)]
pub struct MockRegistry {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panicking connection thread must not take the whole mock down.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MockRegistry {
    pub fn start() -> Result<MockRegistry, TestkitError> {
        let io = |source| TestkitError::Io {
            what: "starting the mock registry".into(),
            source,
        };
        let listener = TcpListener::bind("127.0.0.1:0").map_err(io)?;
        let addr = listener.local_addr().map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || accept_loop(listener, addr, state, stop))
        };
        Ok(MockRegistry {
            addr,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `artifact` in `repository`, its root under `tag` if given and
    /// every manifest under its digest.
    pub fn add(&self, repository: &str, tag: Option<&str>, artifact: &Artifact) {
        let mut state = lock(&self.state);
        for blob in artifact.blobs() {
            state.blobs.insert(blob.digest().to_string(), blob.clone());
            state.names.insert(
                (repository.to_string(), blob.digest().to_string()),
                blob.digest().to_string(),
            );
        }
        if let Some(tag) = tag {
            state.names.insert(
                (repository.to_string(), tag.to_string()),
                artifact.root().digest().to_string(),
            );
        }
    }

    pub fn fault(&self, fault: Fault) {
        lock(&self.state).faults.push(fault);
    }

    /// From now on every `/v2/` request needs `Authorization: Bearer <token>`;
    /// 401s point at `http://<host>/token`, which hands that token out.
    pub fn require_bearer(&self, token: &str) {
        lock(&self.state).bearer_token = Some(token.to_string());
    }

    /// The requests served so far, as `METHOD /path`.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).requests.clone()
    }
}

impl Drop for MockRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
) {
    let mut workers = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let (state, stop) = (state.clone(), stop.clone());
                workers.push(std::thread::spawn(move || {
                    let _ = serve(stream, addr, &state, &stop);
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => break,
        }
    }
    for worker in workers {
        let _ = worker.join();
    }
}

struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    fault: Option<FaultKind>,
}

impl Reply {
    fn json(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            body: body.as_bytes().to_vec(),
            fault: None,
        }
    }
}

fn serve(
    stream: TcpStream,
    addr: SocketAddr,
    state: &Mutex<State>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    if let Some(len) = headers
        .get("content-length")
        .and_then(|l| l.parse::<u64>().ok())
    {
        std::io::copy(&mut (&mut reader).take(len), &mut std::io::sink())?;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let reply = route(&method, &target, &headers, addr, state);
    write_reply(stream, &method, reply, stop)
}

fn route(
    method: &str,
    target: &str,
    headers: &HashMap<String, String>,
    addr: SocketAddr,
    state: &Mutex<State>,
) -> Reply {
    let mut state = lock(state);
    state.requests.push(format!("{method} {target}"));
    let path = target.split('?').next().unwrap_or(target);
    if path == "/token" {
        return match &state.bearer_token {
            Some(token) => Reply::json(200, &format!(r#"{{"token":"{token}"}}"#)),
            None => Reply::json(404, "{}"),
        };
    }
    if let Some(token) = &state.bearer_token
        && headers.get("authorization") != Some(&format!("Bearer {token}"))
    {
        let mut reply = Reply::json(
            401,
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        );
        reply.headers.push((
            "WWW-Authenticate",
            format!(r#"Bearer realm="http://{addr}/token",service="mock-registry""#),
        ));
        return reply;
    }
    let mut fault = None;
    if let Some(f) = state
        .faults
        .iter_mut()
        .find(|f| f.times > 0 && path.contains(&f.path_contains))
    {
        f.times -= 1;
        fault = Some(f.kind.clone());
    }
    if let Some(FaultKind::Status(status)) = fault {
        return Reply::json(
            status,
            r#"{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}"#,
        );
    }
    if path == "/v2/" || path == "/v2" {
        return Reply::json(200, "{}");
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Reply::json(404, "{}");
    };
    let (kind, repository, reference) = if let Some((repo, r)) = rest.rsplit_once("/manifests/") {
        ("manifest", repo, r)
    } else if let Some((repo, r)) = rest.rsplit_once("/blobs/") {
        ("blob", repo, r)
    } else {
        return Reply::json(404, "{}");
    };
    let digest = state
        .names
        .get(&(repository.to_string(), reference.to_string()))
        .cloned()
        .or_else(|| (kind == "blob").then(|| reference.to_string()));
    let Some(blob) = digest.and_then(|d| state.blobs.get(&d)).cloned() else {
        let code = if kind == "manifest" {
            "MANIFEST_UNKNOWN"
        } else {
            "BLOB_UNKNOWN"
        };
        return Reply::json(
            404,
            &format!(r#"{{"errors":[{{"code":"{code}","message":"unknown"}}]}}"#),
        );
    };
    let content_type = if kind == "manifest" {
        blob.media_type().to_string()
    } else {
        "application/octet-stream".into()
    };
    let mut body = blob.bytes().to_vec();
    if fault == Some(FaultKind::WrongBytes) {
        for byte in &mut body {
            *byte = !*byte;
        }
    }
    Reply {
        status: 200,
        headers: vec![
            ("Content-Type", content_type),
            ("Docker-Content-Digest", blob.digest().to_string()),
        ],
        body,
        fault,
    }
}

fn write_reply(
    mut stream: TcpStream,
    method: &str,
    reply: Reply,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let reason = match reply.status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if method == "HEAD" {
        return Ok(());
    }
    match reply.fault {
        Some(FaultKind::Stall { after }) => {
            stream.write_all(&reply.body[..after.min(reply.body.len())])?;
            stream.flush()?;
            // Hold the connection open, silent, until the mock is dropped.
            let deadline = Instant::now() + Duration::from_secs(600);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        }
        Some(FaultKind::Drop { after }) => {
            stream.write_all(&reply.body[..after.min(reply.body.len())])?;
            stream.shutdown(std::net::Shutdown::Both)
        }
        _ => stream.write_all(&reply.body),
    }
}
