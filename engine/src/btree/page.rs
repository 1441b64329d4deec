//! The on-disk page: a fixed-size block with a checksummed header, read and written whole
//! with direct I/O.
//!
//! Every page starts with a [`PageHeader`]; the crc32c covers every byte after the checksum
//! field, so a torn, misdirected or bit-flipped page is detected before it is used.
//!
//! ```text
//! page (PAGE_BYTES = 16384)
//! +-------+------+-----+-------+---------+-----+------+-----+------+------+
//! | crc32 | kind | ver | count | page_id | lsn | next | aux | skip | rsvd |
//! | u32   | u8   | u8  | u16   | u64     | u64 | u64  | u32 | u16  | u16  |
//! +-------+------+-----+-------+---------+-----+------+-----+------+------+
//! 0       4      5     6       8         16    24     32    36     38     40
//!
//! sorted page (leaf, branch) body:
//! +------------------------+ ...free... +---------------------------------+
//! | slot[0..count]: 6 B    |            | cells, packed towards the end   |
//! +------------------------+            +---------------------------------+
//! 40                       40+6*count                              PAGE_BYTES
//! slot: cell offset u16 | key head u32
//! cell: key_len u16 | value_len u16 | key | value
//!
//! overflow page body: aux = bytes used, next = next overflow page (0 = last)
//! freelist page body: count page ids (u64 LE), next = next freelist page (0 = last)
//! ```
//!
//! Sorted pages hold their cells in strictly ascending key order: slot `i` points at the
//! `i`-th smallest key, and cells are packed against the end in slot order, so a page
//! never fragments.
//!
//! Every key of a sorted page starts with the same `skip` bytes: the common prefix of its
//! first and last keys, kept in the header. A slot carries its key's **head**, the four
//! bytes after that prefix read as a big-endian number (zero-padded past the key's end).
//! Heads ascend with the keys, so [`search`] compares heads inside the slot array and
//! reads a key only where the heads are equal: a descent touches the few cache lines of
//! the slot array instead of a key in a different line at every probe.
//!
//! An edit that fits is made in place ([`splice_in_place`]: the cells
//! after it move as one block); one that does not fit builds two pages anew from a
//! [`Splice`] of the old one ([`build`]). Both write the same bytes for the same cells.
#![deny(clippy::indexing_slicing)]

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Bytes in one page, the unit of every B-tree read and write.
pub const PAGE_BYTES: usize = 16384;
/// The direct-I/O alignment unit of the disk.
pub const SECTOR_BYTES: usize = 4096;
const _: () = assert!(PAGE_BYTES % SECTOR_BYTES == 0);
/// Bytes of the page header.
pub const HEADER_BYTES: usize = 40;
const _: () = assert!(core::mem::size_of::<PageHeader>() == HEADER_BYTES);
/// Bytes of one slot in a sorted page: the cell's offset (u16) and the key's head (u32).
const SLOT_BYTES: usize = 6;
/// Bytes of a slot's cell offset, the head follows it.
const OFFSET_BYTES: usize = 2;
/// Bytes of a key's head, the part of it a slot carries.
const HEAD_BYTES: usize = 4;
const _: () = assert!(SLOT_BYTES == OFFSET_BYTES + HEAD_BYTES);
/// Bytes of a cell's fixed prefix (key length, value length).
const CELL_PREFIX_BYTES: usize = 4;
/// The most cells a sorted page can hold (all keys and values empty).
const CELLS_MAX: usize = (PAGE_BYTES - HEADER_BYTES) / (SLOT_BYTES + CELL_PREFIX_BYTES);
/// The largest cell (prefix + key + value) a sorted page accepts. A quarter of the usable
/// space guarantees that any page plus one more cell splits into two pages that each fit.
pub const CELL_BYTES_MAX: usize = (PAGE_BYTES - HEADER_BYTES) / 4 - SLOT_BYTES;
/// Payload bytes one overflow page carries.
pub const OVERFLOW_PAYLOAD_BYTES: usize = PAGE_BYTES - HEADER_BYTES;
/// Page ids one freelist page carries.
pub const FREELIST_IDS_MAX: usize = (PAGE_BYTES - HEADER_BYTES) / 8;
/// The page format version written in every header (2: slots carry key heads).
pub const PAGE_VERSION: u8 = 2;
const _: () = assert!(PAGE_BYTES <= u16::MAX as usize + 1);

/// A page number within one B-tree file; page `n` lives at byte `n * PAGE_BYTES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageId(pub u64);

impl core::fmt::Display for PageId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "page {}", self.0)
    }
}

/// What a page holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageKind {
    /// Sorted keys with their values (or overflow references).
    Leaf = 1,
    /// Sorted separator keys with child page ids.
    Branch = 2,
    /// A piece of a value too large for a leaf cell.
    Overflow = 3,
    /// Free page ids saved by a checkpoint.
    Freelist = 4,
}

impl PageKind {
    /// Decodes the kind byte; an unknown tag is corruption, never a default.
    pub fn from_u8(tag: u8) -> Option<PageKind> {
        match tag {
            1 => Some(PageKind::Leaf),
            2 => Some(PageKind::Branch),
            3 => Some(PageKind::Overflow),
            4 => Some(PageKind::Freelist),
            _ => None,
        }
    }
}

/// The fixed header at the start of every page.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct PageHeader {
    /// crc32c of bytes `4..PAGE_BYTES`.
    pub crc32c: U32,
    /// [`PageKind`] tag.
    pub kind: u8,
    /// [`PAGE_VERSION`].
    pub version: u8,
    /// Cells in a sorted page, ids in a freelist page.
    pub count: U16,
    /// The page's own id: a page read from the wrong place is detected.
    pub page_id: U64,
    /// The highest LSN of an edit to the page since it entered its cache frame.
    pub lsn: U64,
    /// Next page of an overflow or freelist chain; 0 ends it.
    pub next: U64,
    /// Overflow: payload bytes used.
    pub aux: U32,
    /// Sorted: the length of the prefix all its keys share (that of its first and last).
    pub skip: U16,
    /// Zero.
    pub reserved: U16,
}

/// Why a page could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PageError {
    /// The checksum does not match the contents.
    #[error("{page}: crc32c mismatch (stored {expected:#010x}, computed {actual:#010x})")]
    Checksum {
        /// The page read.
        page: PageId,
        /// The crc32c stored in the header.
        expected: u32,
        /// The crc32c computed over the contents.
        actual: u32,
    },
    /// The checksum matches but the page says it is another page (a misdirected write).
    #[error("{page}: header names page {found}")]
    Misplaced {
        /// The page read.
        page: PageId,
        /// The id in its header.
        found: u64,
    },
    /// The page has an unknown kind or version, or a layout that breaks its invariants.
    #[error("{page}: malformed page: {reason}")]
    Malformed {
        /// The page read.
        page: PageId,
        /// What is wrong.
        reason: &'static str,
    },
}

fn header(page: &[u8]) -> &PageHeader {
    // A page buffer is always PAGE_BYTES long, so the prefix exists.
    match PageHeader::ref_from_prefix(page) {
        Ok((h, _)) => h,
        Err(_) => panic!(
            "page buffer of {} bytes is shorter than a header",
            page.len()
        ),
    }
}

fn header_mut(page: &mut [u8]) -> &mut PageHeader {
    let len = page.len();
    match PageHeader::mut_from_prefix(page) {
        Ok((h, _)) => h,
        Err(_) => panic!("page buffer of {len} bytes is shorter than a header"),
    }
}

/// The page's kind (valid once the page passed [`verify`]).
pub fn kind(page: &[u8]) -> Option<PageKind> {
    PageKind::from_u8(header(page).kind)
}

/// Cells in a sorted page, or ids in a freelist page.
pub fn count(page: &[u8]) -> usize {
    usize::from(header(page).count.get())
}

/// The next page of an overflow or freelist chain (0 ends it).
pub fn next(page: &[u8]) -> u64 {
    header(page).next.get()
}

/// Computes the checksum and stamps id and LSN: the last step before a page is written.
pub fn seal(page: &mut [u8], page_id: PageId, lsn: u64) {
    assert_eq!(page.len(), PAGE_BYTES, "page buffer size");
    {
        let h = header_mut(page);
        h.page_id.set(page_id.0);
        h.lsn.set(lsn);
        h.version = PAGE_VERSION;
    }
    let crc = crc32c::crc32c(page.get(4..).unwrap_or_default());
    header_mut(page).crc32c.set(crc);
}

/// Checks a page read from disk: checksum, id, kind, version and (for sorted pages) layout.
pub fn verify(page: &[u8], page_id: PageId) -> Result<PageKind, PageError> {
    assert_eq!(page.len(), PAGE_BYTES, "page buffer size");
    let h = header(page);
    let actual = crc32c::crc32c(page.get(4..).unwrap_or_default());
    if h.crc32c.get() != actual {
        return Err(PageError::Checksum {
            page: page_id,
            expected: h.crc32c.get(),
            actual,
        });
    }
    if h.page_id.get() != page_id.0 {
        return Err(PageError::Misplaced {
            page: page_id,
            found: h.page_id.get(),
        });
    }
    let malformed = |reason| PageError::Malformed {
        page: page_id,
        reason,
    };
    if h.version != PAGE_VERSION {
        return Err(malformed(
            "page format version other than this build's (2); a data directory written \
             by another keel version",
        ));
    }
    let kind = PageKind::from_u8(h.kind).ok_or_else(|| malformed("unknown page kind"))?;
    match kind {
        PageKind::Leaf | PageKind::Branch => verify_sorted(page).map_err(malformed)?,
        PageKind::Overflow => {
            if h.aux.get() as usize > OVERFLOW_PAYLOAD_BYTES {
                return Err(malformed("overflow length past the page"));
            }
        }
        PageKind::Freelist => {
            if usize::from(h.count.get()) > FREELIST_IDS_MAX {
                return Err(malformed("freelist count past the page"));
            }
        }
    }
    Ok(kind)
}

/// Checks that every slot points at a cell inside the page and that keys ascend strictly,
/// so that the accessors below may index without further checks.
fn verify_sorted(page: &[u8]) -> Result<(), &'static str> {
    let n = count(page);
    let slots_end = HEADER_BYTES + n * SLOT_BYTES;
    if slots_end > PAGE_BYTES {
        return Err("slot array past the page");
    }
    let skip = skip(page);
    let mut first: Option<&[u8]> = None;
    let mut previous: Option<&[u8]> = None;
    let mut packed_end = PAGE_BYTES;
    for i in 0..n {
        let at = HEADER_BYTES + i * SLOT_BYTES;
        let off = read_u16(page, at).ok_or("slot unreadable")?;
        if off < slots_end {
            return Err("cell overlaps the slots");
        }
        let key_len = read_u16(page, off).ok_or("cell prefix past the page")?;
        let value_len = read_u16(page, off + 2).ok_or("cell prefix past the page")?;
        let key_start = off + CELL_PREFIX_BYTES;
        let end = key_start + key_len + value_len;
        if end > PAGE_BYTES {
            return Err("cell past the page");
        }
        // `build` packs cells against the end in slot order; `used_bytes` relies on it.
        if end != packed_end {
            return Err("cells not packed in slot order");
        }
        packed_end = off;
        let key = page
            .get(key_start..key_start + key_len)
            .ok_or("key past the page")?;
        if let Some(p) = previous {
            if p >= key {
                return Err("keys out of order");
            }
        }
        if head_at(page, i) != head_of(key, skip) {
            return Err("slot key head wrong");
        }
        first = first.or(Some(key));
        previous = Some(key);
    }
    let shared = match (first, previous) {
        (Some(first), Some(last)) => common_prefix(first, last),
        _ => 0,
    };
    if skip != shared {
        return Err("shared key prefix length wrong");
    }
    Ok(())
}

fn read_u16(page: &[u8], at: usize) -> Option<usize> {
    let b = page.get(at..at + 2)?;
    Some(usize::from(u16::from_le_bytes([*b.first()?, *b.get(1)?])))
}

/// The `i`-th cell of a verified sorted page.
pub fn cell(page: &[u8], i: usize) -> (&[u8], &[u8]) {
    assert!(i < count(page), "cell {i} of {}", count(page));
    let off = read_u16(page, HEADER_BYTES + i * SLOT_BYTES).unwrap_or(0);
    let key_len = read_u16(page, off).unwrap_or(0);
    let value_len = read_u16(page, off + 2).unwrap_or(0);
    let key_start = off + CELL_PREFIX_BYTES;
    let key = page.get(key_start..key_start + key_len).unwrap_or_default();
    let value = page
        .get(key_start + key_len..key_start + key_len + value_len)
        .unwrap_or_default();
    (key, value)
}

/// The key of cell `i` (`i` below the count) of a verified sorted page.
fn key_at(page: &[u8], i: usize) -> &[u8] {
    let off = read_u16(page, HEADER_BYTES + i * SLOT_BYTES).unwrap_or(0);
    let key_len = read_u16(page, off).unwrap_or(0);
    let start = off + CELL_PREFIX_BYTES;
    page.get(start..start + key_len).unwrap_or_default()
}

/// The length of the prefix shared by every key of a verified sorted page.
fn skip(page: &[u8]) -> usize {
    usize::from(header(page).skip.get())
}

/// The shared prefix length a sorted page of `n` cells (keys in place) should have: that
/// of its first and last keys (every key between shares it), 0 when it is empty.
fn skip_of(page: &[u8], n: usize) -> usize {
    match n.checked_sub(1) {
        None => 0,
        Some(last) => common_prefix(key_at(page, 0), key_at(page, last)),
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The head of `key` in a page whose keys share `skip` bytes: the next [`HEAD_BYTES`] as a
/// big-endian number, zero-padded. For keys that share those bytes, `a < b` implies
/// `head(a) <= head(b)`.
fn head_of(key: &[u8], skip: usize) -> u32 {
    let mut b = [0u8; HEAD_BYTES];
    let tail = key.get(skip..).unwrap_or_default();
    let n = tail.len().min(HEAD_BYTES);
    if let (Some(to), Some(from)) = (b.get_mut(..n), tail.get(..n)) {
        to.copy_from_slice(from);
    }
    u32::from_be_bytes(b)
}

/// The key head slot `i` carries.
fn head_at(page: &[u8], i: usize) -> u32 {
    let at = HEADER_BYTES + i * SLOT_BYTES + OFFSET_BYTES;
    page.get(at..at + HEAD_BYTES)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// Binary search of a sorted page: `Ok(i)` where cell `i` has `key`, `Err(i)` where it would go.
///
/// The heads in the slots place the key, and a cell's key is read only where heads tie.
/// Heads order only keys within the page's shared prefix: a key found equal is within
/// it; for one not found, a neighbour's prefix is compared (a key outside the prefix goes
/// before or after every cell). That neighbour is the cell a caller reads next (a branch's
/// child, an insert's place), so a search whose heads decide reads no other key.
pub fn search(page: &[u8], key: &[u8]) -> Result<usize, usize> {
    use core::cmp::Ordering;
    let n = count(page);
    if n == 0 {
        return Err(0);
    }
    let skip = skip(page);
    let head = head_of(key, skip);
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let order = match head_at(page, mid).cmp(&head) {
            Ordering::Equal => key_at(page, mid).cmp(key),
            unequal => unequal,
        };
        match order {
            Ordering::Less => lo = mid + 1,
            Ordering::Greater => hi = mid,
            Ordering::Equal => return Ok(mid),
        }
    }
    let neighbour = key_at(page, lo.saturating_sub(1));
    let shared = neighbour.get(..skip).unwrap_or_default();
    match key.get(..skip) {
        Some(prefix) if prefix == shared => Err(lo),
        // Shorter than the prefix or different within it: below or above every key.
        _ if key < shared => Err(0),
        _ => Err(n),
    }
}

/// Sets the heads of slots `heads` of a sorted page of `n` cells in place, after the
/// shared prefix length if `ends` (the first or last key may have changed): all heads
/// when that length moved.
fn set_skip_and_heads(page: &mut [u8], n: usize, heads: core::ops::Range<usize>, ends: bool) {
    let old = self::skip(page);
    let skip = if ends { skip_of(page, n) } else { old };
    let all = skip != old;
    header_mut(page).skip.set(skip as u16);
    for i in if all { 0..n } else { heads } {
        let head = head_of(key_at(page, i), skip);
        let at = HEADER_BYTES + i * SLOT_BYTES + OFFSET_BYTES;
        if let Some(h) = page.get_mut(at..at + HEAD_BYTES) {
            h.copy_from_slice(&head.to_le_bytes());
        }
    }
}

/// Whether a cell with a key of `key_bytes` and a value of `value_bytes` fits the cell limit.
pub const fn cell_bytes_max_fits(key_bytes: usize, value_bytes: usize) -> bool {
    SLOT_BYTES + CELL_PREFIX_BYTES + key_bytes + value_bytes <= CELL_BYTES_MAX
}

/// Bytes the cells of a verified sorted page take, slots included (header excluded).
pub fn used_bytes(page: &[u8]) -> usize {
    let n = count(page);
    // Cells are packed against the end in slot order (checked by `verify`), so the last
    // slot's cell is the lowest.
    let lowest = match n.checked_sub(1) {
        Some(last) => read_u16(page, HEADER_BYTES + last * SLOT_BYTES).unwrap_or(PAGE_BYTES),
        None => PAGE_BYTES,
    };
    n * SLOT_BYTES + (PAGE_BYTES - lowest)
}

/// Bytes a cell takes in a sorted page, slot included.
pub fn cell_bytes(key: &[u8], value: &[u8]) -> usize {
    SLOT_BYTES + CELL_PREFIX_BYTES + key.len() + value.len()
}

/// The cells of a sorted page with some replaced: cells `at..at + removed` of `page` give
/// way to `inserted`. An edit of a page is described by one splice and built by [`build`].
pub struct Splice<'a> {
    /// The page edited (verified sorted), or `None` for a page built from nothing.
    pub page: Option<&'a [u8]>,
    /// Where the edit starts.
    pub at: usize,
    /// Cells of the old page dropped from `at`.
    pub removed: usize,
    /// Cells put in their place, in order.
    pub inserted: &'a [(&'a [u8], &'a [u8])],
}

impl<'a> Splice<'a> {
    /// Cells after the edit.
    pub fn len(&self) -> usize {
        let old = self.page.map_or(0, count);
        old - self.removed + self.inserted.len()
    }

    /// Whether the edit leaves no cell.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `j`-th cell after the edit.
    pub fn get(&self, j: usize) -> (&'a [u8], &'a [u8]) {
        if j < self.at {
            return cell(self.page.unwrap_or_default(), j);
        }
        let k = j - self.at;
        match self.inserted.get(k) {
            Some(c) => *c,
            None => cell(
                self.page.unwrap_or_default(),
                j - self.inserted.len() + self.removed,
            ),
        }
    }

    /// Bytes all cells after the edit take in a page, header included. O(edit): the old
    /// page's share comes from its layout (cells are packed against the end by
    /// [`build`]), not from a walk over its cells.
    pub fn total_bytes(&self) -> usize {
        let old = self.page.map_or(0, used_bytes);
        let removed: usize = (self.at..self.at + self.removed)
            .map(|j| {
                let (k, v) = cell(self.page.unwrap_or_default(), j);
                cell_bytes(k, v)
            })
            .sum();
        let inserted: usize = self.inserted.iter().map(|(k, v)| cell_bytes(k, v)).sum();
        let total = HEADER_BYTES + old - removed + inserted;
        debug_assert_eq!(total, self.bytes(0..self.len()));
        total
    }

    /// Bytes the cells `range` take in a page, header included.
    pub fn bytes(&self, range: core::ops::Range<usize>) -> usize {
        HEADER_BYTES
            + range
                .map(|j| {
                    let (k, v) = self.get(j);
                    cell_bytes(k, v)
                })
                .sum::<usize>()
    }

    /// Where to cut the cells in two pages of about equal bytes, each fitting a page.
    pub fn split_point(&self) -> usize {
        let n = self.len();
        assert!(n >= 2, "split of {n} cells");
        let total = self.bytes(0..n) - HEADER_BYTES;
        let mut acc = 0;
        for j in 0..n {
            let (k, v) = self.get(j);
            let c = cell_bytes(k, v);
            if acc + c > total / 2 && j > 0 {
                return j;
            }
            acc += c;
        }
        n - 1
    }
}

/// Writes the cells `range` of `splice` into `out` as a fresh sorted page of `kind`.
/// `out` must not be the page the splice reads from.
pub fn build(out: &mut [u8], kind: PageKind, splice: &Splice<'_>, range: core::ops::Range<usize>) {
    assert_eq!(out.len(), PAGE_BYTES, "page buffer size");
    assert!(matches!(kind, PageKind::Leaf | PageKind::Branch));
    let n = range.len();
    let need = splice.bytes(range.clone());
    assert!(need <= PAGE_BYTES, "page overfull: {need} bytes");
    // Zero the header and the slot area; the gap below the cells is zeroed after them.
    if let Some(head) = out.get_mut(..HEADER_BYTES + range.len() * SLOT_BYTES) {
        head.fill(0);
    }
    {
        let h = header_mut(out);
        h.kind = kind as u8;
        h.count.set(u16::try_from(n).unwrap_or(u16::MAX));
    }
    let mut end = PAGE_BYTES;
    for (i, j) in range.enumerate() {
        let (k, v) = splice.get(j);
        let len = CELL_PREFIX_BYTES + k.len() + v.len();
        let start = end - len;
        let cell_out = out.get_mut(start..end).unwrap_or_default();
        let (prefix, rest) = cell_out.split_at_mut(CELL_PREFIX_BYTES);
        let (kl, vl) = prefix.split_at_mut(2);
        kl.copy_from_slice(&(k.len() as u16).to_le_bytes());
        vl.copy_from_slice(&(v.len() as u16).to_le_bytes());
        let (kd, vd) = rest.split_at_mut(k.len());
        kd.copy_from_slice(k);
        vd.copy_from_slice(v);
        set_slot(out, HEADER_BYTES + i * SLOT_BYTES, start);
        end = start;
    }
    // The free gap holds zeros, so that a page's bytes depend only on its cells.
    if let Some(gap) = out.get_mut(HEADER_BYTES + n * SLOT_BYTES..end) {
        gap.fill(0);
    }
    set_skip_and_heads(out, n, 0..n, true);
    debug_assert!(verify_sorted(out).is_ok());
}

/// Edits a verified sorted page in place: cells `at..at + removed` give way to `inserted`
/// (which must keep the keys ascending). The cells before the edit keep their bytes, the
/// cells after it move as one block (a `memmove`), and only the inserted cells are
/// encoded, so an edit costs the bytes it moves instead of a whole page. The page stays
/// packed with a zero gap: its bytes are exactly those [`build`] writes for the same
/// cells (header fields other than kind, count and skip are left as they are; [`seal`]
/// rewrites them). Returns false, with the page untouched, if the result does not fit.
pub fn splice_in_place(
    page: &mut [u8],
    at: usize,
    removed: usize,
    inserted: &[(&[u8], &[u8])],
) -> bool {
    assert_eq!(page.len(), PAGE_BYTES, "page buffer size");
    let n = count(page);
    assert!(at + removed <= n, "splice {at}+{removed} of {n} cells");
    let slot_at = |i: usize| HEADER_BYTES + i * SLOT_BYTES;
    let slot = |page: &[u8], i: usize| read_u16(page, slot_at(i)).unwrap_or(PAGE_BYTES);
    // Cells are packed against the end in slot order: cell i ends where cell i-1 starts.
    let cell_end = |page: &[u8], i: usize| {
        if i == 0 {
            PAGE_BYTES
        } else {
            slot(page, i - 1)
        }
    };
    // [mid, hi): the removed cells; [lo, mid): the cells after the edit.
    let hi = cell_end(page, at);
    let mid = cell_end(page, at + removed);
    let lo = cell_end(page, n);
    let inserted_bytes: usize = inserted
        .iter()
        .map(|(k, v)| CELL_PREFIX_BYTES + k.len() + v.len())
        .sum();
    let n_new = n - removed + inserted.len();
    let Some(new_lo) = (lo + (hi - mid)).checked_sub(inserted_bytes) else {
        return false;
    };
    if n_new > CELLS_MAX || new_lo < slot_at(n_new) {
        return false;
    }
    let (after_old, after_new) = (at + removed, at + inserted.len());
    // Move the slots and the cells after the edit; whichever area shrinks moves first, so
    // that neither move overwrites bytes the other still has to read.
    // (A same-size replacement, the common overwrite, moves nothing.)
    let move_slots = |page: &mut [u8]| {
        if after_old != after_new {
            page.copy_within(slot_at(after_old)..slot_at(n), slot_at(after_new));
        }
    };
    let move_cells = |page: &mut [u8]| {
        if new_lo != lo {
            page.copy_within(lo..mid, new_lo);
        }
    };
    if n_new < n {
        move_slots(page);
        move_cells(page);
    } else {
        move_cells(page);
        move_slots(page);
    }
    if new_lo != lo {
        for i in after_new..n_new {
            let moved = slot(page, i) - lo + new_lo;
            set_slot(page, slot_at(i), moved);
        }
    }
    let mut end = hi;
    for (m, (k, v)) in inserted.iter().enumerate() {
        let start = end - (CELL_PREFIX_BYTES + k.len() + v.len());
        if let Some(c) = page.get_mut(start..end) {
            write_cell(c, k, v);
        }
        set_slot(page, slot_at(at + m), start);
        end = start;
    }
    // The gap was zero; zero what it gained: old slots past the new count, old cells
    // below the new lowest cell.
    let gap_lo = slot_at(n_new);
    if let Some(freed) = page.get_mut(gap_lo..slot_at(n).min(new_lo)) {
        freed.fill(0);
    }
    if let Some(freed) = page.get_mut(lo.max(gap_lo)..new_lo) {
        freed.fill(0);
    }
    header_mut(page).count.set(n_new as u16);
    // An edit strictly inside the page keeps its first and last keys, so its prefix.
    let ends = at == 0 || after_old == n;
    set_skip_and_heads(page, n_new, at..after_new, ends);
    debug_assert_eq!(verify_sorted(page), Ok(()));
    true
}

/// Sets the cell offset of the slot at byte `at` ([`set_skip_and_heads`] sets its head).
fn set_slot(page: &mut [u8], at: usize, offset: usize) {
    if let Some(s) = page.get_mut(at..at + OFFSET_BYTES) {
        s.copy_from_slice(&(offset as u16).to_le_bytes());
    }
}

fn write_cell(cell_out: &mut [u8], k: &[u8], v: &[u8]) {
    let (prefix, rest) = cell_out.split_at_mut(CELL_PREFIX_BYTES);
    let (kl, vl) = prefix.split_at_mut(2);
    kl.copy_from_slice(&(k.len() as u16).to_le_bytes());
    vl.copy_from_slice(&(v.len() as u16).to_le_bytes());
    let (kd, vd) = rest.split_at_mut(k.len());
    kd.copy_from_slice(k);
    vd.copy_from_slice(v);
}

/// Writes an overflow page holding `payload`, linked to `next` (0 ends the chain).
pub fn build_overflow(out: &mut [u8], payload: &[u8], next: u64) {
    assert_eq!(out.len(), PAGE_BYTES, "page buffer size");
    assert!(payload.len() <= OVERFLOW_PAYLOAD_BYTES, "overflow payload");
    out.fill(0);
    {
        let h = header_mut(out);
        h.kind = PageKind::Overflow as u8;
        h.next.set(next);
        h.aux.set(payload.len() as u32);
    }
    if let Some(body) = out.get_mut(HEADER_BYTES..HEADER_BYTES + payload.len()) {
        body.copy_from_slice(payload);
    }
}

/// The payload of a verified overflow page.
pub fn overflow_payload(page: &[u8]) -> &[u8] {
    let used = header(page).aux.get() as usize;
    page.get(HEADER_BYTES..HEADER_BYTES + used)
        .unwrap_or_default()
}

/// Writes a freelist page holding `ids`, linked to `next`.
pub fn build_freelist(out: &mut [u8], ids: &[u64], next: u64) {
    assert_eq!(out.len(), PAGE_BYTES, "page buffer size");
    assert!(ids.len() <= FREELIST_IDS_MAX, "freelist ids");
    out.fill(0);
    {
        let h = header_mut(out);
        h.kind = PageKind::Freelist as u8;
        h.next.set(next);
        h.count.set(ids.len() as u16);
    }
    for (i, id) in ids.iter().enumerate() {
        let at = HEADER_BYTES + i * 8;
        if let Some(s) = out.get_mut(at..at + 8) {
            s.copy_from_slice(&id.to_le_bytes());
        }
    }
}

/// The ids of a verified freelist page.
pub fn freelist_ids(page: &[u8]) -> impl Iterator<Item = u64> + '_ {
    (0..count(page)).map(move |i| {
        let at = HEADER_BYTES + i * 8;
        page.get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_le_bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_of(cells: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = vec![0u8; PAGE_BYTES];
        let s = Splice {
            page: None,
            at: 0,
            removed: 0,
            inserted: cells,
        };
        build(&mut out, PageKind::Leaf, &s, 0..s.len());
        seal(&mut out, PageId(7), 3);
        out
    }

    #[test]
    fn sealed_page_verifies_and_reads_back() {
        let p = page_of(&[(b"a", b"1"), (b"b", b"22"), (b"c", b"")]);
        assert_eq!(verify(&p, PageId(7)), Ok(PageKind::Leaf));
        assert_eq!(cell(&p, 1), (&b"b"[..], &b"22"[..]));
        assert_eq!(search(&p, b"c"), Ok(2));
        assert_eq!(search(&p, b"bb"), Err(2));
        assert_eq!(search(&p, b""), Err(0));
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let p = page_of(&[(b"key", b"value")]);
        for bit in (0..PAGE_BYTES * 8).step_by(97) {
            let mut q = p.clone();
            q[bit / 8] ^= 1 << (bit % 8);
            assert!(verify(&q, PageId(7)).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn misplaced_page_is_detected() {
        let p = page_of(&[(b"k", b"v")]);
        assert_eq!(
            verify(&p, PageId(8)),
            Err(PageError::Misplaced {
                page: PageId(8),
                found: 7
            })
        );
    }

    #[test]
    fn splice_replaces_and_inserts() {
        let p = page_of(&[(b"a", b"1"), (b"c", b"3"), (b"e", b"5")]);
        let ins: [(&[u8], &[u8]); 2] = [(b"c", b"33"), (b"d", b"4")];
        let s = Splice {
            page: Some(&p),
            at: 1,
            removed: 1,
            inserted: &ins,
        };
        let got: Vec<_> = (0..s.len()).map(|j| s.get(j)).collect();
        let want: Vec<(&[u8], &[u8])> =
            vec![(b"a", b"1"), (b"c", b"33"), (b"d", b"4"), (b"e", b"5")];
        assert_eq!(got, want);
    }

    #[test]
    fn split_of_a_full_page_gives_two_pages_that_fit() {
        let big = vec![7u8; CELL_BYTES_MAX - 6 - 8];
        let keys: Vec<[u8; 8]> = (0u64..4).map(|i| i.to_be_bytes()).collect();
        let cells: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &big[..])).collect();
        let s = Splice {
            page: None,
            at: 0,
            removed: 0,
            inserted: &cells,
        };
        let cut = s.split_point();
        assert!(s.bytes(0..cut) <= PAGE_BYTES);
        assert!(s.bytes(cut..s.len()) <= PAGE_BYTES);
    }

    proptest::proptest! {
        /// The block-copy edit builds exactly the page the cell-by-cell reference builds.
        #[test]
        fn spliced_build_matches_the_reference(
            keys in proptest::collection::btree_set(proptest::collection::vec(0u8..4, 1..6), 0..60),
            value_len in 0usize..40,
            at_frac in 0.0f64..1.0,
            removed in 0usize..3,
            ins in proptest::collection::vec(0u8..255, 0..3),
        ) {
            let keys: Vec<Vec<u8>> = keys.into_iter().collect();
            let value = vec![9u8; value_len];
            let cells: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &value[..])).collect();
            let old = page_of(&cells);
            let at = ((keys.len() as f64) * at_frac) as usize;
            let removed = removed.min(keys.len() - at);
            // Inserted keys that keep the order: between the neighbours of the edit.
            let lo = if at == 0 { vec![] } else { keys[at - 1].clone() };
            let mut new_keys: Vec<Vec<u8>> = Vec::new();
            for (m, b) in ins.iter().enumerate() {
                let mut k = lo.clone();
                k.push(4 + m as u8);
                k.push(*b);
                new_keys.push(k);
            }
            if let Some(next) = keys.get(at + removed) {
                new_keys.retain(|k| k < next);
            }
            let inserted: Vec<(&[u8], &[u8])> =
                new_keys.iter().map(|k| (&k[..], &b"new"[..])).collect();
            let s = Splice { page: Some(&old), at, removed, inserted: &inserted };
            let all: Vec<(&[u8], &[u8])> = (0..s.len()).map(|j| s.get(j)).collect();
            let reference_splice = Splice { page: None, at: 0, removed: 0, inserted: &all };
            let mut fast = vec![0xAAu8; PAGE_BYTES];
            let mut reference = vec![0u8; PAGE_BYTES];
            build(&mut fast, PageKind::Leaf, &s, 0..s.len());
            build(&mut reference, PageKind::Leaf, &reference_splice, 0..all.len());
            proptest::prop_assert_eq!(fast, reference);
        }
    }

    proptest::proptest! {
        /// An in-place edit gives byte for byte the page a rebuild gives (so the same
        /// cells, a valid crc once sealed, a zero gap), and its space accounting agrees;
        /// an edit that does not fit leaves the page untouched.
        #[test]
        fn in_place_edit_matches_a_rebuilt_page(
            keys in proptest::collection::btree_set(
                proptest::collection::vec(0u8..4, 1..6), 0..80),
            value_lens in proptest::collection::vec(0usize..400, 1..8),
            at_frac in 0.0f64..1.0,
            removed in 0usize..4,
            ins in proptest::collection::vec((0u8..255, 0usize..1200), 0..4),
        ) {
            let keys: Vec<Vec<u8>> = keys.into_iter().collect();
            let values: Vec<Vec<u8>> = (0..keys.len())
                .map(|i| vec![i as u8; value_lens[i % value_lens.len()]])
                .collect();
            // Keep the cells the page holds: drop from the end until they fit.
            let mut n = keys.len();
            let fits = |n: usize| {
                HEADER_BYTES
                    + (0..n).map(|i| cell_bytes(&keys[i], &values[i])).sum::<usize>()
                    <= PAGE_BYTES
            };
            while !fits(n) {
                n -= 1;
            }
            let cells: Vec<(&[u8], &[u8])> =
                (0..n).map(|i| (&keys[i][..], &values[i][..])).collect();
            let old = page_of(&cells);
            let at = ((n as f64) * at_frac) as usize;
            let removed = removed.min(n - at);
            let lo = if at == 0 { vec![] } else { keys[at - 1].clone() };
            let mut new_keys: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            for (m, (b, len)) in ins.iter().enumerate() {
                let mut k = lo.clone();
                k.push(4 + m as u8);
                k.push(*b);
                new_keys.push((k, vec![0xEE; *len]));
            }
            if let Some(next) = keys.get(at + removed).filter(|_| at + removed < n) {
                new_keys.retain(|(k, _)| k < next);
            }
            let inserted: Vec<(&[u8], &[u8])> =
                new_keys.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            let s = Splice { page: Some(&old), at, removed, inserted: &inserted };
            let mut edited = old.clone();
            let done = splice_in_place(&mut edited, at, removed, &inserted);
            proptest::prop_assert_eq!(done, s.total_bytes() <= PAGE_BYTES);
            if !done {
                proptest::prop_assert_eq!(edited, old);
                return Ok(());
            }
            let mut rebuilt = vec![0u8; PAGE_BYTES];
            build(&mut rebuilt, PageKind::Leaf, &s, 0..s.len());
            seal(&mut edited, PageId(7), 3);
            seal(&mut rebuilt, PageId(7), 3);
            proptest::prop_assert_eq!(verify(&edited, PageId(7)), Ok(PageKind::Leaf));
            proptest::prop_assert_eq!(used_bytes(&edited) + HEADER_BYTES, s.total_bytes());
            proptest::prop_assert_eq!(count(&edited), s.len());
            for j in 0..s.len() {
                proptest::prop_assert_eq!(cell(&edited, j), s.get(j));
            }
            proptest::prop_assert_eq!(edited, rebuilt);
        }
    }

    proptest::proptest! {
        /// Search by key heads agrees with a binary search of the sorted keys, for keys
        /// with a long shared prefix, equal heads, keys shorter than prefix + head, and
        /// probes outside the prefix; after an in-place insert anywhere (which can shorten
        /// the shared prefix and so rewrite every head) too, and the page is then byte
        /// for byte the one a rebuild gives.
        #[test]
        fn search_by_heads_agrees_with_a_sorted_list(
            prefix_len in proptest::sample::select(vec![0usize, 3, 9]),
            tails in proptest::collection::btree_set(
                proptest::collection::vec(0u8..3, 0..8), 1..80),
            probes in proptest::collection::vec(
                proptest::collection::vec(0u8..9, 0..14), 1..40),
            extra in proptest::collection::vec(0u8..9, 0..14),
        ) {
            let prefix = vec![7u8; prefix_len];
            let mut keys: Vec<Vec<u8>> = tails
                .iter()
                .map(|t| prefix.iter().chain(t).copied().collect())
                .collect();
            keys.sort();
            let cells: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &b"v"[..])).collect();
            let mut p = page_of(&cells);
            // Probes: the given ones, near-prefix ones, and every key.
            let mut all_probes: Vec<Vec<u8>> = probes.clone();
            all_probes.extend(probes.iter().map(|q| prefix.iter().chain(q).copied().collect()));
            all_probes.extend(keys.iter().cloned());
            all_probes.push(prefix.get(..prefix_len.saturating_sub(1)).unwrap_or(&[]).to_vec());
            for q in &all_probes {
                proptest::prop_assert_eq!(search(&p, q), keys.binary_search(q), "{:?}", q);
            }
            if let Err(at) = keys.binary_search(&extra) {
                proptest::prop_assert!(splice_in_place(&mut p, at, 0, &[(&extra, b"v")]));
                keys.insert(at, extra.clone());
                let cells: Vec<(&[u8], &[u8])> =
                    keys.iter().map(|k| (&k[..], &b"v"[..])).collect();
                seal(&mut p, PageId(7), 3);
                proptest::prop_assert_eq!(&p, &page_of(&cells));
                for q in &all_probes {
                    proptest::prop_assert_eq!(search(&p, q), keys.binary_search(q));
                }
            }
        }
    }

    #[test]
    fn a_wrong_head_or_prefix_length_is_malformed_even_with_a_good_checksum() {
        let p = page_of(&[(b"abcdef", b"1"), (b"abcdxy", b"2"), (b"abzz", b"3")]);
        assert_eq!(header(&p).skip.get(), 2);
        assert_eq!(head_at(&p, 2), u32::from_be_bytes(*b"zz\0\0"));
        let mut q = p.clone();
        q[HEADER_BYTES + 2] ^= 1; // slot 0's head
        seal(&mut q, PageId(7), 3);
        assert!(matches!(
            verify(&q, PageId(7)),
            Err(PageError::Malformed { .. })
        ));
        let mut q = p.clone();
        header_mut(&mut q).skip.set(1);
        seal(&mut q, PageId(7), 3);
        assert!(matches!(
            verify(&q, PageId(7)),
            Err(PageError::Malformed { .. })
        ));
        let mut q = p;
        header_mut(&mut q).version = 1;
        let crc = crc32c::crc32c(&q[4..]);
        header_mut(&mut q).crc32c.set(crc);
        assert!(matches!(
            verify(&q, PageId(7)),
            Err(PageError::Malformed { .. })
        ));
    }

    #[test]
    fn in_place_edits_fill_a_page_then_empty_it() {
        let mut p = page_of(&[]);
        let value = [5u8; 100];
        let mut n = 0u32;
        // Appends, inserts in front and overwrites until the page is full.
        loop {
            let key = (n.wrapping_mul(2_654_435_761) >> 8).to_be_bytes();
            let at = match search(&p, &key) {
                Ok(_) => break,
                Err(i) => i,
            };
            if !splice_in_place(&mut p, at, 0, &[(&key, &value)]) {
                break;
            }
            n += 1;
        }
        assert_eq!(count(&p), n as usize);
        assert!(PAGE_BYTES - HEADER_BYTES - used_bytes(&p) < cell_bytes(&[0; 4], &value));
        // Grow a value until it no longer fits: refused, page untouched.
        let before = p.clone();
        let key = cell(&p, 3).0.to_vec();
        let big = [1u8; 400];
        assert!(!splice_in_place(&mut p, 3, 1, &[(&key, &big)]));
        assert_eq!(p, before);
        while count(&p) > 0 {
            let at = count(&p) / 2;
            assert!(splice_in_place(&mut p, at, 1, &[]));
        }
        seal(&mut p, PageId(7), 3);
        assert_eq!(p, page_of(&[]));
    }

    #[test]
    fn freelist_and_overflow_round_trip() {
        let mut p = vec![0u8; PAGE_BYTES];
        build_freelist(&mut p, &[5, 9, 11], 42);
        seal(&mut p, PageId(3), 0);
        assert_eq!(verify(&p, PageId(3)), Ok(PageKind::Freelist));
        assert_eq!(freelist_ids(&p).collect::<Vec<_>>(), vec![5, 9, 11]);
        assert_eq!(next(&p), 42);
        build_overflow(&mut p, b"hello", 0);
        seal(&mut p, PageId(4), 0);
        assert_eq!(verify(&p, PageId(4)), Ok(PageKind::Overflow));
        assert_eq!(overflow_payload(&p), b"hello");
    }
}
