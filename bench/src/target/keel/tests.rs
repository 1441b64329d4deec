//! The keel driver: a socket's answer bookkeeping against scripted byte streams (pure),
//! and the whole driver against a keel node run in this process (2 shards, 127.0.0.1,
//! ports of the system's choosing).

use std::io::{Cursor, ErrorKind};
use std::time::Duration;

use keel_engine::node::{run, NodeAddrs, NodeConfig};
use keel_net::client::route::partition_shard;
use keel_net::codec::{decode_request, encode_response, ErrorResponse};
use keel_net::model::{partition_hash, KeyValue};

use super::*;
use crate::run::{run_phase, Phase, Shape};
use crate::target::driver_for;
use crate::workload::{preset, OpKind};

/// A stream whose reads return `input` at most `step` bytes at a time, then `end` (an
/// error kind) or end of file; it keeps what is written.
struct Scripted {
    input: Cursor<Vec<u8>>,
    step: usize,
    end: Option<ErrorKind>,
    written: Vec<u8>,
}

impl Scripted {
    fn new(input: Vec<u8>, step: usize, end: Option<ErrorKind>) -> Scripted {
        Scripted {
            input: Cursor::new(input),
            step,
            end,
            written: Vec::new(),
        }
    }
}

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let len = buf.len().min(self.step);
        let n = self.input.read(&mut buf[..len])?;
        match (n, self.end) {
            (0, Some(kind)) => Err(std::io::Error::new(kind, "scripted")),
            (n, _) => Ok(n),
        }
    }
}

impl Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn get_request(n: u64) -> Request {
    Request::GetItem(GetItem {
        table: "usertable".to_owned(),
        key: key_item(n),
        projection: None,
        args: ExprArgs::default(),
        consistent: true,
    })
}

/// The answer to a read of record `n`.
fn found(n: u64) -> Response {
    let mut item = key_item(n);
    item.insert("field0".to_owned(), Value::S(format!("value {n}")));
    Response::Item(Some(item))
}

/// Answer frames for `(request id, response)` in the order given.
fn frames(answers: &[(u64, Response)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, response) in answers {
        encode_response(*id, response, &mut out);
    }
    out
}

/// The request in flight for read `n` of the scripted sockets: operation `n`.
fn read_of(n: u64) -> Pending {
    Pending {
        op: n,
        index: 0,
        is_read: true,
    }
}

/// A socket with `queued` reads queued and flushed, whose peer answers `input`.
fn socket(queued: u64, input: Vec<u8>, end: Option<ErrorKind>) -> Socket<Scripted> {
    let mut socket = Socket::new("scripted", 100, Scripted::new(input, 7, end));
    for n in 0..queued {
        assert_eq!(socket.queue(&get_request(n), read_of(n)), Some(n));
    }
    socket.flush().unwrap();
    socket
}

/// The next answer of `socket`, reading as needed.
fn next_answer(
    socket: &mut Socket<Scripted>,
    chunk: &mut [u8],
) -> Result<(Pending, Response), DriverError> {
    loop {
        if let Some(answer) = socket.answer()? {
            return Ok(answer);
        }
        socket.fill(chunk)?;
    }
}

/// The next answer of `socket` as an outcome, reading as needed.
fn next_outcome(socket: &mut Socket<Scripted>, chunk: &mut [u8]) -> (Pending, Outcome) {
    loop {
        if let Some(got) = socket.answer_outcome().unwrap() {
            return got;
        }
        socket.fill(chunk).unwrap();
    }
}

#[test]
fn answers_are_taken_in_the_order_they_arrive() {
    let input = frames(&[(2, found(2)), (0, found(0)), (3, found(3)), (1, found(1))]);
    let mut socket = socket(4, input, None);
    // The requests went out as frames 0..4, in order.
    let mut decoder = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
    decoder.feed(&socket.stream.written);
    for n in 0..4 {
        let frame = decoder.next_frame().unwrap().unwrap();
        assert_eq!(frame.header.request_id, n);
        assert_eq!(decode_request(&frame).unwrap(), get_request(n));
    }
    assert!(decoder.next_frame().unwrap().is_none());
    let mut chunk = vec![0u8; 64];
    for n in [2, 0, 3, 1] {
        let (pending, answer) = next_answer(&mut socket, &mut chunk).unwrap();
        assert_eq!((pending, answer), (read_of(n), found(n)));
    }
    assert!(socket.pending.is_empty());
    assert_eq!(socket.decoder.buffered_bytes(), 0);
}

#[test]
fn an_answer_to_a_request_not_in_flight_is_a_protocol_error() {
    let cases: [&[u64]; 3] = [
        &[5],    // never sent
        &[3],    // the next id, not sent yet
        &[1, 1], // answered twice
    ];
    for ids in cases {
        let answers: Vec<(u64, Response)> = ids.iter().map(|&id| (id, found(id))).collect();
        let mut socket = socket(3, frames(&answers), None);
        let mut chunk = vec![0u8; 64];
        if ids == [1, 1] {
            assert_eq!(next_answer(&mut socket, &mut chunk).unwrap().1, found(1));
        }
        let error = next_answer(&mut socket, &mut chunk).unwrap_err();
        assert_eq!(error.kind(), "protocol", "{ids:?}: {error}");
        assert!(error.to_string().contains("not in flight"), "{error}");
    }
}

#[test]
fn a_closed_socket_a_timeout_and_a_bad_frame_break_the_connection() {
    let mut chunk = vec![0u8; 64];
    let partial = frames(&[(0, found(0))]);
    let cut = partial[..partial.len() - 1].to_vec();
    let error = next_answer(&mut socket(1, cut.clone(), None), &mut chunk).unwrap_err();
    assert!(
        matches!(error, DriverError::Io { op: "read", .. }),
        "{error}"
    );
    assert_eq!(error.kind(), "connection");
    let mut stalled = socket(1, cut, Some(ErrorKind::WouldBlock));
    let error = next_answer(&mut stalled, &mut chunk).unwrap_err();
    assert!(
        matches!(
            error,
            DriverError::Timeout {
                timeout_ms: 100,
                ..
            }
        ),
        "{error}"
    );
    let mut corrupt = frames(&[(0, found(0))]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let error = next_answer(&mut socket(1, corrupt, None), &mut chunk).unwrap_err();
    assert_eq!(error.kind(), "protocol", "{error}");
}

/// Two TCP sockets on 127.0.0.1 and the peer end of each.
fn socket_pair() -> (Vec<Socket<TcpStream>>, Vec<TcpStream>) {
    let mut sockets = Vec::new();
    let mut peers = Vec::new();
    for _ in 0..2 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stream = TcpStream::connect(&addr).unwrap();
        sockets.push(Socket::new(&addr, 50, stream));
        peers.push(listener.accept().unwrap().0);
    }
    (sockets, peers)
}

#[test]
fn poll_finds_the_socket_with_an_answer_and_times_out_when_none_has() {
    let (sockets, mut peers) = socket_pair();
    let timeout = Duration::from_millis(50);
    let error = poll_readable(&sockets, &[0, 1], timeout).unwrap_err();
    assert!(
        matches!(error, DriverError::Timeout { timeout_ms: 50, .. }),
        "{error}"
    );
    peers[1].write_all(&frames(&[(0, found(0))])).unwrap();
    assert_eq!(poll_readable(&sockets, &[0, 1], timeout).unwrap(), vec![1]);
    // A socket not waited on is not looked at.
    assert!(poll_readable(&sockets, &[0], timeout).is_err());
    // A peer that closes makes its socket ready too (its read then fails).
    drop(peers.remove(0));
    assert_eq!(
        poll_readable(&sockets, &[0, 1], timeout).unwrap(),
        vec![0, 1]
    );
}

#[test]
fn a_request_over_the_frame_limit_is_not_queued() {
    let mut socket = socket(1, Vec::new(), None);
    let mut item = key_item(1);
    let huge = "x".repeat(FRAME_BODY_BYTES_MAX as usize + 1);
    item.insert("field0".to_owned(), Value::S(huge));
    let put = Request::PutItem(PutItem {
        table: "usertable".to_owned(),
        item,
        condition: None,
        args: ExprArgs::default(),
        return_values: ReturnValues::None,
    });
    assert_eq!(socket.queue(&put, read_of(1)), None);
    assert!(socket.out.is_empty());
    assert!(!socket.pending.contains_key(&1));
    assert_eq!(socket.queue(&get_request(1), read_of(1)), Some(1));
}

#[test]
fn an_answer_settles_as_its_full_decode_would_without_decoding_items() {
    let throttled = Response::Error(ErrorResponse::new(ErrorCode::Throttled, "slow down"));
    let invalid = Response::Error(ErrorResponse::new(ErrorCode::Validation, "no"));
    let names = Response::TableNames {
        tables: vec![],
        last: None,
    };
    let answers = [
        (0, found(0)),
        (1, Response::Item(None)),
        (2, throttled),
        (3, invalid),
        (4, names),
    ];
    let mut socket = socket(answers.len() as u64, frames(&answers), None);
    let mut chunk = vec![0u8; 64];
    for (id, response) in answers {
        let got = loop {
            if let Some(got) = socket.answer_outcome().unwrap() {
                break got;
            }
            socket.fill(&mut chunk).unwrap();
        };
        assert_eq!(
            got,
            (read_of(id), outcome_of(response, true)),
            "answer {id}"
        );
    }
    // A write answered with no item is done, not a miss.
    let mut write = Socket::new(
        "scripted",
        100,
        Scripted::new(frames(&[(0, Response::Item(None))]), 7, None),
    );
    let pending = Pending {
        op: 9,
        index: 0,
        is_read: false,
    };
    assert_eq!(write.queue(&get_request(0), pending), Some(0));
    assert_eq!(next_outcome(&mut write, &mut chunk), (pending, Outcome::Ok));
}

#[test]
fn outcomes_combine_as_before() {
    let throttled = Response::Error(ErrorResponse::new(ErrorCode::Throttled, "slow down"));
    let invalid = Response::Error(ErrorResponse::new(ErrorCode::Validation, "no"));
    assert_eq!(outcome_of(Response::Item(None), true), Outcome::Miss);
    assert_eq!(outcome_of(Response::Item(None), false), Outcome::Ok);
    assert_eq!(outcome_of(throttled, false), Outcome::Throttled);
    let error = Outcome::Error("server:Validation".to_owned());
    assert_eq!(outcome_of(invalid, true), error);
    let unexpected = outcome_of(
        Response::TableNames {
            tables: vec![],
            last: None,
        },
        true,
    );
    assert_eq!(
        unexpected,
        Outcome::Error("unexpected answer TableNames".to_owned())
    );
    // A read-modify-write: its read decides a miss, an error or throttle anywhere wins.
    assert_eq!(combine(Outcome::Ok, 0, Outcome::Miss), Outcome::Miss);
    assert_eq!(combine(Outcome::Miss, 1, Outcome::Ok), Outcome::Miss);
    assert_eq!(combine(Outcome::Ok, 1, Outcome::Miss), Outcome::Ok);
    assert_eq!(
        combine(Outcome::Miss, 1, Outcome::Throttled),
        Outcome::Throttled
    );
    assert_eq!(combine(error.clone(), 1, Outcome::Throttled), error);
}

/// A keel node on this process's threads; stopped (and its directory removed) on drop.
struct Node {
    addrs: NodeAddrs,
    stop: Option<flume::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut config = NodeConfig::new(dir.path());
        config.shards = 2;
        config.pin = false;
        config.cache_bytes = 8 << 20;
        config.listen = "127.0.0.1:0".parse().unwrap();
        let (stop_tx, stop_rx) = flume::bounded(1);
        let (ready_tx, ready_rx) = flume::bounded::<NodeAddrs>(1);
        let thread = std::thread::spawn(move || {
            let ready = |addrs: &NodeAddrs| ready_tx.send(addrs.clone()).unwrap();
            run(config, ready, stop_rx).unwrap();
        });
        let addrs = ready_rx.recv_timeout(Duration::from_secs(60)).unwrap();
        Node {
            addrs,
            stop: Some(stop_tx),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// Stops the node and waits until it has.
    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

fn options() -> DriverOptions {
    DriverOptions {
        request_timeout_ms: 10_000,
        table: "usertable".to_owned(),
        partitions: Some(4),
    }
}

fn spec(letter: &str, records: u64) -> WorkloadSpec {
    let (mix, distribution) = preset(letter).unwrap();
    WorkloadSpec {
        name: letter.to_owned(),
        mix,
        distribution,
        records,
        field_count: 4,
        field_bytes: 20,
        scan_length_max: 10,
        write_all_fields: false,
    }
}

#[test]
fn every_ycsb_workload_runs_against_a_node_and_items_go_to_their_shard() {
    let node = Node::start();
    let driver = driver_for(&format!("keel://{}", node.addrs.shared), &options()).unwrap();
    for letter in ["a", "b", "c", "d", "e", "f"] {
        let spec = spec(letter, 500);
        driver.prepare(&spec).unwrap();
        // Half the workloads run both connections on one thread (one poll for both).
        let shape = Shape {
            connections: 2,
            threads: if matches!(letter, "a" | "c" | "e") {
                1
            } else {
                2
            },
            depth: 8,
            rate_per_s: None,
            warmup: Duration::ZERO,
            duration: None,
            operations: Some(2000),
            time_limit: Duration::from_secs(60),
            interval: Duration::from_millis(200),
            seed: 3,
            progress: false,
        };
        let load = run_phase(driver.as_ref(), &spec, &shape, Phase::Load, 0);
        let loaded = load.recorder.overall();
        assert_eq!(
            loaded.error_count(),
            0,
            "{letter} load: {:?}",
            loaded.errors
        );
        assert_eq!(loaded.completed, 500, "workload {letter} load");
        let run = run_phase(driver.as_ref(), &spec, &shape, Phase::Run, spec.records);
        let all = run.recorder.overall();
        assert_eq!(all.error_count(), 0, "workload {letter}: {:?}", all.errors);
        assert_eq!(all.completed, 2000, "workload {letter}");
        assert_eq!(run.reconnects, 0, "workload {letter}");
        if letter == "c" {
            assert_eq!(all.misses, 0, "every loaded record is found");
        }
        if letter == "e" {
            assert!(run.recorder.stats(OpKind::Scan).unwrap().completed > 1500);
        }
    }

    // Opened on shard 0's own port, a connection sends shard 0's keys there and shard 1's
    // to shard 1's port, each read answered by its own request id.
    let shard0 = node.addrs.shards[0].to_string();
    let driver = KeelDriver::new(&shard0, &options());
    let values = Arc::new(ValuePool::new(1));
    let mut conn = KeelConnection::open(&driver, &spec("c", 500), values, 1).unwrap();
    let client = driver.client().unwrap();
    let partitions = client.describe_table("usertable").unwrap().partitions;
    let shard_of = |n: u64| {
        let hash = partition_hash(&KeyValue::S(key_name(n)));
        partition_shard(&partitions, hash).unwrap()
    };
    for n in 0..64 {
        conn.send(n, &Operation::Read { key: n }).unwrap();
    }
    assert_eq!(conn.sockets.len(), 2, "one socket per shard");
    assert_eq!(conn.sockets[1].addr, node.addrs.shards[1].to_string());
    let mut shards_seen = [0; 2];
    for n in 0..64 {
        let shard = shard_of(n);
        shards_seen[shard as usize] += 1;
        let on = conn.sockets[shard as usize]
            .pending
            .values()
            .filter(|p| p.op == n);
        assert_eq!(on.count(), 1, "record {n} of shard {shard}");
    }
    assert!(shards_seen.iter().all(|&k| k > 0), "{shards_seen:?}");
    conn.flush().unwrap();
    // Both sockets have reads in flight: the answers are waited for with poll(2).
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..64 {
        let (seq, outcome) = conn.recv().unwrap();
        assert_eq!(outcome, Outcome::Ok, "record {seq}");
        assert!(answered.insert(seq), "record {seq} answered twice");
    }
    assert_eq!(answered.len(), 64);
    assert!(conn.sockets.iter().all(|s| s.pending.is_empty()));
    assert!(conn.ops.is_empty());
    assert!(conn.recv().is_err(), "nothing in flight");
}

/// What [`fake_node`] does with item requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// Closes the connection at the first.
    Close,
    /// Stays silent from the first on, until told to stop.
    Silent,
    /// Takes three, then answers them newest first: the first a miss, the others found.
    Reverse,
}

/// A stand-in for a node, on 127.0.0.1, for one connection: it answers Hello and
/// DescribeTable (no such table, so everything takes this connection), then treats item
/// requests as `peer` says, and ends when `done` fires or the driver closes.
fn fake_node(peer: Peer) -> (String, flume::Sender<()>, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (done_tx, done_rx) = flume::bounded::<()>(1);
    let own = addr.clone();
    let thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut decoder = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
        let mut chunk = vec![0u8; 4096];
        let mut held = Vec::new();
        loop {
            while let Some(frame) = decoder.next_frame().unwrap() {
                let id = frame.header.request_id;
                let answer = match decode_request(&frame).unwrap() {
                    Request::Hello(_) => Response::HelloOk(HelloOk {
                        version: 1,
                        shard: 0,
                        shard_addrs: vec![own.clone()],
                    }),
                    Request::DescribeTable { .. } => {
                        Response::Error(ErrorResponse::new(ErrorCode::ResourceNotFound, "no"))
                    }
                    _ if peer == Peer::Close => return,
                    _ if peer == Peer::Silent => {
                        let _ = done_rx.recv();
                        return;
                    }
                    _ => {
                        held.push(id);
                        if held.len() < 3 {
                            continue;
                        }
                        let mut out = Vec::new();
                        encode_response(held[2], &found(2), &mut out);
                        encode_response(held[1], &found(1), &mut out);
                        encode_response(held[0], &Response::Item(None), &mut out);
                        stream.write_all(&out).unwrap();
                        let _ = done_rx.recv();
                        return;
                    }
                };
                let mut out = Vec::new();
                encode_response(id, &answer, &mut out);
                stream.write_all(&out).unwrap();
            }
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "the driver closed the connection");
            decoder.feed(&chunk[..n]);
        }
    });
    (addr, done_tx, thread)
}

#[test]
fn an_operation_completes_when_its_answers_are_in_whatever_the_order() {
    let spec = spec("f", 10);
    let (addr, done, peer) = fake_node(Peer::Reverse);
    let driver = KeelDriver::new(&addr, &options());
    let mut conn = driver
        .connect(&spec, Arc::new(ValuePool::new(1)), 1)
        .unwrap();
    // Operation 7 is a read-modify-write (requests 2 and 3 of the socket, after Hello
    // and DescribeTable), operation 8 a read (request 4). The peer answers 4, then 3,
    // then 2 (a miss).
    let rmw = Operation::ReadModifyWrite {
        key: 1,
        fields: Fields::One(0),
    };
    conn.send(7, &rmw).unwrap();
    conn.send(8, &Operation::Read { key: 2 }).unwrap();
    conn.flush().unwrap();
    assert_eq!(
        conn.recv().unwrap(),
        (8, Outcome::Ok),
        "the newer read first"
    );
    // The three answers came in one write of the peer, so one read: the other operation
    // is complete already. The read decides the read-modify-write's miss, though its
    // write answered first.
    assert_eq!(conn.recv_ready().unwrap(), Some((7, Outcome::Miss)));
    assert_eq!(conn.recv_ready().unwrap(), None);
    let _ = done.send(());
    peer.join().unwrap();
}

#[test]
fn a_closed_or_silent_peer_breaks_the_connection() {
    let spec = spec("c", 10);
    for close in [true, false] {
        let (addr, done, peer) = fake_node(if close { Peer::Close } else { Peer::Silent });
        let options = DriverOptions {
            request_timeout_ms: 200,
            ..options()
        };
        let driver = KeelDriver::new(&addr, &options);
        let mut conn = driver
            .connect(&spec, Arc::new(ValuePool::new(1)), 1)
            .unwrap();
        conn.send(0, &Operation::Read { key: 1 }).unwrap();
        let broken = conn.flush().and_then(|()| conn.recv()).unwrap_err();
        let (want, ok) = if close {
            ("connection", matches!(broken, DriverError::Io { .. }))
        } else {
            let timeout = matches!(
                broken,
                DriverError::Timeout {
                    timeout_ms: 200,
                    ..
                }
            );
            ("timeout", timeout)
        };
        assert!(ok, "{broken}");
        assert_eq!(broken.kind(), want, "{broken}");
        let _ = done.send(());
        peer.join().unwrap();
    }
}
