//! Servers under test as child processes: pinned to one core, logs to a file, killed when
//! dropped (so an early return or panic never leaves a server running).
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("starting {program}: {source}; build it first (`make bench` builds every binary)")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{name} exited before it was ready ({status}); its log {log}:\n{tail}")]
    Exited {
        name: String,
        status: std::process::ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("{name} was not ready after {waited:?}; its log {log}:\n{tail}")]
    NotReady {
        name: String,
        waited: Duration,
        log: PathBuf,
        tail: String,
    },
    #[error("no free loopback port: {0}")]
    NoPort(std::io::Error),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// A loopback address with a currently free port (the server binds it right after).
pub fn free_loopback_addr() -> Result<SocketAddr, ChildError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(ChildError::NoPort)
}

/// True when util-linux `taskset` is on PATH.
pub fn taskset_available() -> bool {
    std::process::Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub struct ServerProcess {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl ServerProcess {
    /// Starts `program args` (under `taskset -c <core>` when `core` is given), stdout and
    /// stderr to `<log_dir>/<name>.log`.
    pub fn start(
        name: &str,
        program: &Path,
        args: &[String],
        core: Option<usize>,
        log_dir: &Path,
    ) -> Result<Self, ChildError> {
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)
            .map_err(|e| ChildError::Io(format!("creating {}", log.display()), e))?;
        let err_file = file
            .try_clone()
            .map_err(|e| ChildError::Io(format!("opening {}", log.display()), e))?;
        let mut command = match core {
            // taskset execs the program, so the child's pid is the server's own.
            Some(core) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(core.to_string()).arg(program);
                c
            }
            None => Command::new(program),
        };
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err_file)
            .kill_on_drop(true);
        let child = command.spawn().map_err(|source| ChildError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
        Ok(Self {
            name: name.to_owned(),
            log,
            child,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Last lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Polls `probe` until it returns true; fails early if the process exits.
    pub async fn wait_ready<F, Fut>(
        &mut self,
        timeout: Duration,
        mut probe: F,
    ) -> Result<(), ChildError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(ChildError::Exited {
                    name: self.name.clone(),
                    status,
                    log: self.log.clone(),
                    tail: self.log_tail(),
                });
            }
            if probe().await {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(ChildError::NotReady {
                    name: self.name.clone(),
                    waited: timeout,
                    log: self.log.clone(),
                    tail: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        let _already_gone = self.child.start_kill();
        let _status = self.child.wait().await;
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A plain-HTTP GET on loopback answering 200 (health and readiness probes).
pub async fn http_get_ok(addr: SocketAddr, path: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).await.is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// True once something accepts TCP connections on `addr`.
pub async fn accepts_tcp(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_ok()
}
