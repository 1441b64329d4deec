//! Message bodies: round trips of every kind, rejected bodies, batch limits, error codes
//! and version negotiation.

use bytes::Bytes;
use proptest::prelude::*;

use super::strategies::{names, request, response};
use crate::codec::error::ERROR_CODES;
use crate::codec::*;
use crate::model::{Item, Value};

/// The one frame in `bytes`, through a decoder.
pub fn frame_of(bytes: &[u8]) -> Frame {
    let mut decoder = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
    decoder.feed(bytes);
    let frame = decoder.next_frame().unwrap().expect("a whole frame");
    assert_eq!(decoder.buffered_bytes(), 0);
    frame
}

pub fn request_bytes(id: u64, request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request(id, request, &mut out);
    out
}

pub fn response_bytes(id: u64, response: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    encode_response(id, response, &mut out);
    out
}

/// The same frame with another body (header fields other than the body untouched).
fn with_body(frame: &Frame, body: &[u8]) -> Frame {
    let mut header = frame.header;
    header.body_len = body.len() as u32;
    Frame {
        header,
        body: Bytes::copy_from_slice(body),
    }
}

fn put_request(item: Item) -> Request {
    Request::PutItem(PutItem {
        table: "users".to_owned(),
        item,
        condition: Some("attribute_not_exists(#p)".to_owned()),
        args: ExprArgs {
            names: names(1),
            values: Item::from([(":v".to_owned(), Value::Bool(true))]),
        },
        return_values: ReturnValues::AllOld,
    })
}

fn key(i: usize) -> Item {
    Item::from([("pk".to_owned(), Value::S(format!("k{i}")))])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_request_round_trips_through_a_frame(request in request(), id in any::<u64>()) {
        let bytes = request_bytes(id, &request);
        let frame = frame_of(&bytes);
        prop_assert_eq!(frame.header.request_id, id);
        prop_assert!(!frame.header.is_response());
        prop_assert_eq!(frame.header.opcode, request_opcode(&request) as u8);
        let decoded = decode_request(&frame).unwrap();
        prop_assert_eq!(&decoded, &request);
        prop_assert_eq!(request_bytes(id, &decoded), bytes);
        prop_assert!(decode_response(&frame).is_err());
    }

    #[test]
    fn every_response_round_trips_through_a_frame(response in response(), id in any::<u64>()) {
        let bytes = response_bytes(id, &response);
        let frame = frame_of(&bytes);
        prop_assert_eq!(frame.header.request_id, id);
        prop_assert!(frame.header.is_response());
        let decoded = decode_response(&frame).unwrap();
        prop_assert_eq!(&decoded, &response);
        prop_assert_eq!(response_bytes(id, &decoded), bytes);
        prop_assert!(decode_request(&frame).is_err());
    }

    /// A node answers GetItem with the item's stored encoding: on the wire that must be
    /// the very bytes of the decoded item's answer, and it must decode to that item.
    #[test]
    fn an_item_in_its_stored_encoding_goes_out_as_the_item(
        item in proptest::option::of(crate::model::tests::strategies::item()),
        id in any::<u64>(),
    ) {
        let encoded = item.as_ref().map(|i| {
            let mut out = Vec::new();
            crate::model::encode_item(i, &mut out);
            out
        });
        let bytes = response_bytes(id, &Response::ItemBytes(encoded));
        prop_assert_eq!(&bytes, &response_bytes(id, &Response::Item(item.clone())));
        prop_assert_eq!(decode_response(&frame_of(&bytes)).unwrap(), Response::Item(item));
    }

    #[test]
    fn every_truncated_or_extended_request_body_is_an_error(request in request()) {
        let frame = frame_of(&request_bytes(7, &request));
        for len in 0..frame.body.len() {
            let cut = with_body(&frame, &frame.body[..len]);
            prop_assert!(decode_request(&cut).is_err(), "prefix of {} bytes decoded", len);
        }
        let mut longer = frame.body.to_vec();
        longer.push(0);
        let result = decode_request(&with_body(&frame, &longer));
        let is_trailing = matches!(result, Err(CodecError::TrailingBytes { .. }));
        prop_assert!(is_trailing);
    }

    #[test]
    fn every_truncated_response_body_is_an_error(response in response()) {
        let frame = frame_of(&response_bytes(7, &response));
        for len in 0..frame.body.len() {
            let cut = with_body(&frame, &frame.body[..len]);
            prop_assert!(decode_response(&cut).is_err(), "prefix of {} bytes decoded", len);
        }
    }
}

#[test]
fn a_request_frame_is_not_a_response_and_vice_versa() {
    let frame = frame_of(&request_bytes(
        1,
        &Request::DescribeTable {
            table: "t".to_owned(),
        },
    ));
    assert_eq!(
        decode_response(&frame),
        Err(CodecError::WrongOpcode {
            opcode: Opcode::DescribeTable as u8,
            expected: "response",
        })
    );
}

#[test]
fn batch_write_of_25_decodes_and_26_is_too_many() {
    let batch = |n: usize| {
        Request::BatchWriteItem(BatchWriteItem {
            tables: vec![
                TableWrites {
                    table: "a".to_owned(),
                    writes: (0..n / 2).map(|i| WriteRequest::Put(key(i))).collect(),
                },
                TableWrites {
                    table: "b".to_owned(),
                    writes: (n / 2..n).map(|i| WriteRequest::Delete(key(i))).collect(),
                },
            ],
        })
    };
    let ok = batch(BATCH_WRITE_WRITES_MAX);
    assert_eq!(decode_request(&frame_of(&request_bytes(1, &ok))), Ok(ok));
    let result = decode_request(&frame_of(&request_bytes(1, &batch(26))));
    assert!(
        matches!(
            result,
            Err(CodecError::TooManyElements {
                count: 26,
                max: 25,
                ..
            })
        ),
        "{result:?}"
    );
}

#[test]
fn batch_get_of_100_keys_decodes_and_101_is_too_many() {
    let batch = |n: usize| {
        Request::BatchGetItem(BatchGetItem {
            tables: vec![TableKeys {
                table: "a".to_owned(),
                keys: (0..n).map(key).collect(),
                projection: None,
                args: ExprArgs::default(),
                consistent: true,
            }],
        })
    };
    let ok = batch(BATCH_GET_KEYS_MAX);
    assert_eq!(decode_request(&frame_of(&request_bytes(1, &ok))), Ok(ok));
    let result = decode_request(&frame_of(&request_bytes(1, &batch(101))));
    assert!(
        matches!(
            result,
            Err(CodecError::TooManyElements {
                count: 101,
                max: 100,
                ..
            })
        ),
        "{result:?}"
    );
    let error = result.unwrap_err().to_error_response();
    assert_eq!(error.code, ErrorCode::Validation);
    assert!(!error.retryable);
}

#[test]
fn a_huge_count_is_refused_before_allocating() {
    // ListTables answer claiming u32::MAX names in a 4-byte body.
    let frame = frame_of(&response_bytes(
        1,
        &Response::TableNames {
            tables: vec![],
            last: None,
        },
    ));
    let result = decode_response(&with_body(&frame, &[0xFF, 0xFF, 0xFF, 0xFF, 0]));
    assert_eq!(
        result,
        Err(CodecError::LengthTooLarge {
            len: u32::MAX,
            offset: 0,
            remaining_bytes: 1,
        })
    );
}

#[test]
fn unknown_tags_are_errors_not_defaults() {
    let frame = frame_of(&request_bytes(1, &put_request(key(1))));
    // The last byte is return_values.
    let mut body = frame.body.to_vec();
    *body.last_mut().unwrap() = 5;
    assert!(matches!(
        decode_request(&with_body(&frame, &body)),
        Err(CodecError::UnknownTag {
            what: "return values",
            tag: 5,
            ..
        })
    ));
    // An option byte of 2 (the condition's presence byte follows table and item).
    let item_len = u32::from_le_bytes(body[9..13].try_into().unwrap()) as usize;
    let option_at = 4 + 5 + 4 + item_len;
    assert_eq!(body[option_at], 1);
    body[option_at] = 2;
    assert!(matches!(
        decode_request(&with_body(&frame, &body)),
        Err(CodecError::UnknownTag { what: "option", .. })
    ));
    // An error code no version defines.
    let error = frame_of(&response_bytes(
        1,
        &Response::Error(ErrorResponse::new(ErrorCode::Internal, "x")),
    ));
    let mut body = error.body.to_vec();
    body[0] = 99;
    assert!(matches!(
        decode_response(&with_body(&error, &body)),
        Err(CodecError::UnknownTag {
            what: "error code",
            tag: 99,
            ..
        })
    ));
}

#[test]
fn bad_utf8_and_unsorted_expression_names_are_rejected() {
    let request = Request::DescribeTable {
        table: "ab".to_owned(),
    };
    let frame = frame_of(&request_bytes(1, &request));
    assert_eq!(
        decode_request(&with_body(&frame, &[2, 0, 0, 0, 0xC3, 0x28])),
        Err(CodecError::InvalidUtf8 { offset: 0 })
    );
    // A GetItem whose two expression names are in descending order.
    let get = Request::GetItem(GetItem {
        table: "t".to_owned(),
        key: key(1),
        projection: None,
        args: ExprArgs {
            names: names(2),
            values: Item::new(),
        },
        consistent: false,
    });
    let frame = frame_of(&request_bytes(1, &get));
    let body = frame.body.to_vec();
    let pair = |i: usize| {
        let mut p = Vec::new();
        for s in [format!("#n{i:04}"), format!("a{i}")] {
            p.extend_from_slice(&(s.len() as u32).to_le_bytes());
            p.extend_from_slice(s.as_bytes());
        }
        p
    };
    let (first, second) = (pair(0), pair(1));
    let at = body
        .windows(first.len())
        .position(|w| w == first.as_slice())
        .unwrap();
    let mut swapped = body[..at].to_vec();
    swapped.extend_from_slice(&second);
    swapped.extend_from_slice(&first);
    swapped.extend_from_slice(&body[at + first.len() + second.len()..]);
    assert!(matches!(
        decode_request(&with_body(&frame, &swapped)),
        Err(CodecError::NonCanonical { .. })
    ));
}

#[test]
fn a_bad_item_names_its_offset() {
    let frame = frame_of(&request_bytes(1, &put_request(key(1))));
    let mut body = frame.body.to_vec();
    // The item starts after the table name ("users": 4 + 5 bytes) and its length field.
    assert_eq!(body[13], 1, "item format version");
    body[13] = 9;
    assert!(matches!(
        decode_request(&with_body(&frame, &body)),
        Err(CodecError::Item { offset: 9, .. })
    ));
}

#[test]
fn error_codes_have_stable_numbers_and_retryability() {
    let expected = [
        (ErrorCode::Validation, 1, false),
        (ErrorCode::ConditionalCheckFailed, 2, false),
        (ErrorCode::ResourceNotFound, 3, false),
        (ErrorCode::ResourceInUse, 4, false),
        (ErrorCode::Throttled, 5, true),
        (ErrorCode::Internal, 6, true),
        (ErrorCode::Protocol, 7, false),
        (ErrorCode::UnsupportedVersion, 8, false),
        (ErrorCode::Unavailable, 9, true),
    ];
    assert_eq!(ERROR_CODES.len(), expected.len());
    for ((code, number, retryable), (listed, listed_number)) in expected.iter().zip(ERROR_CODES) {
        assert_eq!(code.number(), *number);
        assert_eq!((listed, listed_number), (*code, *number));
        assert_eq!(ErrorCode::from_number(*number), Some(*code));
        assert_eq!(code.is_retryable_by_default(), *retryable, "{code:?}");
    }
    assert_eq!(ErrorCode::from_number(0), None);
    assert_eq!(ErrorCode::from_number(10), None);
}

#[test]
fn error_frame_carries_the_default_retryability() {
    let mut out = Vec::new();
    error_frame(42, ErrorCode::Throttled, "slow down", &mut out);
    let frame = frame_of(&out);
    assert_eq!(frame.header.request_id, 42);
    assert_eq!(
        decode_response(&frame),
        Ok(Response::Error(ErrorResponse {
            code: ErrorCode::Throttled,
            retryable: true,
            message: "slow down".to_owned(),
        }))
    );
}

#[test]
fn negotiation_picks_the_highest_common_version_or_names_both_ranges() {
    let hello = |min_version, max_version| Hello {
        min_version,
        max_version,
        client: "test".to_owned(),
    };
    assert_eq!(negotiate(&hello(1, 1)), Ok(1));
    assert_eq!(negotiate(&hello(0, 9)), Ok(PROTOCOL_VERSION));
    assert_eq!(negotiate(&crate::codec::hello("me")), Ok(PROTOCOL_VERSION));
    for (min, max) in [(2, 5), (0, 0), (3, 2)] {
        let error = negotiate(&hello(min, max)).unwrap_err();
        assert_eq!(error.code, ErrorCode::UnsupportedVersion);
        assert!(!error.retryable);
        assert!(
            error.message.contains(&format!("{min}..={max}")),
            "{}",
            error.message
        );
        assert!(error.message.contains("1..=1"), "{}", error.message);
    }
    let long = Hello {
        client: "x".repeat(HELLO_CLIENT_BYTES_MAX + 1),
        ..hello(1, 1)
    };
    assert_eq!(negotiate(&long).unwrap_err().code, ErrorCode::Validation);
}
