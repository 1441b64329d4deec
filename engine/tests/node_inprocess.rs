//! A node run in this process (`keel_engine::node::run` on a thread), spoken to with raw
//! frames over TCP: the protocol as a client in another language would see it.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test harness code")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use keel_engine::node::{run, NodeAddrs, NodeConfig};
use keel_net::codec::{
    decode_response, encode_request, CreateTable, ExprArgs, FrameDecoder, GetItem, Hello, PutItem,
    Request, Response, ReturnValues, FRAME_BODY_BYTES_MAX,
};
use keel_net::{Item, KeyAttribute, KeySchema, KeyType, Value};

struct Conn {
    stream: TcpStream,
    decoder: FrameDecoder,
    next_id: u64,
}

impl Conn {
    fn open(addr: std::net::SocketAddr) -> Conn {
        Conn::open_on(addr, 2)
    }

    fn open_on(addr: std::net::SocketAddr, shards: usize) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut c = Conn {
            stream,
            decoder: FrameDecoder::new(FRAME_BODY_BYTES_MAX),
            next_id: 1,
        };
        let hello = Request::Hello(Hello {
            min_version: 1,
            max_version: 1,
            client: "node_inprocess".into(),
        });
        match c.call(hello) {
            Response::HelloOk(ok) => assert_eq!(ok.shard_addrs.len(), shards),
            other => panic!("{other:?}"),
        }
        c
    }

    /// Sends every request at once (pipelined), then collects the answers by id.
    fn call_many(&mut self, requests: Vec<Request>) -> Vec<Response> {
        let first = self.next_id;
        let mut answers: Vec<Option<Response>> = vec![None; requests.len()];
        for (id, response) in self.call_many_as_answered(requests) {
            answers[(id - first) as usize] = Some(response);
        }
        answers.into_iter().map(Option::unwrap).collect()
    }

    /// Sends every request in one write, then collects (request id, answer) in the order
    /// the answers arrive.
    fn call_many_as_answered(&mut self, requests: Vec<Request>) -> Vec<(u64, Response)> {
        let mut out = Vec::new();
        for r in &requests {
            encode_request(self.next_id, r, &mut out);
            self.next_id += 1;
        }
        self.stream.write_all(&out).unwrap();
        let mut answers = Vec::with_capacity(requests.len());
        let mut buf = vec![0u8; 65536];
        while answers.len() < requests.len() {
            while let Some(frame) = self.decoder.next_frame().unwrap() {
                answers.push((frame.header.request_id, decode_response(&frame).unwrap()));
            }
            if answers.len() == requests.len() {
                break;
            }
            let n = self.stream.read(&mut buf).unwrap();
            assert!(n > 0, "the node closed the connection");
            self.decoder.feed(&buf[..n]);
        }
        answers
    }

    fn call(&mut self, r: Request) -> Response {
        self.call_many(vec![r]).pop().unwrap()
    }
}

/// A node run on a thread of this process, on 127.0.0.1 with ports of its own.
struct Node {
    addrs: NodeAddrs,
    stop: flume::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), keel_engine::node::NodeError>>,
}

/// A test node's configuration: `shards` unpinned shards with small caches in `dir`,
/// listening on `listen`.
fn config(dir: &std::path::Path, shards: u32, listen: &str) -> NodeConfig {
    let mut config = NodeConfig::new(dir);
    config.shards = shards;
    config.pin = false;
    config.cache_bytes = 8 << 20;
    config.listen = listen.parse().unwrap();
    config
}

impl Node {
    fn start(dir: &std::path::Path, shards: u32) -> Node {
        let config = config(dir, shards, "127.0.0.1:0");
        let (stop, stop_rx) = flume::bounded(1);
        let (ready_tx, ready_rx) = flume::bounded::<NodeAddrs>(1);
        let thread = std::thread::spawn(move || {
            run(
                config,
                |addrs| {
                    ready_tx.send(addrs.clone()).unwrap();
                },
                stop_rx,
            )
        });
        let addrs = ready_rx.recv_timeout(Duration::from_secs(60)).unwrap();
        Node {
            addrs,
            stop,
            thread,
        }
    }

    /// Stops the node cleanly and checks that it stopped without an error.
    fn stop(self) {
        self.stop.send(()).unwrap();
        self.thread.join().unwrap().unwrap();
    }
}

fn item(id: &str, v: i64) -> Item {
    let mut i = Item::new();
    i.insert("id".into(), Value::S(id.into()));
    i.insert("v".into(), Value::N(v.into()));
    i
}

fn put(table: &str, id: &str, v: i64) -> Request {
    Request::PutItem(PutItem {
        table: table.into(),
        item: item(id, v),
        condition: None,
        args: ExprArgs::default(),
        return_values: ReturnValues::None,
    })
}

fn get(id: &str) -> Request {
    let mut key = Item::new();
    key.insert("id".into(), Value::S(id.into()));
    Request::GetItem(GetItem {
        table: "things".into(),
        key,
        projection: None,
        args: ExprArgs::default(),
        consistent: true,
    })
}

/// A request that waits (a PutItem, on its WAL write) must not hold up the requests behind
/// it on the same connection: a GetItem sent after it, in the same write, is answered
/// first. (A connection that carried out its requests one at a time would always answer
/// the put first.) The get reads another table, whose partition has nothing waiting for
/// the WAL, so it need not wait for the put's batch.
#[test]
fn a_waiting_request_does_not_hold_up_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 1);
    let addrs = node.addrs.clone();
    let mut c = Conn::open_on(addrs.shared, 1);
    for table in ["things", "others"] {
        let created = c.call(Request::CreateTable(CreateTable {
            table: table.into(),
            schema: KeySchema::partition_only(KeyAttribute::new("id", KeyType::S)),
            partitions: Some(1),
        }));
        assert!(matches!(created, Response::Table(_)), "{created:?}");
    }
    assert_eq!(c.call(put("things", "cached", 1)), Response::Item(None));
    for round in 0..5 {
        let first = c.next_id;
        let waits = put("others", &format!("new{round}"), round);
        let answers = c.call_many_as_answered(vec![waits, get("cached")]);
        assert_eq!(
            answers,
            vec![
                (first + 1, Response::Item(Some(item("cached", 1)))),
                (first, Response::Item(None)),
            ],
            "round {round}: the get waited for the put"
        );
    }
    node.stop();
}

#[test]
fn pipelined_requests_on_a_two_shard_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    let addrs = node.addrs.clone();
    assert_eq!(addrs.shards.len(), 2);
    let mut c = Conn::open(addrs.shared);
    let created = c.call(Request::CreateTable(CreateTable {
        table: "things".into(),
        schema: KeySchema::partition_only(KeyAttribute::new("id", KeyType::S)),
        partitions: Some(4),
    }));
    assert!(matches!(created, Response::Table(_)), "{created:?}");
    // 200 puts in flight on one connection, then 200 gets on each shard's own port.
    let puts: Vec<Request> = (0..200)
        .map(|i| put("things", &format!("k{i}"), i))
        .collect();
    for r in c.call_many(puts) {
        assert_eq!(r, Response::Item(None));
    }
    for shard in &addrs.shards {
        let mut c = Conn::open(*shard);
        let gets: Vec<Request> = (0..200).map(|i| get(&format!("k{i}"))).collect();
        for (i, r) in c.call_many(gets).into_iter().enumerate() {
            assert_eq!(r, Response::Item(Some(item(&format!("k{i}"), i as i64))));
        }
    }
    node.stop();
    // A stopped node has closed its clients' connections: a read sees the end of the
    // stream at once instead of waiting out its timeout.
    use std::io::Read;
    c.stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut byte = [0u8; 1];
    match c.stream.read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("a stopped node's connection is still open: {other:?}"),
    }
}

/// A port on 127.0.0.1 that nothing listens on now, nor on the next two (a node's shards
/// listen on port + 1 + k).
fn free_ports() -> u16 {
    loop {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        let rest: Vec<_> = (1..=2u16)
            .filter_map(|d| port.checked_add(d))
            .filter_map(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if rest.len() == 2 {
            return port;
        }
    }
}

#[test]
fn a_node_listens_only_once_every_engine_is_open() {
    let dir = tempfile::tempdir().unwrap();
    // Shard 1's engine cannot open: where its directory goes there is a file.
    std::fs::write(dir.path().join("shard-1"), b"not a directory").unwrap();
    let port = free_ports();
    let config = config(dir.path(), 2, &format!("127.0.0.1:{port}"));
    let (_stop, stop_rx) = flume::bounded(1);
    let error = run(config, |_| panic!("the node must not be ready"), stop_rx).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("shard 1"), "{message}");
    // Shard 0 opened its engine but was never told to bind, so nothing ever listened on
    // the node's address (before, shard 0 bound it as soon as its own engine was open, and
    // kept it while waiting for shard 1 in the mesh).
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the node's port was never bound");
}
