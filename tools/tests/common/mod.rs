//! Starts real `keel start` processes for end-to-end tests, on 127.0.0.1 with ports of the
//! system's choosing, and stops them by their PID.
#![allow(dead_code, reason = "each test file uses a part of the harness")]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keel_net::client::{Client, ClientOptions};
use keel_net::codec::{ErrorCode, Request, Response};
use keel_net::{Item, Number, Value};

/// A running node process.
pub struct Node {
    child: Option<Child>,
    /// The shared address.
    pub addr: SocketAddr,
    /// Each shard's own address.
    pub shard_addrs: Vec<SocketAddr>,
    /// The data directory.
    pub dir: PathBuf,
}

fn parse_ready(line: &str) -> Option<(SocketAddr, Vec<SocketAddr>)> {
    let rest = line.strip_prefix("keel node ready: listening on ")?;
    let (shared, shards) = rest.split_once(" (shards: ")?;
    let shards = shards.trim_end_matches(')');
    Some((
        shared.parse().ok()?,
        shards
            .split_whitespace()
            .map(|s| s.parse().ok())
            .collect::<Option<Vec<_>>>()?,
    ))
}

impl Node {
    /// Starts a node with `shards` shards on `dir` and waits until it serves.
    pub fn start(dir: &Path, shards: u32) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args([
                "start",
                "--listen",
                "127.0.0.1:0",
                "--no-pin",
                "--cache-mib",
                "16",
            ])
            .arg("--shards")
            .arg(shards.to_string())
            .arg("--data-dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn keel start");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(ready) = parse_ready(&line) {
                    let _ = tx.send(ready);
                }
            }
        });
        let (addr, shard_addrs) = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(r) => r,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("the node did not become ready ({e}); exit: {status:?}");
            }
        };
        Node {
            child: Some(child),
            addr,
            shard_addrs,
            dir: dir.to_owned(),
        }
    }

    /// A client of this node.
    pub fn client(&self) -> Client {
        Client::connect(&self.addr.to_string(), ClientOptions::default()).expect("connect")
    }

    /// A client that sends everything to the shared port (the node forwards).
    pub fn plain_client(&self) -> Client {
        let options = ClientOptions {
            shard_aware: false,
            ..ClientOptions::default()
        };
        Client::connect(&self.addr.to_string(), options).expect("connect")
    }

    /// Stops the node with SIGTERM and checks that it exits cleanly.
    pub fn stop(mut self) {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let exit = child.wait().expect("wait");
        assert!(
            exit.success(),
            "the node exited with {exit:?} after SIGTERM"
        );
    }

    /// Kills the node with SIGKILL.
    pub fn kill(mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An item from (name, value) pairs.
pub fn item(pairs: &[(&str, Value)]) -> Item {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// A string value.
pub fn s(v: &str) -> Value {
    Value::S(v.to_owned())
}

/// A number value.
pub fn n(v: i64) -> Value {
    Value::N(Number::from(v))
}

/// Sends a request and returns the answer, failing the test on a transport error.
pub fn call(c: &Client, r: Request) -> Response {
    c.call(r).expect("transport")
}

/// The error code of an error answer.
pub fn error_code(r: &Response) -> Option<ErrorCode> {
    match r {
        Response::Error(e) => Some(e.code),
        _ => None,
    }
}
