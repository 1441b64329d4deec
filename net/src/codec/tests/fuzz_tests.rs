//! Seeded runs of the frame fuzz body over random and mutated streams.

use super::body_tests::{request_bytes, response_bytes};
use crate::codec::fuzz::fuzz_frames;
use crate::codec::*;
use crate::fuzz_input::{mutate, Prng};
use crate::model::{Item, Value};

fn text(prng: &mut Prng) -> String {
    ["", "t", "users", "#a", "é\0"][prng.below(5)].to_owned()
}

fn item(prng: &mut Prng) -> Item {
    prng.map(2)
}

fn args(prng: &mut Prng) -> ExprArgs {
    ExprArgs {
        names: (0..prng.below(3))
            .map(|i| (format!("#{i}"), text(prng)))
            .collect(),
        values: (0..prng.below(3))
            .map(|i| (format!(":{i}"), prng.value(1)))
            .collect(),
    }
}

/// A random message of a random kind, encoded as a frame.
fn message(prng: &mut Prng, out: &mut Vec<u8>) {
    let id = prng.next_u64();
    let request = match prng.below(12) {
        0 => Request::Hello(hello("fuzz")),
        1 => Request::DescribeTable { table: text(prng) },
        2 => Request::PutItem(PutItem {
            table: text(prng),
            item: item(prng),
            condition: Some(text(prng)),
            args: args(prng),
            return_values: ReturnValues::AllOld,
        }),
        3 => Request::Query(Query {
            table: text(prng),
            key_condition: text(prng),
            filter: None,
            projection: Some(text(prng)),
            args: args(prng),
            forward: prng.one_in(2),
            limit: Some(prng.next_u64() as u32),
            start_key: Some(item(prng)),
            consistent: prng.one_in(2),
        }),
        4 => Request::BatchWriteItem(BatchWriteItem {
            tables: vec![TableWrites {
                table: text(prng),
                writes: (0..prng.below(4))
                    .map(|_| WriteRequest::Delete(item(prng)))
                    .collect(),
            }],
        }),
        5 => {
            let response = Response::Items(ItemPage {
                items: (0..prng.below(3)).map(|_| item(prng)).collect(),
                scanned_count: 3,
                last_key: None,
            });
            out.extend_from_slice(&response_bytes(id, &response));
            return;
        }
        6 => {
            let response = Response::Error(ErrorResponse::new(ErrorCode::Throttled, text(prng)));
            out.extend_from_slice(&response_bytes(id, &response));
            return;
        }
        7 => {
            let response = Response::Item(Some(Item::from([(
                "v".to_owned(),
                Value::N(prng.number()),
            )])));
            out.extend_from_slice(&response_bytes(id, &response));
            return;
        }
        _ => Request::GetItem(GetItem {
            table: text(prng),
            key: item(prng),
            projection: None,
            args: args(prng),
            consistent: true,
        }),
    };
    out.extend_from_slice(&request_bytes(id, &request));
}

/// Mutates the body of the single frame in `bytes` and fixes its length and crc, so that
/// the mutant reaches the message decoder.
fn mutate_body_resealed(prng: &mut Prng, bytes: &mut Vec<u8>) {
    let mut body = bytes.split_off(FRAME_HEADER_BYTES);
    mutate(prng, &mut body);
    bytes[16..20].copy_from_slice(&(body.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[..20]), &body);
    bytes[20..24].copy_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(&body);
}

#[test]
fn frame_fuzz_body_survives_random_and_mutated_streams() {
    let mut prng = Prng::new(0x6B65_656C_0003);
    let mut decoded_mutants = 0usize;
    for round in 0..60_000 {
        let mut bytes = vec![prng.next_u64() as u8];
        match round % 4 {
            0 => bytes.extend((0..prng.below(64)).map(|_| prng.next_u64() as u8)),
            1 => {
                // A stream of valid frames, then a mutation anywhere (usually fatal).
                for _ in 0..1 + prng.below(3) {
                    message(&mut prng, &mut bytes);
                }
                fuzz_frames(&bytes);
                mutate(&mut prng, &mut bytes);
            }
            _ => {
                // One frame whose body is mutated and resealed: reaches the body decoder.
                let mut frame = Vec::new();
                message(&mut prng, &mut frame);
                mutate_body_resealed(&mut prng, &mut frame);
                let mut decoder = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
                decoder.feed(&frame);
                if let Ok(Some(f)) = decoder.next_frame() {
                    if decode_request(&f).is_ok() || decode_response(&f).is_ok() {
                        decoded_mutants += 1;
                    }
                }
                bytes.extend_from_slice(&frame);
            }
        }
        fuzz_frames(&bytes);
    }
    // Some mutants must still decode, or the round-trip branch of the body went untested.
    assert!(
        decoded_mutants > 1000,
        "only {decoded_mutants} mutants decoded"
    );
}
