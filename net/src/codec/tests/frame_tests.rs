//! The frame header and the incremental decoder: layout, chunking, corruption,
//! truncation and limits.

use proptest::prelude::*;

use super::body_tests::{frame_of, request_bytes, response_bytes};
use super::strategies::request;
use crate::codec::*;
use crate::model::{Item, Value};

fn describe(table: &str) -> Request {
    Request::DescribeTable {
        table: table.to_owned(),
    }
}

/// A response frame whose body is `body_bytes` long (an Item answer with a B value).
fn response_of_body_bytes(body_bytes: usize) -> Vec<u8> {
    // Body: option 1, item len 4, item: version, count, name "b" (2), tag, varint len, data.
    let varint_bytes = |n: usize| (usize::BITS - n.max(1).leading_zeros()).div_ceil(7) as usize;
    let overhead = |data: usize| 1 + 4 + 1 + 1 + 2 + 1 + varint_bytes(data);
    let mut data = body_bytes - overhead(0);
    while data + overhead(data) > body_bytes {
        data -= 1;
    }
    assert_eq!(
        data + overhead(data),
        body_bytes,
        "no exact fit for {body_bytes}"
    );
    let item = Item::from([("b".to_owned(), Value::B(vec![7; data]))]);
    let bytes = response_bytes(3, &Response::Item(Some(item)));
    assert_eq!(bytes.len(), FRAME_HEADER_BYTES + body_bytes);
    bytes
}

#[test]
fn the_header_lies_at_the_documented_offsets() {
    let bytes = request_bytes(0x0102_0304_0506_0708, &describe("abc"));
    assert_eq!(bytes.len(), FRAME_HEADER_BYTES + 7);
    assert_eq!(&bytes[0..4], b"KEEL");
    assert_eq!(&bytes[4..6], &[1, 0], "version 1, little-endian");
    assert_eq!(bytes[6], Opcode::DescribeTable as u8);
    assert_eq!(bytes[7], 0, "request: no response bit");
    assert_eq!(&bytes[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(&bytes[16..20], &[7, 0, 0, 0]);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[..20]), &bytes[24..]);
    assert_eq!(&bytes[20..24], &crc.to_le_bytes());
    let frame = frame_of(&bytes);
    assert_eq!(frame.header.crc32c, crc);
    assert_eq!(frame.header.version, PROTOCOL_VERSION);
    assert_eq!(&frame.body[..], &bytes[24..]);
}

#[test]
fn opcodes_are_unique_and_split_by_the_response_bit() {
    let mut seen = std::collections::BTreeSet::new();
    for op in frame::OPCODES {
        assert!(seen.insert(op as u8), "{op:?} doubled");
        assert_eq!(Opcode::from_u8(op as u8), Some(op));
    }
    assert_eq!(
        frame::OPCODES.iter().filter(|op| op.is_response()).count(),
        8
    );
    assert_eq!(Opcode::from_u8(0), None);
    assert_eq!(Opcode::from_u8(0x0E), None);
}

#[test]
fn frames_fed_byte_by_byte_come_out_whole_and_in_order() {
    let mut stream = Vec::new();
    for id in 0..20u64 {
        encode_request(id, &describe(&"t".repeat(id as usize)), &mut stream);
    }
    let mut decoder = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
    let mut ids = Vec::new();
    for byte in &stream {
        decoder.feed(std::slice::from_ref(byte));
        while let Some(frame) = decoder.next_frame().unwrap() {
            assert_eq!(
                decode_request(&frame),
                Ok(describe(&"t".repeat(frame.header.request_id as usize)))
            );
            ids.push(frame.header.request_id);
        }
    }
    assert_eq!(ids, (0..20).collect::<Vec<_>>());
    assert_eq!(decoder.buffered_bytes(), 0);
}

proptest! {
    #[test]
    fn frames_fed_in_random_chunks_come_out_whole_and_in_order(
        requests in proptest::collection::vec(request(), 1..8),
        chunks in proptest::collection::vec(1usize..64, 1..200),
    ) {
        let mut stream = Vec::new();
        for (id, request) in requests.iter().enumerate() {
            encode_request(id as u64, request, &mut stream);
        }
        let mut decoder = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
        let mut decoded = Vec::new();
        let mut at = 0;
        let mut sizes = chunks.iter().cycle();
        while at < stream.len() {
            let size = (*sizes.next().unwrap()).min(stream.len() - at);
            decoder.feed(&stream[at..at + size]);
            at += size;
            while let Some(frame) = decoder.next_frame().unwrap() {
                prop_assert_eq!(frame.header.request_id, decoded.len() as u64);
                decoded.push(decode_request(&frame).unwrap());
            }
        }
        prop_assert_eq!(decoded, requests);
        prop_assert_eq!(decoder.buffered_bytes(), 0);
    }
}

#[test]
fn every_flipped_bit_of_a_frame_is_detected() {
    let item = Item::from([
        ("pk".to_owned(), Value::S("user#1".to_owned())),
        ("n".to_owned(), Value::N("12.5".parse().unwrap())),
    ]);
    let frames = [
        request_bytes(
            9,
            &Request::PutItem(PutItem {
                table: "users".to_owned(),
                item: item.clone(),
                condition: None,
                args: ExprArgs::default(),
                return_values: ReturnValues::None,
            }),
        ),
        response_bytes(9, &Response::Item(Some(item))),
    ];
    for bytes in frames {
        for bit in 0..bytes.len() * 8 {
            let mut corrupt = bytes.clone();
            corrupt[bit / 8] ^= 1 << (bit % 8);
            let mut decoder = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
            decoder.feed(&corrupt);
            match decoder.next_frame() {
                // A longer length waits for bytes that never come; nothing is delivered.
                Ok(None) => assert!((16..20).contains(&(bit / 8)), "bit {bit}: waits"),
                Ok(Some(frame)) => panic!("bit {bit} flipped, frame delivered: {frame:?}"),
                Err(_) => {}
            }
        }
    }
}

#[test]
fn bad_magic_and_oversized_length_fail_before_the_body_arrives() {
    let bytes = request_bytes(1, &describe("table"));
    let mut bad_magic = bytes[..FRAME_HEADER_BYTES].to_vec();
    bad_magic[0] = b'X';
    let mut decoder = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
    decoder.feed(&bad_magic[..FRAME_HEADER_BYTES - 1]);
    assert_eq!(decoder.next_frame(), Ok(None), "23 bytes: not yet a header");
    decoder.feed(&bad_magic[FRAME_HEADER_BYTES - 1..]);
    assert_eq!(
        decoder.next_frame(),
        Err(FrameError::BadMagic { found: *b"XEEL" })
    );
    // Sticky: a valid frame after it does not revive the connection.
    decoder.feed(&bytes);
    assert!(matches!(
        decoder.next_frame(),
        Err(FrameError::BadMagic { .. })
    ));

    let mut long = bytes[..FRAME_HEADER_BYTES].to_vec();
    long[16..20].copy_from_slice(&(FRAME_BODY_BYTES_MAX + 1).to_le_bytes());
    let mut decoder = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
    decoder.feed(&long);
    assert_eq!(
        decoder.next_frame(),
        Err(FrameError::BodyTooLong {
            len: FRAME_BODY_BYTES_MAX + 1,
            max: FRAME_BODY_BYTES_MAX,
        })
    );
}

#[test]
fn version_flags_and_opcode_are_checked_in_the_header() {
    let bytes = request_bytes(1, &describe("table"));
    let header_error = |offset: usize, value: u8| {
        let mut corrupt = bytes.clone();
        corrupt[offset] = value;
        let mut decoder = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
        decoder.feed(&corrupt[..FRAME_HEADER_BYTES]);
        decoder.next_frame()
    };
    assert_eq!(
        header_error(4, 2),
        Err(FrameError::UnsupportedVersion {
            version: 2,
            min: 1,
            max: 1,
        })
    );
    assert_eq!(
        header_error(7, 0x02),
        Err(FrameError::UnknownFlags { flags: 0x02 })
    );
    assert_eq!(
        header_error(6, 0x0E),
        Err(FrameError::UnknownOpcode {
            opcode: 0x0E,
            response: false,
        })
    );
    // A request opcode with the response bit set.
    assert_eq!(
        header_error(7, FLAG_RESPONSE),
        Err(FrameError::UnknownOpcode {
            opcode: Opcode::DescribeTable as u8,
            response: true,
        })
    );
}

#[test]
fn every_truncation_waits_and_never_panics() {
    let bytes = response_bytes(
        5,
        &Response::TableNames {
            tables: vec!["a".to_owned(), "bb".to_owned()],
            last: Some("bb".to_owned()),
        },
    );
    for len in 0..bytes.len() {
        let mut decoder = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
        decoder.feed(&bytes[..len]);
        assert_eq!(decoder.next_frame(), Ok(None), "prefix of {len} bytes");
        assert_eq!(decoder.buffered_bytes(), len);
        decoder.feed(&bytes[len..]);
        assert!(decoder.next_frame().unwrap().is_some());
    }
}

#[test]
fn a_body_at_the_decoder_limit_decodes_and_one_byte_more_is_refused() {
    let limit = 64 * 1024;
    let at_limit = response_of_body_bytes(limit);
    let mut decoder = FrameDecoder::new(limit as u32);
    decoder.feed(&at_limit);
    let frame = decoder.next_frame().unwrap().unwrap();
    assert_eq!(frame.body.len(), limit);
    assert!(decode_response(&frame).is_ok());

    let over = response_of_body_bytes(limit + 1);
    let mut decoder = FrameDecoder::new(limit as u32);
    decoder.feed(&over[..FRAME_HEADER_BYTES]);
    assert_eq!(
        decoder.next_frame(),
        Err(FrameError::BodyTooLong {
            len: limit as u32 + 1,
            max: limit as u32,
        })
    );
}

#[test]
fn a_batch_write_of_25_large_items_fits_the_protocol_limit() {
    // 25 items of 400 KiB by DynamoDB's sizing (one 409 597-byte binary attribute named
    // "pk" would be the key; here a B attribute "b" with a 2-byte name and an S key).
    let item = |i: usize| {
        Item::from([
            ("b".to_owned(), Value::B(vec![i as u8; 409_600 - 1 - 2 - 3])),
            ("pk".to_owned(), Value::S(format!("{i:03}"))),
        ])
    };
    let request = Request::BatchWriteItem(BatchWriteItem {
        tables: vec![TableWrites {
            table: "t".to_owned(),
            writes: (0..25).map(|i| WriteRequest::Put(item(i))).collect(),
        }],
    });
    for i in 0..25 {
        assert_eq!(crate::model::item_size_bytes(&item(i)), 409_600);
    }
    let bytes = request_bytes(1, &request);
    assert!(bytes.len() - FRAME_HEADER_BYTES <= FRAME_BODY_BYTES_MAX as usize);
    assert_eq!(decode_request(&frame_of(&bytes)), Ok(request));
}

#[test]
fn a_body_at_the_protocol_limit_decodes() {
    let bytes = response_of_body_bytes(FRAME_BODY_BYTES_MAX as usize);
    let frame = frame_of(&bytes);
    assert_eq!(frame.body.len(), FRAME_BODY_BYTES_MAX as usize);
    // The item is over 400 KiB: a valid frame whose body is refused, not fatal.
    assert!(matches!(
        decode_response(&frame),
        Err(CodecError::Item { .. })
    ));
}
