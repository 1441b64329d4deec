//! Bad input against a real node: random bytes, truncated frames, wrong checksums,
//! oversized lengths, unknown opcodes, requests before Hello, invalid items. Each gets an
//! error frame or a closed connection, and the node keeps serving its other connections.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test harness code")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{call, item, n, s, Node};
use keel_net::codec::{
    decode_response, encode_request, ErrorCode, ExprArgs, FrameDecoder, GetItem, Hello, PutItem,
    Request, Response, ReturnValues, FRAME_BODY_BYTES_MAX, FRAME_HEADER_BYTES,
};
use keel_net::{Item, Value};
use keel_tests::Prng;

/// What the node did with a connection.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Answered these frames (request id, error code if an error), then closed.
    Closed(Vec<(u64, Option<ErrorCode>)>),
    /// Answered these and kept the connection open.
    Open(Vec<(u64, Option<ErrorCode>)>),
}

fn connect(node: &Node) -> TcpStream {
    let t = TcpStream::connect(node.addr).unwrap();
    t.set_read_timeout(Some(Duration::from_millis(2000)))
        .unwrap();
    t
}

fn hello_bytes(id: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let hello = Hello {
        min_version: 1,
        max_version: 1,
        client: "bad-input-test".into(),
    };
    encode_request(id, &Request::Hello(hello), &mut out);
    out
}

/// Sends `bytes`, then reads answers until the node closes or goes quiet for 2 s.
fn exchange(node: &Node, bytes: &[u8], expect_frames: usize) -> Outcome {
    let mut t = connect(node);
    if expect_frames == 0 {
        t.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
    }
    t.write_all(bytes).unwrap();
    let mut decoder = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
    let mut answers = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        while let Some(frame) = decoder.next_frame().expect("the node sends good frames") {
            let code = match decode_response(&frame).expect("a response") {
                Response::Error(e) => Some(e.code),
                _ => None,
            };
            answers.push((frame.header.request_id, code));
        }
        if answers.len() >= expect_frames && expect_frames > 0 {
            // Give the node a moment to close, if it is going to.
            t.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
        }
        match t.read(&mut buf) {
            Ok(0) => return Outcome::Closed(answers),
            Ok(k) => decoder.feed(&buf[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Outcome::Closed(answers)
            }
            Err(_) => return Outcome::Open(answers),
        }
    }
}

fn put_frame(id: u64, item: Item) -> Vec<u8> {
    let mut out = Vec::new();
    let r = Request::PutItem(PutItem {
        table: "t_bad".into(),
        item,
        condition: None,
        args: ExprArgs::default(),
        return_values: ReturnValues::None,
    });
    encode_request(id, &r, &mut out);
    out
}

fn get_frame(id: u64, key: Item) -> Vec<u8> {
    let mut out = Vec::new();
    let r = Request::GetItem(GetItem {
        table: "t_bad".into(),
        key,
        projection: None,
        args: ExprArgs::default(),
        consistent: true,
    });
    encode_request(id, &r, &mut out);
    out
}

/// Recomputes a frame's crc32c the way the protocol defines it (header bytes 0..20, body).
fn reseal(frame: &mut [u8]) {
    let crc = crc32c::crc32c_append(crc32c::crc32c(&frame[..20]), &frame[FRAME_HEADER_BYTES..]);
    frame[20..24].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn malformed_input_gets_an_error_or_a_close_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    let healthy = node.client();
    let created = common::call(
        &healthy,
        Request::CreateTable(keel_net::codec::CreateTable {
            table: "t_bad".into(),
            schema: keel_net::KeySchema::partition_only(keel_net::KeyAttribute::new(
                "id",
                keel_net::KeyType::S,
            )),
            partitions: Some(4),
        }),
    );
    assert!(matches!(created, Response::Table(_)), "{created:?}");
    let mut writes = 0i64;
    let check_healthy = |writes: &mut i64| {
        *writes += 1;
        let i = item(&[("id", s("healthy")), ("n", n(*writes))]);
        let r = call(
            &healthy,
            Request::PutItem(PutItem {
                table: "t_bad".into(),
                item: i,
                condition: None,
                args: ExprArgs::default(),
                return_values: ReturnValues::None,
            }),
        );
        assert_eq!(r, Response::Item(None));
    };

    // A request before Hello: an error, then the connection closes.
    let o = exchange(&node, &get_frame(5, item(&[("id", s("a"))])), 1);
    assert_eq!(o, Outcome::Closed(vec![(5, Some(ErrorCode::Protocol))]));
    check_healthy(&mut writes);

    // A Hello with versions this node does not speak.
    let mut bytes = Vec::new();
    let hello = Hello {
        min_version: 7,
        max_version: 9,
        client: "future".into(),
    };
    encode_request(1, &Request::Hello(hello), &mut bytes);
    let o = exchange(&node, &bytes, 1);
    assert_eq!(
        o,
        Outcome::Closed(vec![(1, Some(ErrorCode::UnsupportedVersion))])
    );

    // A wrong checksum: a flipped body bit.
    let mut bytes = hello_bytes(1);
    let mut put = put_frame(2, item(&[("id", s("x"))]));
    let last = put.len() - 1;
    put[last] ^= 0x40;
    bytes.extend(put);
    let o = exchange(&node, &bytes, 2);
    assert_eq!(
        o,
        Outcome::Closed(vec![(1, None), (0, Some(ErrorCode::Protocol))])
    );
    check_healthy(&mut writes);

    // An oversized length is refused at the header, without waiting for a body.
    let mut bytes = hello_bytes(1);
    let mut put = put_frame(2, item(&[("id", s("x"))]));
    put[16..20].copy_from_slice(&(FRAME_BODY_BYTES_MAX + 1).to_le_bytes());
    bytes.extend(&put[..FRAME_HEADER_BYTES]);
    let o = exchange(&node, &bytes, 2);
    assert_eq!(
        o,
        Outcome::Closed(vec![(1, None), (0, Some(ErrorCode::Protocol))])
    );

    // An unknown opcode with a correct checksum.
    let mut bytes = hello_bytes(1);
    let mut put = put_frame(2, item(&[("id", s("x"))]));
    put[6] = 0x3c;
    reseal(&mut put);
    bytes.extend(put);
    let o = exchange(&node, &bytes, 2);
    assert_eq!(
        o,
        Outcome::Closed(vec![(1, None), (0, Some(ErrorCode::Protocol))])
    );
    check_healthy(&mut writes);

    // A truncated frame, then the client goes away: the node just drops the connection.
    let mut bytes = hello_bytes(1);
    let put = put_frame(2, item(&[("id", s("x"))]));
    bytes.extend(&put[..put.len() - 3]);
    {
        let mut t = connect(&node);
        t.write_all(&bytes).unwrap();
        t.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = t.read_to_end(&mut rest);
    }
    check_healthy(&mut writes);

    // A well-framed body that does not decode: a Validation error, the connection stays.
    let mut bytes = hello_bytes(1);
    let mut put = put_frame(2, item(&[("id", s("x"))]));
    put.truncate(put.len() - 2);
    let body_len = (put.len() - FRAME_HEADER_BYTES) as u32;
    put[16..20].copy_from_slice(&body_len.to_le_bytes());
    reseal(&mut put);
    bytes.extend(put);
    bytes.extend(get_frame(3, item(&[("id", s("healthy"))])));
    let o = exchange(&node, &bytes, 3);
    assert_eq!(
        o,
        Outcome::Open(vec![(1, None), (2, Some(ErrorCode::Validation)), (3, None)])
    );

    // Invalid items: an empty set, an empty key, an item over 400 KB, a missing key.
    let mut bytes = hello_bytes(1);
    let bad_items = [
        item(&[("id", s("x")), ("set", Value::Ss(Default::default()))]),
        item(&[("id", s(""))]),
        item(&[("id", s("x")), ("big", Value::B(vec![7; 401 * 1024]))]),
        item(&[("other", s("x"))]),
    ];
    for (i, bad) in bad_items.into_iter().enumerate() {
        bytes.extend(put_frame(10 + i as u64, bad));
    }
    let o = exchange(&node, &bytes, 5);
    let Outcome::Open(mut answers) = o else {
        panic!("{o:?}")
    };
    answers.sort_by_key(|a| a.0);
    let codes: Vec<_> = answers.iter().map(|a| a.1).collect();
    assert_eq!(codes[0], None);
    assert_eq!(&codes[1..], &[Some(ErrorCode::Validation); 4]);
    check_healthy(&mut writes);

    // Random bytes, with and without a Hello first: never a crash, and each connection
    // ends with a Protocol error or a close.
    let mut prng = Prng::new(11);
    for round in 0..60 {
        let len = 1 + prng.below(300) as usize;
        let mut bytes = if round % 2 == 0 {
            hello_bytes(1)
        } else {
            Vec::new()
        };
        bytes.extend((0..len).map(|_| prng.next_u64() as u8));
        match exchange(&node, &bytes, 0) {
            Outcome::Closed(answers) => {
                assert!(answers.iter().all(|(_, c)| c.is_none()
                    || *c == Some(ErrorCode::Protocol)
                    || *c == Some(ErrorCode::Validation)));
            }
            // Too few bytes for a whole header: the node waits for more.
            Outcome::Open(answers) => assert!(answers.len() <= 1, "{answers:?}"),
        }
        if round % 10 == 0 {
            check_healthy(&mut writes);
        }
    }
    check_healthy(&mut writes);
    node.stop();
}
