//! Fuzz bodies for the decoders of on-disk bytes: plain functions, run on stable by the
//! tests below over seeded random and mutated inputs, and by `engine/fuzz` (cargo-fuzz)
//! for long runs.
//!
//! Each body panics only when a property breaks: no decoder panics on any input, and what
//! a decoder accepts satisfies the property in the body's doc. Where a checksum guards the
//! bytes, an input bit asks the body to fix the checksum first, so that random and mutated
//! inputs reach the checks behind it.
#![deny(clippy::indexing_slicing)]

use crate::btree::page::{self, PageError, PageId, PageKind, HEADER_BYTES, PAGE_BYTES};
use crate::btree::superblock::{decide, Superblock, SuperblockCase, SUPERBLOCK_BYTES};
use crate::node::catalog;
use crate::wal::batch::{BatchBuilder, BATCH_BYTES_MIN};
use crate::wal::record::{
    decode_frame, encode_batch_end, encode_record, record_bytes, Frame, GroupId, LogIndex, Lsn,
    Record, RecordKind, RecordMeta, Term, BATCH_END_BYTES, RECORD_HEADER_BYTES,
    RECORD_PAYLOAD_BYTES_MAX,
};
use crate::wal::recovery::{
    batch_records, check_batch, scan_tail, scan_tail_windowed, walk_segment, BatchCheck, Stop,
};
use crate::wal::segment::{SegmentHeader, BLOCK_BYTES, SEGMENT_HEADER_BYTES};

/// WAL payloads (`shard/mutation.rs`): decoding never panics, and what decodes re-encodes
/// to the same bytes.
pub use crate::shard::mutation::fuzz_mutation;

/// The little-endian u64 at `at`, zero-padded past the end of `bytes`.
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    for (w, b) in word.iter_mut().zip(bytes.get(at..).unwrap_or_default()) {
        *w = *b;
    }
    u64::from_le_bytes(word)
}

/// The little-endian u32 at `at`, zero-padded past the end of `bytes`.
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    for (w, b) in word.iter_mut().zip(bytes.get(at..).unwrap_or_default()) {
        *w = *b;
    }
    u32::from_le_bytes(word)
}

/// `bytes` copied into a zeroed buffer of `len` bytes (cut if longer).
fn padded(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = *b;
    }
    out
}

/// WAL frames and batches. Input: `selector u8 | expected LSN u64 LE | rest`.
///
/// Selector bit 1 clear: `rest` is log bytes (fixed up by `reseal_frames` first when bit
/// 0 is set). A frame that decodes re-encodes to its bytes; a batch that `check_batch`
/// calls valid lies inside the input and yields exactly its LSNs' records, each inside
/// it; `walk_segment` over a segment of these bytes agrees with `check_batch` on the first
/// batch, and `scan_tail` whole and window by window agree with each other and the walk.
///
/// Selector bit 1 set: `rest` describes a batch built with [`BatchBuilder`] and up to
/// three bits to flip in it (`flipped_batch`): it is never reported valid with other
/// records than those written (crc32c catches the flips).
pub fn fuzz_wal_frames(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let expected = Lsn(u64_at(rest, 0));
    let rest = rest.get(8..).unwrap_or_default();
    if selector & 2 != 0 {
        flipped_batch(expected, rest);
        return;
    }
    let mut bytes = rest.to_vec();
    if selector & 1 != 0 {
        reseal_frames(&mut bytes);
    }
    check_log_bytes(&bytes, expected);
}

/// Rewrites the crc32c of every frame in `bytes`, walking them as a batch does (after a
/// `BatchEnd`, or an all-zero header, on at the next block), so that mutated frames pass
/// the checksum and reach the checks behind it.
fn reseal_frames(bytes: &mut [u8]) {
    /// Offset of the frame tag in the header, and the tag of a `BatchEnd` (`record.rs`).
    const OFFSET_FRAME: usize = 48;
    const FRAME_BATCH_END: u8 = 2;
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + RECORD_HEADER_BYTES) {
        if header.iter().all(|b| *b == 0) {
            at = (at + 1).next_multiple_of(BLOCK_BYTES);
            continue;
        }
        let batch_end = header.get(OFFSET_FRAME) == Some(&FRAME_BATCH_END);
        let payload_bytes = u32_at(header, 4) as usize;
        if payload_bytes > RECORD_PAYLOAD_BYTES_MAX {
            return;
        }
        let Some(covered) = bytes.get(at + 4..at + RECORD_HEADER_BYTES + payload_bytes) else {
            return;
        };
        let crc = crc32c::crc32c(covered);
        if let Some(field) = bytes.get_mut(at..at + 4) {
            field.copy_from_slice(&crc.to_le_bytes());
        }
        at = if batch_end {
            (at + BATCH_END_BYTES).next_multiple_of(BLOCK_BYTES)
        } else {
            at + record_bytes(payload_bytes)
        };
    }
}

/// The properties of [`fuzz_wal_frames`] over log bytes whose next batch should start
/// with record `expected`.
fn check_log_bytes(bytes: &[u8], expected: Lsn) {
    check_frame(bytes);
    match check_batch(bytes, expected) {
        BatchCheck::Valid { bytes: n, last_lsn } => check_valid_batch(bytes, expected, n, last_lsn),
        BatchCheck::Stop(Stop::Damaged { offset, .. }) => assert!(
            offset + RECORD_HEADER_BYTES <= bytes.len(),
            "damage at {offset} reported past the {} bytes given",
            bytes.len()
        ),
        BatchCheck::Incomplete | BatchCheck::Stop(_) => {}
    }
    // The same bytes as a segment: a header block (passed decoded), then the batches.
    let mut image = vec![0u8; SEGMENT_HEADER_BYTES];
    image.extend_from_slice(bytes);
    image.resize(image.len().next_multiple_of(BLOCK_BYTES), 0);
    let header = SegmentHeader {
        sequence: 1,
        first_lsn: expected,
        retain_lsn: expected,
        segment_bytes: image.len() as u64,
        batch_bytes_max: BATCH_BYTES_MIN as u64,
    };
    let walk = walk_segment(&image, &header);
    let walked = walk.end_offset.checked_sub(SEGMENT_HEADER_BYTES);
    assert!(
        walk.end_offset <= image.len() && walked.is_some_and(|w| w % BLOCK_BYTES == 0),
        "walk ends at {} in a segment of {} bytes",
        walk.end_offset,
        image.len()
    );
    assert!(
        walk.next_lsn >= expected,
        "walk goes back to {}",
        walk.next_lsn
    );
    match check_batch(
        image.get(SEGMENT_HEADER_BYTES..).unwrap_or_default(),
        expected,
    ) {
        BatchCheck::Valid { bytes: n, last_lsn } => assert!(
            walk.end_offset >= SEGMENT_HEADER_BYTES + n && walk.next_lsn > last_lsn,
            "walk stops inside the first valid batch"
        ),
        _ => assert_eq!(
            (walk.end_offset, walk.next_lsn),
            (SEGMENT_HEADER_BYTES, expected),
            "walk passes a first batch that is not valid"
        ),
    }
    let whole = scan_tail(&image, &header, 0);
    let windowed = scan_tail_windowed(&image, &header, 0, BLOCK_BYTES);
    assert_eq!(
        format!("{whole:?}"),
        format!("{windowed:?}"),
        "scan window by window differs"
    );
    if let Ok(tail) = whole {
        assert_eq!(
            (tail.end_offset, tail.next_lsn),
            (walk.end_offset, walk.next_lsn),
            "scan and walk end apart"
        );
    }
}

/// A frame that decodes lies inside `bytes` and re-encodes to the bytes it came from.
fn check_frame(bytes: &[u8]) {
    let Ok(frame) = decode_frame(bytes) else {
        return;
    };
    let mut again = vec![0u8; frame.bytes()];
    let (written, covered) = match frame {
        Frame::Record {
            lsn,
            batch_lsn,
            meta,
            payload,
        } => (
            encode_record(&mut again, lsn, batch_lsn, &meta, payload),
            RECORD_HEADER_BYTES + payload.len(),
        ),
        Frame::BatchEnd { lsn, batch_lsn } => (
            encode_batch_end(&mut again, lsn, batch_lsn),
            BATCH_END_BYTES,
        ),
    };
    assert_eq!(written, frame.bytes(), "frame size");
    assert!(covered <= bytes.len(), "a frame decoded past the input");
    assert_eq!(
        again.get(..covered),
        bytes.get(..covered),
        "a decoded frame re-encodes to other bytes"
    );
}

/// A batch `check_batch` called valid: `n` bytes inside `bytes`, records `expected..=last`.
fn check_valid_batch(bytes: &[u8], expected: Lsn, n: usize, last: Lsn) {
    assert!(
        n > 0 && n % BLOCK_BYTES == 0 && n <= bytes.len(),
        "valid batch of {n} bytes in {}",
        bytes.len()
    );
    assert!(
        last >= expected,
        "valid batch ends at {last} before {expected}"
    );
    let batch = bytes.get(..n).unwrap_or_default();
    let records: Vec<Record> = batch_records(batch).collect();
    assert_eq!(
        records.len() as u64,
        last.0 - expected.0 + 1,
        "records of a valid batch"
    );
    for (i, r) in records.iter().enumerate() {
        assert_eq!(
            r.lsn.0.checked_sub(expected.0),
            Some(i as u64),
            "record LSNs"
        );
    }
    let framed: usize = records.iter().map(|r| record_bytes(r.payload.len())).sum();
    assert!(
        framed + BATCH_END_BYTES <= n,
        "records of {framed} bytes in a batch of {n}"
    );
    assert!(
        batch_records(bytes).eq(records),
        "records read on past the batch end"
    );
}

/// Builds one batch with [`BatchBuilder`] from `spec` (`count u8`, then a u16 LE payload
/// size per record; payloads of one nonzero byte, which never read as a frame header),
/// starting at an LSN derived from `first`, then flips up to three bits (3 bytes each
/// from the rest of `spec`). Checks that the intact batch is valid with its records, and
/// that the flipped one is valid only with the records written.
fn flipped_batch(first: Lsn, spec: &[u8]) {
    let first = Lsn(1 + first.0 % (1 << 40));
    let (count, sizes) = spec.split_first().unwrap_or((&0, &[]));
    let records = 1 + usize::from(count % 8);
    let mut buffer = vec![0u8; BATCH_BYTES_MIN];
    let mut builder = BatchBuilder::new(BATCH_BYTES_MIN);
    let mut written = Vec::with_capacity(records);
    for i in 0..records {
        let lsn = Lsn(first.0 + i as u64);
        let meta = RecordMeta {
            group: GroupId(i as u64),
            term: Term(1),
            index: LogIndex(lsn.0),
            kind: RecordKind::Data,
        };
        // Up to 4200 bytes: payloads of 4040 (a frame of one block) and past a block.
        let size = u32_at(sizes, 2 * i) as u16 % 4200;
        let payload = vec![(i as u8).wrapping_mul(37) | 1; usize::from(size)];
        builder.push(&mut buffer, lsn, &meta, &payload);
        written.push(Record { lsn, meta, payload });
    }
    let sealed = builder.seal(&mut buffer);
    buffer.truncate(sealed.bytes);
    let intact = buffer.clone();
    let flips = sizes.get(2 * records..).unwrap_or_default();
    for flip in flips.chunks_exact(3).take(3) {
        let bit = u32_at(flip, 0) as usize % (sealed.bytes * 8);
        if let Some(b) = buffer.get_mut(bit / 8) {
            *b ^= 1 << (bit % 8);
        }
    }
    match check_batch(&buffer, first) {
        BatchCheck::Valid { bytes, last_lsn } => {
            assert_eq!(
                (bytes, last_lsn),
                (sealed.bytes, sealed.last_lsn),
                "a flipped batch is valid with another extent"
            );
            assert!(
                batch_records(&buffer).eq(written),
                "a flipped batch is valid with other records"
            );
        }
        other => assert!(buffer != intact, "an intact batch is {other:?}"),
    }
    check_log_bytes(&buffer, first);
}

/// B-tree pages. Input: `selector u8 | flip u32 LE | page` (the page zero-padded or cut
/// to `PAGE_BYTES`). Selector bit 0 seals the page first under the id and LSN in its
/// header (so that `verify` reaches its structural checks); bit 1 verifies it under
/// another id than its header's, which must then fail as misplaced.
///
/// `verify` never panics; on a verified page every accessor of its kind works: a sorted
/// page's cells ascend, fill `used_bytes`, are found by `search` (which agrees with a
/// binary search of its keys for other probes too), and `build` lays them out in the
/// same bytes. A page with a good checksum and `flip` applied (one bit) is rejected.
pub fn fuzz_page(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let flip = u32_at(rest, 0) as usize % (PAGE_BYTES * 8);
    let mut buf = padded(rest.get(4..).unwrap_or_default(), PAGE_BYTES);
    let own = PageId(u64_at(&buf, 8));
    if selector & 1 != 0 {
        let lsn = u64_at(&buf, 16);
        page::seal(&mut buf, own, lsn);
    }
    let id = if selector & 2 != 0 {
        PageId(own.0 ^ 1)
    } else {
        own
    };
    let verified = page::verify(&buf, id);
    match &verified {
        Ok(kind) => {
            assert_eq!(id, own, "a misplaced page verifies");
            assert_eq!(page::kind(&buf), Some(*kind), "kind of a verified page");
            check_verified_page(&buf, *kind);
        }
        Err(PageError::Checksum { .. }) => {
            assert!(selector & 1 == 0, "a sealed page fails its checksum");
            return;
        }
        Err(PageError::Misplaced { found, .. }) => assert_eq!(*found, own.0, "misplaced"),
        Err(_) => {}
    }
    if id != own {
        assert!(
            matches!(verified, Err(PageError::Misplaced { .. })),
            "verified under another id: {verified:?}"
        );
    }
    // The checksum is good: one flipped bit must break it.
    if let Some(b) = buf.get_mut(flip / 8) {
        *b ^= 1 << (flip % 8);
    }
    assert!(
        matches!(page::verify(&buf, own), Err(PageError::Checksum { .. })),
        "page with bit {flip} flipped passes its checksum"
    );
}

/// Every accessor of a verified page of `kind`.
fn check_verified_page(buf: &[u8], kind: PageKind) {
    match kind {
        PageKind::Leaf | PageKind::Branch => check_sorted_page(buf, kind),
        PageKind::Overflow => {
            let _ = page::next(buf);
            let used = u32_at(buf, 32) as usize;
            assert_eq!(page::overflow_payload(buf).len(), used, "overflow payload");
        }
        PageKind::Freelist => {
            let _ = page::next(buf);
            assert_eq!(
                page::freelist_ids(buf).count(),
                page::count(buf),
                "freelist"
            );
        }
    }
}

fn check_sorted_page(buf: &[u8], kind: PageKind) {
    /// Bytes of a slot and of a cell's length prefix (`page.rs`).
    const SLOT_BYTES: usize = 6;
    const CELL_PREFIX_BYTES: usize = 4;
    let n = page::count(buf);
    let cells: Vec<(&[u8], &[u8])> = (0..n).map(|i| page::cell(buf, i)).collect();
    let keys: Vec<&[u8]> = cells.iter().map(|(k, _)| *k).collect();
    assert!(
        keys.windows(2).all(|w| matches!(w, [a, b] if a < b)),
        "keys of a verified page do not ascend"
    );
    let cell_bytes: usize = cells
        .iter()
        .map(|(k, v)| CELL_PREFIX_BYTES + k.len() + v.len())
        .sum();
    let used = page::used_bytes(buf);
    let with_slots: usize = cells.iter().map(|(k, v)| page::cell_bytes(k, v)).sum();
    assert!(
        used == with_slots && with_slots == cell_bytes + n * SLOT_BYTES,
        "used_bytes {used} for {n} cells of {cell_bytes} bytes"
    );
    assert!(HEADER_BYTES + used <= PAGE_BYTES, "cells past the page");
    let mut probes: Vec<Vec<u8>> = vec![Vec::new(), vec![0xFF; 6]];
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            page::search(buf, key),
            Ok(i),
            "search for the key of cell {i}"
        );
        if i < 3 || i + 1 == n {
            let mut longer = key.to_vec();
            longer.push(0);
            probes.push(longer);
            probes.push(
                key.get(..key.len().saturating_sub(1))
                    .unwrap_or_default()
                    .to_vec(),
            );
            let mut next = key.to_vec();
            if let Some(last) = next.last_mut() {
                *last = last.wrapping_add(1);
            }
            probes.push(next);
        }
    }
    for probe in &probes {
        assert_eq!(
            page::search(buf, probe),
            keys.binary_search(&probe.as_slice()),
            "search for {probe:?}"
        );
    }
    // A verified page is laid out exactly as `build` lays out its cells.
    let splice = page::Splice {
        page: Some(buf),
        at: 0,
        removed: 0,
        inserted: &[],
    };
    let mut rebuilt = vec![0u8; PAGE_BYTES];
    page::build(&mut rebuilt, kind, &splice, 0..n);
    let same = |range: core::ops::Range<usize>| rebuilt.get(range.clone()) == buf.get(range);
    let slots = HEADER_BYTES..HEADER_BYTES + n * SLOT_BYTES;
    // Header bytes 4..8 (kind, version, count) and 36..38 (skip); build leaves version 0.
    let same_header = rebuilt.get(4) == buf.get(4) && same(6..8) && same(36..38);
    assert!(
        same_header && same(slots) && same(PAGE_BYTES - cell_bytes..PAGE_BYTES),
        "a verified page differs from the page build makes of its cells"
    );
}

/// The superblock pair. Input: `file_bytes u64 LE | a_len u16 LE | slot A | slot B`: slot
/// A is the next `a_len` bytes (at most `SUPERBLOCK_BYTES`), slot B the rest, each
/// zero-padded to a slot as a read past the end of a file is.
///
/// `decide` never panics, and follows its table: a valid slot is never ignored, the newer
/// of two valid slots wins, a file with no valid slot is fresh if empty (or all zero and
/// at most a page) and corrupt otherwise. Valid slots re-encode and decode the same.
pub fn fuzz_superblock(data: &[u8]) {
    let file_bytes = u64_at(data, 0);
    let rest = data.get(10..).unwrap_or_default();
    let a_len = (u32_at(data, 8) as usize & 0xFFFF)
        .min(SUPERBLOCK_BYTES)
        .min(rest.len());
    let (a, b) = rest.split_at_checked(a_len).unwrap_or((rest, &[]));
    let (slot_a, slot_b) = (padded(a, SUPERBLOCK_BYTES), padded(b, SUPERBLOCK_BYTES));
    let case = decide(&slot_a, &slot_b, file_bytes);
    let decoded = (Superblock::decode(&slot_a), Superblock::decode(&slot_b));
    for sb in [decoded.0, decoded.1].into_iter().flatten() {
        let mut again = vec![0u8; SUPERBLOCK_BYTES];
        sb.encode(&mut again);
        assert_eq!(
            Superblock::decode(&again),
            Some(sb),
            "superblock round trip"
        );
    }
    let all_zero = slot_a.iter().chain(&slot_b).all(|b| *b == 0);
    let expected = match decoded {
        (Some(a), Some(b)) if a.generation >= b.generation => SuperblockCase::Use(a),
        (Some(_), Some(b)) => SuperblockCase::Use(b),
        (Some(s), None) | (None, Some(s)) => SuperblockCase::Use(s),
        (None, None) if file_bytes == 0 || (all_zero && file_bytes <= PAGE_BYTES as u64) => {
            SuperblockCase::Fresh
        }
        (None, None) => SuperblockCase::Corrupt,
    };
    assert_eq!(case, expected, "superblock decision");
}

/// The node catalog. Input: `selector u8 | file`; selector bit 0 appends the crc32c of
/// the file first (so that `decode` reaches its structural checks).
///
/// `decode` never panics; a decoded catalog keys each table by its name, encodes to as
/// many bytes as it came from (the same fields, tables in name order), and decodes from
/// that encoding to an equal catalog.
pub fn fuzz_catalog(data: &[u8]) {
    let Some((&selector, file)) = data.split_first() else {
        return;
    };
    let mut bytes = file.to_vec();
    if selector & 1 != 0 {
        bytes.extend_from_slice(&crc32c::crc32c(file).to_le_bytes());
    }
    let Ok(decoded) = catalog::decode(&bytes) else {
        return;
    };
    for (name, table) in &decoded.tables {
        assert_eq!(name, &table.name, "a table under another name");
    }
    let encoded = catalog::encode(&decoded);
    assert_eq!(
        encoded.len(),
        bytes.len(),
        "catalog re-encodes to another length"
    );
    assert_eq!(
        catalog::decode(&encoded).as_ref(),
        Ok(&decoded),
        "decode(encode(catalog)) == catalog"
    );
}

#[cfg(test)]
mod tests;
