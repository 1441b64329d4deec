//! The Redis serialisation protocol (RESP2): command encoding and an incremental reply
//! decoder. Pure: bytes in, values out.
//!
//! A command is an array of bulk strings: `*<n>\r\n` then `$<len>\r\n<bytes>\r\n` per
//! argument. A reply is one of `+simple\r\n`, `-error\r\n`, `:integer\r\n`,
//! `$<len>\r\n<bytes>\r\n` (`$-1` is nil) or `*<n>\r\n` followed by `n` replies (`*-1` is
//! a nil array). The decoder returns `Ok(None)` until a whole reply is buffered; nesting
//! and lengths are bounded so a hostile peer cannot make it recurse or allocate without
//! limit.
#![deny(clippy::indexing_slicing)]

/// Deepest nesting of arrays accepted.
pub const DEPTH_MAX: usize = 8;
/// Longest bulk string accepted (Redis's own proto-max-bulk-len default is 512 MiB).
pub const BULK_BYTES_MAX: usize = 64 << 20;
/// Most elements in one array.
pub const ARRAY_LEN_MAX: usize = 1 << 20;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nfoo` or nil.
    Bulk(Option<Vec<u8>>),
    /// `*2 ...` or nil.
    Array(Option<Vec<Reply>>),
}

/// A reply that breaks the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad RESP at byte {offset}: {message}")]
pub struct RespError {
    /// Where in the buffer.
    pub offset: usize,
    /// What was wrong.
    pub message: String,
}

/// Appends the command `args` to `out`.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        out.extend_from_slice(arg.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn bad(offset: usize, message: impl Into<String>) -> RespError {
    RespError {
        offset,
        message: message.into(),
    }
}

/// The line starting at `at` (without `\r\n`) and the offset after it, if complete.
fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(at..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((rest.get(..end)?, at + end + 2))
}

fn integer(text: &[u8], at: usize) -> Result<i64, RespError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| bad(at, "not an integer"))
}

/// Decodes one reply at the start of `buf`: `Ok(None)` if it is not complete yet,
/// otherwise the reply and the bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Reply, usize)>, RespError> {
    decode_at(buf, 0, 0)
}

fn decode_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Reply, usize)>, RespError> {
    if depth > DEPTH_MAX {
        return Err(bad(at, "arrays nested too deep"));
    }
    let Some(&tag) = buf.get(at) else {
        return Ok(None);
    };
    let Some((text, next)) = line(buf, at + 1) else {
        return Ok(None);
    };
    let text_str = || String::from_utf8_lossy(text).into_owned();
    match tag {
        b'+' => Ok(Some((Reply::Simple(text_str()), next))),
        b'-' => Ok(Some((Reply::Error(text_str()), next))),
        b':' => Ok(Some((Reply::Integer(integer(text, at)?), next))),
        b'$' => {
            let len = integer(text, at)?;
            if len == -1 {
                return Ok(Some((Reply::Bulk(None), next)));
            }
            let len = usize::try_from(len).map_err(|_| bad(at, "negative bulk length"))?;
            if len > BULK_BYTES_MAX {
                return Err(bad(at, format!("bulk of {len} bytes")));
            }
            let Some(body) = buf.get(next..next + len) else {
                return Ok(None);
            };
            match buf.get(next + len..next + len + 2) {
                None => Ok(None),
                Some(b"\r\n") => Ok(Some((Reply::Bulk(Some(body.to_vec())), next + len + 2))),
                Some(_) => Err(bad(next + len, "bulk not followed by CRLF")),
            }
        }
        b'*' => {
            let n = integer(text, at)?;
            if n == -1 {
                return Ok(Some((Reply::Array(None), next)));
            }
            let n = usize::try_from(n).map_err(|_| bad(at, "negative array length"))?;
            if n > ARRAY_LEN_MAX {
                return Err(bad(at, format!("array of {n} elements")));
            }
            let mut items = Vec::with_capacity(n.min(64));
            let mut pos = next;
            for _ in 0..n {
                match decode_at(buf, pos, depth + 1)? {
                    None => return Ok(None),
                    Some((item, after)) => {
                        items.push(item);
                        pos = after;
                    }
                }
            }
            Ok(Some((Reply::Array(Some(items)), pos)))
        }
        other => Err(bad(at, format!("unknown reply type byte 0x{other:02x}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prng::Prng;

    #[test]
    fn commands_encode_as_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"HSET", b"user1", b"field0", b""]);
        assert_eq!(
            out,
            b"*4\r\n$4\r\nHSET\r\n$5\r\nuser1\r\n$6\r\nfield0\r\n$0\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn every_reply_type_decodes() {
        let cases: &[(&[u8], Reply)] = &[
            (b"+OK\r\n", Reply::Simple("OK".into())),
            (b"-ERR no\r\n", Reply::Error("ERR no".into())),
            (b":-42\r\n", Reply::Integer(-42)),
            (b"$3\r\na\r\n\r\n", Reply::Bulk(Some(b"a\r\n".to_vec()))),
            (b"$-1\r\n", Reply::Bulk(None)),
            (b"*-1\r\n", Reply::Array(None)),
            (b"*0\r\n", Reply::Array(Some(vec![]))),
            (
                b"*2\r\n$1\r\nx\r\n*1\r\n:1\r\n",
                Reply::Array(Some(vec![
                    Reply::Bulk(Some(b"x".to_vec())),
                    Reply::Array(Some(vec![Reply::Integer(1)])),
                ])),
            ),
        ];
        for (bytes, want) in cases {
            let (got, used) = decode(bytes).unwrap().unwrap();
            assert_eq!(&got, want);
            assert_eq!(used, bytes.len());
        }
    }

    #[test]
    fn every_proper_prefix_is_incomplete_and_pipelined_replies_split() {
        let stream = b"*2\r\n$5\r\nhello\r\n:7\r\n+OK\r\n$-1\r\n";
        for cut in 0..stream.len() {
            if let Some((_, used)) = decode(&stream[..cut]).unwrap() {
                assert!(used <= cut);
            }
        }
        let mut pos = 0;
        let mut n = 0;
        while let Some((_, used)) = decode(&stream[pos..]).unwrap() {
            pos += used;
            n += 1;
        }
        assert_eq!((n, pos), (3, stream.len()));
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        for bad in [
            &b"?x\r\n"[..],
            b":x\r\n",
            b"$-2\r\n",
            b"$1\r\nab\r\n",
            b"*-5\r\n",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = "*1\r\n".repeat(DEPTH_MAX + 2);
        assert!(decode(deep.as_bytes()).is_err());
        // Random bytes: never a panic.
        let mut prng = Prng::new(9);
        for _ in 0..20_000 {
            let len = prng.below(24) as usize;
            let alphabet = b"*$:+-\r\n0123-1x";
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[prng.below(alphabet.len() as u64) as usize])
                .collect();
            let _ = decode(&bytes);
        }
    }
}
