//! Seeded runs of the fuzz bodies over random inputs and mutations of valid encodings
//! (built with the real encoders), so that they run on stable in `cargo test`.

use std::collections::BTreeSet;

use keel_net::fuzz_input::{mutate, mutate_at, Prng};
use keel_net::{KeyAttribute, KeySchema, KeyType};

use super::*;
use crate::node::catalog::Catalog;
use crate::shard::mutation::Mutation;

#[test]
fn mutation_body_survives_random_and_mutated_payloads() {
    let mut prng = Prng::new(0x6B65_656C_E001);
    let mut decoded = 0usize;
    for round in 0..20_000 {
        let bytes = if round % 4 == 0 {
            let n = prng.below(16);
            prng.bytes(n)
        } else {
            let (key, value) = (prng.bytes_below(8), prng.bytes_below(8));
            let m = match prng.below(3) {
                0 => Mutation::Put {
                    key: &key,
                    value: &value,
                },
                1 => Mutation::Delete { key: &key },
                _ => Mutation::Set {
                    key: &key,
                    attributes: &value,
                },
            };
            let mut out = Vec::new();
            m.encode(&mut out);
            fuzz_mutation(&out);
            for _ in 0..1 + prng.below(2) {
                mutate(&mut prng, &mut out);
            }
            out
        };
        decoded += usize::from(Mutation::decode(&bytes).is_ok());
        fuzz_mutation(&bytes);
    }
    assert!(decoded > 2_000, "only {decoded} inputs decoded");
}

/// One to three batches built with the real encoder, one after another as a segment holds
/// them, from record `first` on; and the offset of every frame in them.
fn log_bytes(prng: &mut Prng, first: Lsn) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    let mut frames = Vec::new();
    let mut buffer = vec![0u8; BATCH_BYTES_MIN];
    let mut builder = BatchBuilder::new(BATCH_BYTES_MIN);
    let mut lsn = first;
    for _ in 0..1 + prng.below(3) {
        let mut at = out.len();
        for _ in 0..1 + prng.below(4) {
            // 4040: a frame of exactly one block, so later frames start on a block.
            let size = match prng.below(4) {
                0 => 4040,
                1 => prng.below(5000),
                _ => prng.below(100),
            };
            let meta = RecordMeta {
                group: GroupId(prng.below(4) as u64),
                term: Term(2),
                index: LogIndex(lsn.0),
                kind: RecordKind::Data,
            };
            frames.push(at);
            at += record_bytes(size);
            let payload = prng.bytes(size);
            builder.push(&mut buffer, lsn, &meta, &payload);
            lsn = lsn.next();
        }
        frames.push(at);
        let sealed = builder.seal(&mut buffer);
        out.extend_from_slice(&buffer[..sealed.bytes]);
    }
    (out, frames)
}

/// `selector | first LSN u64 LE`: the head of a `fuzz_wal_frames` input.
fn wal_input(selector: u8, first: Lsn) -> Vec<u8> {
    let mut input = vec![selector];
    input.extend_from_slice(&first.0.to_le_bytes());
    input
}

#[test]
fn wal_frames_body_survives_random_and_mutated_logs() {
    let mut prng = Prng::new(0x6B65_656C_E002);
    let (mut valid, mut damaged, mut other) = (0usize, 0usize, 0usize);
    for round in 0..5_000 {
        let first = Lsn(1 + prng.below(1_000) as u64);
        let mut input = wal_input(prng.below(2) as u8, first);
        if round % 4 == 0 {
            let n = prng.below(200);
            input.extend(prng.bytes(n));
        } else {
            let (log, frames) = log_bytes(&mut prng, first);
            assert!(matches!(check_batch(&log, first), BatchCheck::Valid { .. }));
            input.extend_from_slice(&log);
            fuzz_wal_frames(&input);
            for _ in 0..1 + prng.below(3) {
                if prng.one_in(2) {
                    let frame = frames[prng.below(frames.len())];
                    let at = 9 + frame + prng.below(RECORD_HEADER_BYTES);
                    mutate_at(&mut prng, &mut input, at);
                } else {
                    mutate(&mut prng, &mut input);
                }
            }
        }
        if let Some((&selector, rest)) = input.split_first() {
            let mut bytes = rest.get(8..).unwrap_or_default().to_vec();
            if selector & 3 == 1 {
                reseal_frames(&mut bytes);
            }
            match check_batch(&bytes, Lsn(u64_at(rest, 0))) {
                BatchCheck::Valid { .. } => valid += 1,
                BatchCheck::Stop(Stop::Damaged { .. }) => damaged += 1,
                _ => other += 1,
            }
        }
        fuzz_wal_frames(&input);
    }
    // Both sides of check_batch must be reached, or the properties went untested.
    assert!(
        valid > 500 && damaged > 500 && other > 500,
        "valid {valid}, damaged {damaged}, other {other}"
    );
}

#[test]
fn wal_frames_body_checks_flipped_batches() {
    let mut prng = Prng::new(0x6B65_656C_E003);
    for _ in 0..4_000 {
        let mut input = wal_input(2 | prng.below(2) as u8, Lsn(prng.next_u64()));
        input.push(prng.next_u64() as u8);
        for _ in 0..8 {
            let size: u16 = match prng.below(4) {
                0 => 4040,
                1 => prng.below(4200) as u16,
                _ => prng.below(100) as u16,
            };
            input.extend_from_slice(&size.to_le_bytes());
        }
        // The flips follow the sizes of the records the count byte asks for.
        let records = 1 + usize::from(input[9] % 8);
        input.truncate(10 + 2 * records);
        let n = 3 * prng.below(4);
        input.extend(prng.bytes(n));
        fuzz_wal_frames(&input);
    }
}

/// A record at LSN `u64::MAX` leaves no LSN for the next: found by `fuzz_wal_frames`
/// (`check_batch` panicked with "lsn overflow" in `Lsn::next`).
#[test]
fn a_record_at_the_last_lsn_is_damage_not_a_panic() {
    let meta = RecordMeta {
        group: GroupId(1),
        term: Term(1),
        index: LogIndex(1),
        kind: RecordKind::Data,
    };
    let mut block = vec![0u8; BLOCK_BYTES];
    let last = Lsn(u64::MAX);
    encode_record(&mut block, last, last, &meta, b"x");
    assert!(matches!(
        check_batch(&block, last),
        BatchCheck::Stop(Stop::Damaged { offset: 0, .. })
    ));
    let mut input = wal_input(0, last);
    input.extend_from_slice(&block);
    fuzz_wal_frames(&input);
}

/// A sealed sorted page of random cells; keys share a prefix of 0, 3 or 9 bytes.
fn sorted_page(prng: &mut Prng, kind: PageKind) -> Vec<u8> {
    let prefix = vec![7u8; [0, 3, 9][prng.below(3)]];
    let keys: BTreeSet<Vec<u8>> = (0..prng.below(40))
        .map(|_| {
            let tail: Vec<u8> = (0..prng.below(6))
                .map(|_| [0, 1, 2, 0xFF][prng.below(4)])
                .collect();
            [prefix.as_slice(), &tail].concat()
        })
        .collect();
    let values: Vec<Vec<u8>> = keys.iter().map(|_| prng.bytes_below(30)).collect();
    let cells: Vec<(&[u8], &[u8])> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    let splice = page::Splice {
        page: None,
        at: 0,
        removed: 0,
        inserted: &cells,
    };
    let mut out = vec![0u8; PAGE_BYTES];
    page::build(&mut out, kind, &splice, 0..cells.len());
    out
}

/// A sealed page of any kind.
fn any_page(prng: &mut Prng) -> Vec<u8> {
    let mut out = match prng.below(4) {
        0 => sorted_page(prng, PageKind::Leaf),
        1 => sorted_page(prng, PageKind::Branch),
        2 => {
            let mut out = vec![0u8; PAGE_BYTES];
            let payload = prng.bytes_below(300);
            page::build_overflow(&mut out, &payload, prng.next_u64());
            out
        }
        _ => {
            let mut out = vec![0u8; PAGE_BYTES];
            let ids: Vec<u64> = (0..prng.below(50)).map(|_| prng.next_u64()).collect();
            page::build_freelist(&mut out, &ids, prng.next_u64());
            out
        }
    };
    page::seal(&mut out, PageId(prng.below(100) as u64), prng.next_u64());
    out
}

#[test]
fn page_body_survives_random_and_mutated_pages() {
    let mut prng = Prng::new(0x6B65_656C_E004);
    let (mut verified, mut malformed) = (0usize, 0usize);
    for round in 0..3_000 {
        let selector = prng.below(4) as u8;
        let mut input = vec![selector];
        input.extend_from_slice(&(prng.next_u64() as u32).to_le_bytes());
        if round % 8 == 0 {
            let n = prng.below(300);
            input.extend(prng.bytes(n));
        } else {
            let page = any_page(&mut prng);
            let slots_end = HEADER_BYTES + 6 * page::count(&page);
            input.extend_from_slice(&page);
            if round % 8 != 1 {
                for _ in 0..1 + prng.below(3) {
                    let at = match prng.below(4) {
                        0 => prng.below(HEADER_BYTES),
                        1 => prng.below(slots_end.min(PAGE_BYTES)),
                        2 => PAGE_BYTES - 1 - prng.below(200),
                        _ => prng.below(PAGE_BYTES),
                    };
                    mutate_at(&mut prng, &mut input, 5 + at);
                }
                if prng.one_in(8) {
                    mutate(&mut prng, &mut input);
                }
            }
        }
        // What the body verifies, for the counts below.
        let mut buf = padded(input.get(5..).unwrap_or_default(), PAGE_BYTES);
        let own = PageId(u64_at(&buf, 8));
        if input[0] & 1 != 0 {
            let lsn = u64_at(&buf, 16);
            page::seal(&mut buf, own, lsn);
        }
        match page::verify(&buf, own) {
            Ok(_) => verified += 1,
            Err(PageError::Malformed { .. }) => malformed += 1,
            Err(_) => {}
        }
        fuzz_page(&input);
    }
    assert!(
        verified > 300 && malformed > 300,
        "verified {verified}, malformed {malformed}"
    );
}

fn superblock(prng: &mut Prng) -> Superblock {
    let page = |v: u64| (v % 3 != 0).then_some(PageId(v));
    Superblock {
        generation: prng.below(6) as u64,
        lsn: prng.next_u64(),
        root: page(prng.next_u64()),
        freelist_head: page(prng.next_u64()),
        page_count: prng.next_u64(),
        entries: prng.next_u64(),
        tree_id: prng.below(3) as u64,
    }
}

/// A slot's bytes: empty (zeros), a valid superblock, a mutated one, or noise.
fn slot(prng: &mut Prng) -> Vec<u8> {
    let mut out = vec![0u8; SUPERBLOCK_BYTES];
    match prng.below(5) {
        0 => Vec::new(),
        1 | 2 => {
            superblock(prng).encode(&mut out);
            out
        }
        3 => {
            superblock(prng).encode(&mut out);
            let at = prng.below(80);
            mutate_at(prng, &mut out, at);
            out
        }
        _ => prng.bytes_below(100),
    }
}

#[test]
fn superblock_body_survives_random_and_mutated_slots() {
    let mut prng = Prng::new(0x6B65_656C_E005);
    let mut used = 0usize;
    for _ in 0..5_000 {
        let file_bytes = match prng.below(8) {
            0 => 0,
            1 => 1,
            2 => 4096,
            3 => 8192,
            4 => PAGE_BYTES as u64,
            5 => PAGE_BYTES as u64 + 1,
            6 => 1 << 20,
            _ => prng.next_u64(),
        };
        let (a, b) = (slot(&mut prng), slot(&mut prng));
        let mut input = file_bytes.to_le_bytes().to_vec();
        input.extend_from_slice(&(a.len() as u16).to_le_bytes());
        input.extend_from_slice(&a);
        input.extend_from_slice(&b);
        if prng.one_in(4) {
            mutate(&mut prng, &mut input);
        }
        fuzz_superblock(&input);
        used += usize::from(Superblock::decode(&padded(&a, SUPERBLOCK_BYTES)).is_some());
    }
    assert!(used > 1_000, "only {used} valid slots");
}

/// A valid superblock in a file of length 0: found by `fuzz_superblock` (`decide` matched
/// both "empty file" and "only A valid" and panicked). The valid slot is used.
#[test]
fn a_valid_slot_in_an_empty_file_is_used_not_a_panic() {
    let sb = superblock(&mut Prng::new(1));
    let mut valid = vec![0u8; SUPERBLOCK_BYTES];
    sb.encode(&mut valid);
    let zeros = vec![0u8; SUPERBLOCK_BYTES];
    assert_eq!(decide(&valid, &zeros, 0), SuperblockCase::Use(sb));
    assert_eq!(decide(&zeros, &valid, 0), SuperblockCase::Use(sb));
    assert_eq!(decide(&zeros, &zeros, 0), SuperblockCase::Fresh);
    let mut input = 0u64.to_le_bytes().to_vec();
    input.extend_from_slice(&(SUPERBLOCK_BYTES as u16).to_le_bytes());
    input.extend_from_slice(&valid);
    fuzz_superblock(&input);
}

/// A catalog of a few tables in every state, with every key type.
fn catalog(prng: &mut Prng) -> Catalog {
    let types = [KeyType::S, KeyType::N, KeyType::B];
    let mut c = Catalog::new(1 + prng.below(8) as u32);
    for i in 0..prng.below(5) {
        let pk = KeyAttribute::new(["id", "pk", "k"][prng.below(3)], types[prng.below(3)]);
        let schema = if prng.one_in(2) {
            KeySchema::partition_only(pk)
        } else {
            KeySchema::with_sort_key(pk, KeyAttribute::new("sk", types[prng.below(3)]))
        };
        let name = format!("t{i}_{}", prng.below(100));
        let partitions = Some(1 + prng.below(16) as u32);
        if c.begin_create(&name, &schema, partitions, 8, prng.next_u64() >> 20)
            .is_err()
        {
            continue;
        }
        match prng.below(3) {
            0 => {}
            1 => c.finish_create(&name),
            _ => {
                let _ = c.begin_delete(&name);
            }
        }
    }
    c
}

#[test]
fn catalog_body_survives_random_and_mutated_catalogs() {
    let mut prng = Prng::new(0x6B65_656C_E006);
    let mut decoded = 0usize;
    for round in 0..10_000 {
        let selector = prng.below(2) as u8;
        let mut input = vec![selector];
        if round % 8 == 0 {
            let n = prng.below(64);
            input.extend(prng.bytes(n));
        } else {
            let mut file = catalog::encode(&catalog(&mut prng));
            if selector & 1 != 0 {
                // The body appends the crc32c itself.
                file.truncate(file.len() - 4);
            }
            input.extend_from_slice(&file);
            fuzz_catalog(&input);
            mutate(&mut prng, &mut input);
        }
        let mut bytes = input.get(1..).unwrap_or_default().to_vec();
        if input.first().is_some_and(|s| s & 1 != 0) {
            bytes.extend_from_slice(&crc32c::crc32c(&input[1..]).to_le_bytes());
        }
        decoded += usize::from(catalog::decode(&bytes).is_ok());
        fuzz_catalog(&input);
    }
    assert!(decoded > 600, "only {decoded} mutants decoded");
}
