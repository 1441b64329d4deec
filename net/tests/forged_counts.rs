//! Decoders given forged element counts: they fail with an error and reserve memory in
//! proportion to the input, not to the counts claimed.
//!
//! A count is checked only against the bytes left, so an input can claim as many list
//! elements as it has bytes, at each of 32 levels of nesting. Reserving that much ahead
//! would ask for ~25 GiB from one 16 MiB frame, and a failed allocation aborts the
//! process. This file holds one test, so that nothing else allocates in its binary while
//! the counting allocator measures.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::alloc::System;

use bytes::Bytes;
use keel_net::codec::{decode_response, encode_response, FrameDecoder, ItemPage, Response};
use keel_net::model::{decode_item, Item, ModelError, Value, ITEM_FORMAT_VERSION};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated while `f` runs.
fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let region = Region::new(GLOBAL);
    let out = f();
    (out, region.change().bytes_allocated)
}

fn leb128(mut value: usize, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// An item `{a: [[[...]]]}` of `depth` nested lists, each claiming as many elements as
/// bytes follow its count, padded to `len` bytes with zeros (an unknown tag).
fn forged_nested_lists(depth: usize, len: usize) -> Vec<u8> {
    const LIST_TAG: u8 = 0x08;
    let mut out = vec![ITEM_FORMAT_VERSION, 1, 1, b'a'];
    for _ in 0..depth {
        out.push(LIST_TAG);
        // The count's own bytes (3 for counts below 2^21) are not left for elements.
        let left = len - out.len() - 3;
        leb128(left, &mut out);
    }
    out.resize(len, 0);
    out
}

#[test]
fn forged_counts_reserve_in_proportion_to_the_input() {
    // Nested lists in an item: decoding fails at the innermost list's first element.
    let input = forged_nested_lists(30, 1 << 20);
    let (result, bytes) = allocated_by(|| decode_item(&input));
    assert!(
        matches!(result, Err(ModelError::UnknownTag { tag: 0, .. })),
        "{result:?}"
    );
    assert!(
        bytes < 64 * 1024,
        "decoding a forged 1 MiB item allocated {bytes} bytes"
    );

    // A frame's list (an Items answer) claiming one item per 6 bytes of its body, the
    // least an item takes.
    let page = ItemPage {
        items: vec![Item::from([("a".to_owned(), Value::Null)])],
        scanned_count: 1,
        last_key: None,
    };
    let mut wire = Vec::new();
    encode_response(7, &Response::Items(page), &mut wire);
    let mut decoder = FrameDecoder::new(1 << 24);
    decoder.feed(&wire);
    let mut frame = decoder.next_frame().unwrap().unwrap();
    let mut body = frame.body.to_vec();
    let body_len = 1usize << 20;
    let claimed = u32::try_from((body_len - 4) / 6).unwrap();
    body.get_mut(..4)
        .unwrap()
        .copy_from_slice(&claimed.to_le_bytes());
    body.resize(body_len, 0);
    frame.body = Bytes::from(body);
    let (result, bytes) = allocated_by(|| decode_response(&frame));
    assert!(result.is_err(), "{result:?}");
    assert!(
        bytes < 64 * 1024,
        "decoding a forged 1 MiB Items frame allocated {bytes} bytes"
    );
}
