//! The Redis driver: RESP over one TCP socket per connection, pipelined.
//!
//! A record is a hash (`HSET key field0 v0 ...`), as in YCSB's Redis binding. Read is
//! `HGETALL` (an empty answer is a miss); update is `HSET` of the written fields; insert
//! is `HSET` of every field. Read-modify-write sends `HGETALL` and `HSET` back to back
//! (the written value does not depend on the read one, as in YCSB) and completes when
//! both answered. Scans need an index: inserts and updates then also `ZADD` the key to
//! the sorted set [`INDEX_KEY`] with its record number as score, and a scan is one
//! `EVAL` that reads the next `count` keys from the index and `HGETALL`s each, so it is
//! one round trip like keel's. The index is kept only for workloads with scans.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};

use crate::histogram::Outcome;
use crate::prng::Prng;
use crate::target::resp::{self, Reply};
use crate::target::{Connection, Driver, DriverError, DriverOptions};
use crate::workload::{field_name, key_name, Fields, OpKind, Operation, ValuePool, WorkloadSpec};

/// The sorted set that orders keys for scans.
pub const INDEX_KEY: &str = "keel-bench:index";

const SCAN_SCRIPT: &str = "local ks = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', \
    'LIMIT', 0, ARGV[2]) local r = {} for i, k in ipairs(ks) do \
    r[i] = redis.call('HGETALL', k) end return r";

/// A Redis server at `host:port`.
#[derive(Debug, Clone)]
pub struct RedisDriver {
    addr: String,
    timeout: Duration,
}

impl RedisDriver {
    /// A driver for `addr` (`host:port`).
    pub fn new(addr: &str, options: &DriverOptions) -> RedisDriver {
        RedisDriver {
            addr: addr.to_owned(),
            timeout: Duration::from_millis(options.request_timeout_ms),
        }
    }

    fn open(&self) -> Result<TcpStream, DriverError> {
        let io = |op| {
            let addr = self.addr.clone();
            move |source| DriverError::Io { op, addr, source }
        };
        let stream = TcpStream::connect(&self.addr).map_err(io("connect"))?;
        stream.set_nodelay(true).map_err(io("set_nodelay"))?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(io("set_read_timeout"))?;
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(io("set_write_timeout"))?;
        Ok(stream)
    }
}

impl Driver for RedisDriver {
    fn describe(&self) -> String {
        format!("redis://{}", self.addr)
    }

    fn request_timeout(&self) -> Duration {
        self.timeout
    }

    fn prepare(&self, _spec: &WorkloadSpec) -> Result<(), DriverError> {
        let mut conn = RedisConnection::new(self, self.open()?, None, 0, false, false);
        let mut out = Vec::new();
        resp::encode_command(&mut out, &[b"PING"]);
        conn.stream
            .write_all(&out)
            .map_err(|source| conn.io("write", source))?;
        match conn.read_reply()? {
            Reply::Simple(_) => Ok(()),
            other => Err(DriverError::Prepare {
                target: self.describe(),
                message: format!("PING answered {other:?}"),
            }),
        }
    }

    fn connect(
        &self,
        spec: &WorkloadSpec,
        values: Arc<ValuePool>,
        seed: u64,
    ) -> Result<Box<dyn Connection>, DriverError> {
        let indexed = spec.mix.share(OpKind::Scan) > 0.0;
        let stream = self.open()?;
        let mut conn = RedisConnection::new(self, stream, Some(values), seed, indexed, true);
        conn.field_count = spec.field_count;
        conn.field_bytes = spec.field_bytes as usize;
        Ok(Box::new(conn))
    }
}

/// One Redis connection.
struct RedisConnection {
    addr: String,
    timeout_ms: u64,
    stream: TcpStream,
    values: Option<Arc<ValuePool>>,
    prng: Prng,
    indexed: bool,
    field_count: u32,
    field_bytes: usize,
    out: Vec<u8>,
    input: Vec<u8>,
    /// Each operation in flight, oldest first (Redis answers in order): its `seq` and
    /// the replies it expects.
    expected: VecDeque<(u64, u8)>,
}

impl RedisConnection {
    fn new(
        driver: &RedisDriver,
        stream: TcpStream,
        values: Option<Arc<ValuePool>>,
        seed: u64,
        indexed: bool,
        _pipelined: bool,
    ) -> RedisConnection {
        RedisConnection {
            addr: driver.addr.clone(),
            timeout_ms: driver.timeout.as_millis() as u64,
            stream,
            values,
            prng: Prng::new(seed),
            indexed,
            field_count: 1,
            field_bytes: 1,
            out: Vec::with_capacity(64 * 1024),
            input: Vec::with_capacity(64 * 1024),
            expected: VecDeque::new(),
        }
    }

    fn io(&self, op: &'static str, source: std::io::Error) -> DriverError {
        DriverError::from_socket(op, &self.addr, self.timeout_ms, source)
    }

    /// Encodes `HSET key` with the given fields' names and fresh values.
    fn hset(&mut self, key: &str, fields: Fields) {
        let mut names = Vec::new();
        match fields {
            Fields::All => names.extend((0..self.field_count).map(field_name)),
            Fields::One(i) => names.push(field_name(i)),
        }
        let mut vals = Vec::with_capacity(names.len());
        if let Some(pool) = &self.values {
            for _ in &names {
                vals.push(
                    pool.value(&mut self.prng, self.field_bytes)
                        .as_bytes()
                        .to_vec(),
                );
            }
        }
        let mut args: Vec<&[u8]> = vec![b"HSET", key.as_bytes()];
        for (name, value) in names.iter().zip(&vals) {
            args.push(name.as_bytes());
            args.push(value);
        }
        resp::encode_command(&mut self.out, &args);
    }

    fn zadd(&mut self, n: u64, key: &str) {
        let score = n.to_string();
        resp::encode_command(
            &mut self.out,
            &[
                b"ZADD",
                INDEX_KEY.as_bytes(),
                score.as_bytes(),
                key.as_bytes(),
            ],
        );
    }

    /// The next reply if it is already in the input buffer.
    fn buffered_reply(&mut self) -> Result<Option<Reply>, DriverError> {
        let decoded = resp::decode(&self.input).map_err(|e| DriverError::Protocol {
            addr: self.addr.clone(),
            message: e.to_string(),
        })?;
        Ok(decoded.map(|(reply, used)| {
            self.input.drain(..used);
            reply
        }))
    }

    /// Whether the next `n` replies are all in the input buffer already.
    fn buffered(&self, n: u8) -> Result<bool, DriverError> {
        let mut at = 0;
        for _ in 0..n {
            let rest = self.input.get(at..).unwrap_or_default();
            match resp::decode(rest).map_err(|e| DriverError::Protocol {
                addr: self.addr.clone(),
                message: e.to_string(),
            })? {
                Some((_, used)) => at += used,
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    fn read_reply(&mut self) -> Result<Reply, DriverError> {
        loop {
            if let Some(reply) = self.buffered_reply()? {
                return Ok(reply);
            }
            self.read_some()?;
        }
    }

    /// Reads once (blocking up to the read timeout) and buffers what came.
    fn read_some(&mut self) -> Result<(), DriverError> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self
            .stream
            .read(&mut chunk)
            .map_err(|source| self.io("read", source))?;
        if n == 0 {
            let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed");
            return Err(self.io("read", eof));
        }
        self.input
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(())
    }
}

/// The outcome a reply stands for.
fn outcome_of(reply: &Reply) -> Outcome {
    match reply {
        Reply::Error(message) => {
            let code = message.split_whitespace().next().unwrap_or("ERR");
            Outcome::Error(format!("server:{code}"))
        }
        Reply::Array(Some(items)) if items.is_empty() => Outcome::Miss,
        Reply::Array(None) | Reply::Bulk(None) => Outcome::Miss,
        _ => Outcome::Ok,
    }
}

impl Connection for RedisConnection {
    fn send(&mut self, seq: u64, op: &Operation) -> Result<(), DriverError> {
        let replies = match *op {
            Operation::Read { key } => {
                let key = key_name(key);
                resp::encode_command(&mut self.out, &[b"HGETALL", key.as_bytes()]);
                1
            }
            Operation::Update { key: n, fields } => {
                self.hset(&key_name(n), fields);
                1
            }
            Operation::Insert { key: n } => {
                let key = key_name(n);
                self.hset(&key, Fields::All);
                if self.indexed {
                    self.zadd(n, &key);
                    2
                } else {
                    1
                }
            }
            Operation::Scan { key, count } => {
                let start = key.to_string();
                let count = count.to_string();
                resp::encode_command(
                    &mut self.out,
                    &[
                        b"EVAL",
                        SCAN_SCRIPT.as_bytes(),
                        b"1",
                        INDEX_KEY.as_bytes(),
                        start.as_bytes(),
                        count.as_bytes(),
                    ],
                );
                1
            }
            Operation::ReadModifyWrite { key: n, fields } => {
                let key = key_name(n);
                resp::encode_command(&mut self.out, &[b"HGETALL", key.as_bytes()]);
                self.hset(&key, fields);
                2
            }
        };
        self.expected.push_back((seq, replies));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DriverError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.out);
        self.out.clear();
        result.map_err(|source| self.io("write", source))
    }

    fn poll_fds<'a>(&'a self, out: &mut Vec<PollFd<'a>>) -> Option<Instant> {
        if !self.expected.is_empty() {
            out.push(PollFd::new(&self.stream, PollFlags::IN));
        }
        None
    }

    fn read_polled(&mut self, revents: &[PollFlags]) -> Result<(), DriverError> {
        if revents.iter().any(|r| !r.is_empty()) {
            self.read_some()?;
        }
        Ok(())
    }

    fn recv_ready(&mut self) -> Result<Option<(u64, Outcome)>, DriverError> {
        match self.expected.front() {
            // One reply (all but read-modify-write and indexed inserts): decoded once.
            Some(&(seq, 1)) => match self.buffered_reply()? {
                Some(reply) => {
                    self.expected.pop_front();
                    Ok(Some((seq, outcome_of(&reply))))
                }
                None => Ok(None),
            },
            Some(&(_, replies)) if self.buffered(replies)? => self.recv().map(Some),
            _ => Ok(None),
        }
    }

    fn recv(&mut self) -> Result<(u64, Outcome), DriverError> {
        let Some((seq, replies)) = self.expected.pop_front() else {
            return Err(DriverError::Protocol {
                addr: self.addr.clone(),
                message: "recv with nothing in flight".to_owned(),
            });
        };
        let mut outcome = Outcome::Ok;
        for i in 0..replies {
            let reply = self.read_reply()?;
            let this = outcome_of(&reply);
            // The first reply of a read-modify-write decides a miss; any error wins.
            match (&outcome, this) {
                (Outcome::Error(_), _) => {}
                (_, e @ Outcome::Error(_)) => outcome = e,
                (_, Outcome::Miss) if i == 0 => outcome = Outcome::Miss,
                _ => {}
            }
        }
        Ok((seq, outcome))
    }
}
