//! The ledger of the SIGKILL crash test: what the writer acknowledged, and the check that
//! a reopened engine holds exactly that.
//!
//! The writer prints one line per event, flushed before it goes on:
//! - `P <key>`: the put of `<key>` is acknowledged (durable);
//! - `I <key>`: a delete of `<key>` is about to be issued;
//! - `D <key>`: that delete is acknowledged;
//! - `T <key>`: a set of the key's mark attribute (`Engine::set_attributes`, logged as a
//!   `Mutation::Set`) is about to be issued;
//! - `M <key>`: that set is acknowledged.
//!
//! Each key is put once, marked at most once and deleted at most once, and an item's
//! value is derived from its key, so the expected state of every key is unambiguous: a
//! put acknowledged and no delete issued means present with its exact value (marked if a
//! set was acknowledged, unmarked if none was issued, either if one was issued only); a
//! delete acknowledged means absent; a delete issued but not acknowledged allows either.

use std::collections::BTreeMap;

use keel_net::{Item, Value};

/// What the ledger says of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Acknowledged put, no delete issued: must be there, intact.
    Present,
    /// Delete issued, not acknowledged: either.
    Either,
    /// Delete acknowledged: must be gone.
    Absent,
}

/// What the ledger says of a key's mark attribute, in the order a set goes through (a
/// set is issued before it is acknowledged, and never undone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mark {
    /// No set issued: the item must be unmarked.
    No,
    /// Set issued, not acknowledged: either.
    Maybe,
    /// Set acknowledged: the item must be marked.
    Yes,
}

/// Every key the writer has acknowledged, with what must hold for it.
#[derive(Default, Debug, Clone)]
pub struct Ledger {
    keys: BTreeMap<String, (Expect, Mark)>,
}

impl Ledger {
    /// Reads one line of writer output; lines that are not events are ignored.
    pub fn record(&mut self, line: &str) {
        let mut parts = line.splitn(2, ' ');
        let (Some(tag), Some(key)) = (parts.next(), parts.next()) else {
            return;
        };
        let key = key.trim().to_owned();
        match tag {
            "P" => {
                self.keys.entry(key).or_insert((Expect::Present, Mark::No));
            }
            "I" => {
                if let Some((e, _)) = self.keys.get_mut(&key) {
                    *e = Expect::Either;
                }
            }
            "D" => {
                self.keys.insert(key, (Expect::Absent, Mark::No));
            }
            "T" | "M" => {
                let mark = if tag == "T" { Mark::Maybe } else { Mark::Yes };
                if let Some((Expect::Present | Expect::Either, m)) = self.keys.get_mut(&key) {
                    *m = (*m).max(mark);
                }
            }
            _ => {}
        }
    }

    /// The keys and their expectations.
    pub fn keys(&self) -> impl Iterator<Item = (&str, Expect, Mark)> {
        self.keys.iter().map(|(k, (e, m))| (k.as_str(), *e, *m))
    }

    /// Keys acknowledged as present.
    pub fn present(&self) -> usize {
        self.keys
            .values()
            .filter(|(e, _)| *e == Expect::Present)
            .count()
    }

    /// Serialises the ledger (one `P`/`I`/`D` line per key).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (k, (e, m)) in &self.keys {
            let mut line = |tag: &str| {
                out.push_str(tag);
                out.push(' ');
                out.push_str(k);
                out.push('\n');
            };
            match e {
                Expect::Present | Expect::Either => line("P"),
                Expect::Absent => line("D"),
            }
            match m {
                Mark::No => {}
                Mark::Maybe => line("T"),
                Mark::Yes => line("M"),
            }
            if *e == Expect::Either {
                line("I");
            }
        }
        out
    }
}

/// The item the writer stores under `key`: its value is derived from the key, so any
/// item read back can be checked on its own.
pub fn item_for(key: &str) -> Item {
    let mut item = Item::new();
    item.insert("id".into(), Value::S(key.to_owned()));
    item.insert("payload".into(), Value::B(payload_for(key)));
    item
}

/// The attributes the writer sets on `key`'s item to mark it: derived from the key too.
pub fn mark_for(key: &str) -> Item {
    let mut item = Item::new();
    item.insert("mark".into(), Value::S(format!("m-{key}")));
    item
}

/// `key`'s item once marked.
pub fn marked_item_for(key: &str) -> Item {
    let mut item = item_for(key);
    item.extend(mark_for(key));
    item
}

/// The payload bytes of `key`'s item (length 16..=1040, varying per key).
pub fn payload_for(key: &str) -> Vec<u8> {
    let h = crc32c_of(key.as_bytes());
    let len = 16 + (h as usize % 1025);
    (0..len).map(|i| (h as usize + i * 31) as u8).collect()
}

fn crc32c_of(b: &[u8]) -> u32 {
    // A stable 32-bit hash without a dependency: FNV-1a.
    b.iter().fold(0x811C_9DC5u32, |h, &x| {
        (h ^ u32::from(x)).wrapping_mul(0x0100_0193)
    })
}
