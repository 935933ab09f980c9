//! A nats-server of the test's own, with JetStream, on a free port, stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// Whether nats-server is installed; without it the tests say so and pass (except in CI).
pub(crate) fn available() -> bool {
    if Path::new(NATS_SERVER).exists() {
        return true;
    }
    assert!(std::env::var("CI").is_err(), "{NATS_SERVER} is missing; CI must install nats-server");
    eprintln!("SKIPPED: {NATS_SERVER} is not installed");
    false
}

/// A free TCP port on loopback.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub(crate) struct Nats {
    child: Option<Child>,
    pub(crate) port: u16,
    store: PathBuf,
    config: PathBuf,
}

impl Nats {
    /// Starts a server on `port` keeping JetStream's files in `dir` (messages up to 16 MiB).
    pub(crate) fn start_on(port: u16, dir: &Path) -> Self {
        let store = dir.join("jetstream");
        let config = dir.join("nats.conf");
        std::fs::write(&config, "max_payload: 16MB\n").expect("nats config");
        let mut nats = Self { child: None, port, store, config };
        nats.restart();
        nats
    }

    /// Starts it again after [`Nats::stop`] (same port, same files).
    pub(crate) fn restart(&mut self) {
        let child = Command::new(NATS_SERVER)
            .args(["-c", self.config.to_str().expect("utf-8"), "-a", "127.0.0.1", "-p", &self.port.to_string(), "-js"])
            .args(["-sd", self.store.to_str().expect("utf-8")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on {} within 10s", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it (SIGKILL: as abrupt as a crash).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
