//! The control socket: a unix stream socket, mode 0600, speaking [`super::protocol`].
//!
//! An acceptor thread takes connections; a short-lived thread per connection reads request
//! lines (bounded in size and time), hands each parsed request to the control loop through a
//! channel and writes the reply back. Malformed requests are answered right there, so nothing
//! but well-formed commands ever reaches the control loop.

use super::protocol::{parse_request, Request, Response, MAX_REQUEST};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A request waiting for the control loop, with where its reply goes.
pub type Pending = (Request, SyncSender<Response>);

/// Connections served at once; more are told to retry.
const MAX_CONNECTIONS: usize = 16;
/// Requests served on one connection before it is closed.
const MAX_REQUESTS_PER_CONNECTION: usize = 1000;
/// How long a client may take to send a request line, and we to write a reply.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the control loop may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Another process answers on the path.
    #[error("control socket {0}: another appliance is listening there")]
    InUse(PathBuf),
    /// Something that is not a socket is in the way.
    #[error("control socket {0}: the path exists and is not a socket")]
    NotASocket(PathBuf),
    /// The OS refused.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The listening control socket. Dropping it stops the acceptor and removes the file.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `path` (mode 0600, created without a window of looser permissions) and starts
    /// accepting. Requests arrive on the returned receiver.
    pub fn start(path: &Path) -> Result<(Server, Receiver<Pending>), SocketError> {
        let io = |source| SocketError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    return Err(SocketError::InUse(path.to_path_buf()));
                }
                std::fs::remove_file(path).map_err(io)?; // stale, from a crashed run
            }
            Ok(_) => return Err(SocketError::NotASocket(path.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        // Bind inside a private 0700 folder, tighten the socket to 0600, then move it into
        // place: at no moment can another user connect.
        let staging = dir.join(format!(".appliance-sock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir(&staging).map_err(io)?;
        let cleanup = |e| {
            let _ = std::fs::remove_dir_all(&staging);
            io(e)
        };
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o700))
            .map_err(cleanup)?;
        let tmp = staging.join("sock");
        let listener = UnixListener::bind(&tmp).map_err(cleanup)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(cleanup)?;
        std::fs::rename(&tmp, path).map_err(cleanup)?;
        let _ = std::fs::remove_dir_all(&staging);
        listener.set_nonblocking(true).map_err(io)?;

        let (tx, rx) = mpsc::sync_channel(64);
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("control-socket".into())
                .spawn(move || accept_loop(listener, tx, stop))
                .map_err(io)?
        };
        Ok((
            Server {
                path: path.to_path_buf(),
                stop,
                acceptor: Some(acceptor),
            },
            rx,
        ))
    }

    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: UnixListener, tx: SyncSender<Pending>, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                    let _ = write_response(
                        &mut stream,
                        &Response::error("busy: too many control connections, retry"),
                    );
                    continue;
                }
                active.fetch_add(1, Ordering::SeqCst);
                let (tx, conn_active) = (tx.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .name("control-conn".into())
                    .spawn(move || {
                        serve(stream, &tx);
                        conn_active.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::SeqCst);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Serves one connection: request lines in, replies out, until EOF, an I/O error or timeout.
fn serve(stream: UnixStream, tx: &SyncSender<Pending>) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut out = write_half;
    let mut reader = BufReader::new(stream);
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let mut line = Vec::new();
        // Read at most one byte past the limit, so an endless line cannot grow memory.
        let n = match (&mut reader)
            .take(MAX_REQUEST as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let complete = line.last() == Some(&b'\n');
        if !complete && n > MAX_REQUEST {
            let _ = write_response(
                &mut out,
                &Response::error(format!("request is over the {MAX_REQUEST}-byte limit")),
            );
            return; // the rest of that line is garbage to us
        }
        let response = match parse_request(&line) {
            Err(why) => Response::error(why),
            Ok(request) => {
                let (reply_tx, reply_rx) = mpsc::sync_channel(1);
                if tx.send((request, reply_tx)).is_err() {
                    Response::error("the appliance is shutting down")
                } else {
                    reply_rx.recv_timeout(ANSWER_TIMEOUT).unwrap_or_else(|_| {
                        Response::error("the control loop did not answer in time")
                    })
                }
            }
        };
        if write_response(&mut out, &response).is_err() || !complete {
            return;
        }
    }
}

fn write_response(out: &mut impl Write, r: &Response) -> std::io::Result<()> {
    let mut text = serde_json::to_string(r).unwrap_or_else(|_| {
        "{\"v\":1,\"ok\":false,\"error\":\"reply could not be encoded\"}".to_string()
    });
    text.push('\n');
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect (appliance not running, wrong path, permissions).
    #[error("cannot reach the appliance at {path} ({source}); is `appliance run` running with this control socket?")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The exchange broke.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The reply was not a protocol reply.
    #[error("control socket {path}: bad reply: {why}")]
    BadReply {
        /// The socket path.
        path: PathBuf,
        /// What was wrong.
        why: String,
    },
}

/// Sends one request to the appliance at `path` and returns its reply.
pub fn request(path: &Path, request: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let mut s = UnixStream::connect(path).map_err(|source| ClientError::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    let io = |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    };
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_string(request).map_err(|e| ClientError::BadReply {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(s)
        .take(64 << 20)
        .read_line(&mut reply)
        .map_err(io)?;
    serde_json::from_str(&reply).map_err(|e| ClientError::BadReply {
        path: path.to_path_buf(),
        why: format!("{e}: {reply:.200}"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::protocol::{Command, VERSION};
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nva-sock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("control.sock")
    }

    /// Answers every request with its command echoed, until the server goes.
    fn answer(rx: Receiver<Pending>) -> JoinHandle<()> {
        std::thread::spawn(move || {
            while let Ok((req, reply)) = rx.recv() {
                let _ = reply.send(Response::ok(serde_json::to_value(&req.command).unwrap()));
            }
        })
    }

    /// [`request`] of `command` at the protocol's version.
    fn ask(path: &Path, command: Command, timeout: Duration) -> Result<Response, ClientError> {
        request(
            path,
            &Request {
                v: VERSION,
                command,
            },
            timeout,
        )
    }

    fn raw(path: &Path, bytes: &[u8]) -> String {
        let mut s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(bytes);
        let mut reply = String::new();
        let _ = BufReader::new(s).read_line(&mut reply);
        reply
    }

    #[test]
    fn commands_round_trip_and_socket_is_private() {
        let path = temp_path("rt");
        let (server, rx) = Server::start(&path).unwrap();
        let worker = answer(rx);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        for command in [
            Command::Version,
            Command::Stats,
            Command::Reload,
            Command::Policy,
        ] {
            let r = ask(&path, command.clone(), Duration::from_secs(5)).unwrap();
            assert!(r.ok);
            assert_eq!(r.data.unwrap(), serde_json::to_value(&command).unwrap());
        }
        // A second server on the same path is refused while the first listens.
        assert!(matches!(Server::start(&path), Err(SocketError::InUse(_))));
        drop(server);
        assert!(!path.exists(), "socket removed on drop");
        worker.join().unwrap();
    }

    #[test]
    fn malformed_requests_get_errors_and_the_server_lives_on() {
        let path = temp_path("bad");
        let (_server, rx) = Server::start(&path).unwrap();
        let _worker = answer(rx);
        for (bytes, why) in [
            (&b"nonsense\n"[..], "not JSON"),
            (&b"{\"v\":1,\"cmd\":\"explode\"}\n"[..], "unknown command"),
            (&b"{\"v\":9,\"cmd\":\"stats\"}\n"[..], "version 9"),
        ] {
            let reply: Response = serde_json::from_str(&raw(&path, bytes)).unwrap();
            assert!(!reply.ok);
            assert!(reply.error.unwrap().contains(why));
        }
        let mut huge = vec![b'x'; MAX_REQUEST + 100];
        huge.push(b'\n');
        let reply: Response = serde_json::from_str(&raw(&path, &huge)).unwrap();
        assert!(reply.error.unwrap().contains("limit"));
        // Several requests on one connection, then a good one on a new connection.
        let two = raw(
            &path,
            b"{\"v\":1,\"cmd\":\"stats\"}\n{\"v\":1,\"cmd\":\"version\"}\n",
        );
        assert!(two.contains("\"ok\":true"));
        let r = ask(&path, Command::Stats, Duration::from_secs(5)).unwrap();
        assert!(r.ok);
    }

    #[test]
    fn stale_socket_is_replaced_and_other_files_are_not() {
        let path = temp_path("stale");
        {
            let _l = UnixListener::bind(&path).unwrap();
        } // bound then dropped: a stale socket file stays
        assert!(path.exists());
        let (server, _rx) = Server::start(&path).unwrap();
        drop(server);
        std::fs::write(&path, b"not a socket").unwrap();
        assert!(matches!(
            Server::start(&path),
            Err(SocketError::NotASocket(_))
        ));
    }

    #[test]
    fn client_reports_a_missing_appliance() {
        let path = temp_path("none");
        let err = ask(&path, Command::Stats, Duration::from_secs(1)).unwrap_err();
        assert!(
            err.to_string().contains("is `appliance run` running"),
            "{err}"
        );
    }
}
