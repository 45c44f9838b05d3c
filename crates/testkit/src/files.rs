//! A plain HTTP file server on loopback: URL paths mapped to bytes that a
//! test may change while it runs (a copy of a Debian suite, then the same
//! copy tampered with), and bytes served once before a path's own (a
//! mirror caught mid-update). `GET` only; 404 for any other path.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::TestkitError;

/// URL path (`/debian/dists/...`) to the bytes served there.
pub type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// URL path to bytes served, one per `GET`, before the path's [`Files`] entry.
type Earlier = Arc<Mutex<HashMap<String, VecDeque<Vec<u8>>>>>;

/// Serves [`Files`] on 127.0.0.1 from a thread that lives as long as the test.
#[derive(Debug)]
pub struct FileServer {
    addr: SocketAddr,
    files: Files,
    earlier: Earlier,
}

impl FileServer {
    /// Starts serving `files` on a free loopback port.
    pub fn start(files: Files) -> Result<FileServer, TestkitError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| TestkitError::Io { what, source }
        };
        let listener = TcpListener::bind("127.0.0.1:0").map_err(io("binding a loopback port"))?;
        let addr = listener
            .local_addr()
            .map_err(io("reading the bound address"))?;
        let served = files.clone();
        let earlier = Earlier::default();
        let first = earlier.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (files, earlier) = (served.clone(), first.clone());
                std::thread::spawn(move || {
                    let _ = answer(stream, &files, &earlier);
                });
            }
        });
        Ok(FileServer {
            addr,
            files,
            earlier,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The files served, to change.
    pub fn files(&self) -> &Files {
        &self.files
    }

    /// Serve `bytes` for the next `GET` of `path`, before (or instead of,
    /// when it has none) its entry in [`FileServer::files`]; several calls
    /// queue in order.
    pub fn serve_first(&self, path: &str, bytes: Vec<u8>) {
        self.earlier
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(path.to_owned())
            .or_default()
            .push_back(bytes);
    }
}

fn answer(stream: TcpStream, files: &Files, earlier: &Earlier) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let mut words = request.split_whitespace();
    let method = words.next().unwrap_or("");
    let path = words.next().unwrap_or("");
    let body = (method == "GET")
        .then(|| {
            let first = earlier
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_mut(path)
                .and_then(VecDeque::pop_front);
            first.or_else(|| {
                files
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(path)
                    .cloned()
            })
        })
        .flatten();
    let mut out = stream;
    match body {
        Some(b) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                b.len()
            )?;
            out.write_all(&b)?;
        }
        None => write!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?,
    }
    out.flush()
}
