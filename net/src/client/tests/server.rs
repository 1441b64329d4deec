//! A small in-test node: std threads speaking the codec, with scripted behaviour chosen
//! by the request's table name.
//!
//! - `hold`: held until three such requests arrived, then all answered in reverse order;
//! - `slow`: answered after 300 ms (the connection's thread sleeps);
//! - `drop`: the connection is closed without an answer;
//! - `missing`: ResourceNotFound; `wrong`: a TableNames answer to anything;
//! - otherwise GetItem/PutItem answer `{"server": S name, "key": M key}`, DescribeTable
//!   answers the configured table, CreateTable echoes a table.
//!
//! The scripts apply to every request but DescribeTable (which the router sends first).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::codec::*;
use crate::model::{Item, KeyAttribute, KeySchema, KeyType, Value};

/// What the server knows and counts.
pub struct ServerState {
    pub name: String,
    pub shard: u32,
    pub shard_addrs: Mutex<Vec<String>>,
    pub table: Mutex<Option<TableDescription>>,
    pub connections: AtomicUsize,
    pub requests: AtomicUsize,
}

/// A running test server.
pub struct TestServer {
    pub addr: String,
    pub state: Arc<ServerState>,
}

impl TestServer {
    pub fn start(name: &str, shard: u32) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(ServerState {
            name: name.to_owned(),
            shard,
            shard_addrs: Mutex::new(vec![addr.clone()]),
            table: Mutex::new(None),
            connections: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
        });
        let accept_state = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                accept_state.connections.fetch_add(1, Ordering::SeqCst);
                let state = Arc::clone(&accept_state);
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        TestServer { addr, state }
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

/// A table `t` with partition key `pk` and two partitions on shards 0 and 1.
pub fn two_shard_table() -> TableDescription {
    TableDescription {
        table: "t".to_owned(),
        schema: KeySchema::partition_only(KeyAttribute::new("pk", KeyType::S)),
        status: TableStatus::Active,
        created_unix_ms: 0,
        partitions: (0..2)
            .map(|i| {
                let (hash_low, hash_high) = partition_hash_range(i, 2);
                PartitionInfo {
                    hash_low,
                    hash_high,
                    shard: i,
                }
            })
            .collect(),
    }
}

fn table_of(request: &Request) -> &str {
    match request {
        Request::PutItem(r) => &r.table,
        Request::GetItem(r) => &r.table,
        Request::DeleteItem(r) => &r.table,
        Request::UpdateItem(r) => &r.table,
        Request::Query(r) => &r.table,
        Request::Scan(r) => &r.table,
        Request::DescribeTable { table } | Request::DeleteTable { table } => table,
        Request::CreateTable(r) => &r.table,
        _ => "",
    }
}

fn answer(state: &ServerState, request: &Request) -> Response {
    let served = |key: &Item| {
        Response::Item(Some(Item::from([
            ("server".to_owned(), Value::S(state.name.clone())),
            ("key".to_owned(), Value::M(key.clone())),
        ])))
    };
    match (table_of(request), request) {
        ("missing", _) => Response::Error(ErrorResponse::new(ErrorCode::ResourceNotFound, "no")),
        ("wrong", _) => Response::TableNames {
            tables: vec![],
            last: None,
        },
        (_, Request::GetItem(r)) => served(&r.key),
        (_, Request::PutItem(r)) => served(&r.item),
        (_, Request::DescribeTable { .. }) => match state.table.lock().unwrap().clone() {
            Some(table) => Response::Table(table),
            None => Response::Error(ErrorResponse::new(ErrorCode::ResourceNotFound, "none")),
        },
        (_, Request::CreateTable(r)) => Response::Table(TableDescription {
            table: r.table.clone(),
            schema: r.schema.clone(),
            status: TableStatus::Active,
            created_unix_ms: 1,
            partitions: vec![],
        }),
        _ => Response::Item(None),
    }
}

fn serve(mut stream: TcpStream, state: &ServerState) {
    let mut decoder = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
    let mut buffer = vec![0u8; 4096];
    let mut held: Vec<(u64, Request)> = Vec::new();
    loop {
        let n = match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        decoder.feed(&buffer[..n]);
        while let Some(frame) = decoder.next_frame().unwrap() {
            let id = frame.header.request_id;
            let request = decode_request(&frame).unwrap();
            state.requests.fetch_add(1, Ordering::SeqCst);
            let mut out = Vec::new();
            let script = match request {
                Request::DescribeTable { .. } => "",
                _ => table_of(&request),
            };
            match script {
                _ if matches!(request, Request::Hello(_)) => {
                    let ok = HelloOk {
                        version: PROTOCOL_VERSION,
                        shard: state.shard,
                        shard_addrs: state.shard_addrs.lock().unwrap().clone(),
                    };
                    encode_response(id, &Response::HelloOk(ok), &mut out);
                }
                "hold" => {
                    held.push((id, request));
                    if held.len() == 3 {
                        for (id, request) in held.drain(..).rev() {
                            encode_response(id, &answer(state, &request), &mut out);
                        }
                    }
                }
                "slow" => {
                    std::thread::sleep(Duration::from_millis(300));
                    encode_response(id, &answer(state, &request), &mut out);
                }
                "drop" => return,
                _ => encode_response(id, &answer(state, &request), &mut out),
            }
            if stream.write_all(&out).is_err() {
                return;
            }
        }
    }
}

/// A GetItem of key `pk = key` in `table`.
pub fn get(table: &str, key: &str) -> Request {
    Request::GetItem(GetItem {
        table: table.to_owned(),
        key: key_item(key),
        projection: None,
        args: ExprArgs::default(),
        consistent: true,
    })
}

pub fn key_item(key: &str) -> Item {
    Item::from([("pk".to_owned(), Value::S(key.to_owned()))])
}

/// The server name in a served answer.
pub fn served_by(response: &Response) -> String {
    match response {
        Response::Item(Some(item)) => match item.get("server") {
            Some(Value::S(name)) => name.clone(),
            other => panic!("no server in {other:?}"),
        },
        other => panic!("not a served answer: {other:?}"),
    }
}

/// The key echoed in a served answer.
pub fn served_key(response: &Response) -> Item {
    match response {
        Response::Item(Some(item)) => match item.get("key") {
            Some(Value::M(key)) => key.clone(),
            other => panic!("no key in {other:?}"),
        },
        other => panic!("not a served answer: {other:?}"),
    }
}

/// A key string whose partition (of 2) is `partition`.
pub fn key_in_partition(partition: u32) -> String {
    (0..)
        .map(|i| format!("k{i}"))
        .find(|k| {
            let hash = crate::model::partition_hash(&crate::model::KeyValue::S(k.clone()));
            partition_index(hash, 2) == partition
        })
        .unwrap()
}

/// An address where nothing listens.
pub fn dead_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    addr
}
