//! Where a chunked body ends (RFC 9112 §7.1), for the fast path, which
//! passes chunked answers through as the upstream sent them: a byte-wise
//! state machine that needs no buffering across reads.

/// Where a chunked body ends (RFC 9112 §7.1): sizes, data, the last chunk
/// and its trailer section.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Chunks {
    /// In a chunk size (value, digits so far).
    Size(u64, u8),
    /// In a chunk extension, up to its CR (the size).
    Ext(u64),
    /// After a size line's CR.
    SizeLf(u64),
    /// Chunk data left.
    Data(u64),
    /// After a chunk's data.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final CRLF).
    TrailerStart,
    /// In a trailer line.
    TrailerLine,
    /// After a trailer line's CR.
    TrailerLf,
    /// After the final CR.
    EndLf,
}

impl Default for Chunks {
    fn default() -> Self {
        Chunks::Size(0, 0)
    }
}

impl Chunks {
    /// Takes the next bytes: `Some(n)` when the body ends after `n` of them.
    pub(super) fn feed(&mut self, b: &[u8]) -> Result<Option<usize>, ()> {
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            *self = match *self {
                Chunks::Size(n, d) => match c {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' if d < 15 => {
                        let v = (c as char).to_digit(16).ok_or(())? as u64;
                        Chunks::Size(n * 16 + v, d + 1)
                    }
                    b'\r' if d > 0 => Chunks::SizeLf(n),
                    b';' | b' ' | b'\t' if d > 0 => Chunks::Ext(n),
                    _ => return Err(()),
                },
                Chunks::Ext(n) => match c {
                    b'\r' => Chunks::SizeLf(n),
                    b'\n' => return Err(()),
                    _ => Chunks::Ext(n),
                },
                Chunks::SizeLf(n) => match c {
                    b'\n' if n == 0 => Chunks::TrailerStart,
                    b'\n' => Chunks::Data(n),
                    _ => return Err(()),
                },
                Chunks::Data(n) => {
                    let take = n.min((b.len() - i) as u64);
                    i += take as usize;
                    *self = if take == n {
                        Chunks::DataCr
                    } else {
                        Chunks::Data(n - take)
                    };
                    continue;
                }
                Chunks::DataCr if c == b'\r' => Chunks::DataLf,
                Chunks::DataLf if c == b'\n' => Chunks::Size(0, 0),
                Chunks::DataCr | Chunks::DataLf => return Err(()),
                // Lines end in CRLF here too: a bare LF would let a lenient
                // client end the body where this does not.
                Chunks::TrailerStart if c == b'\r' => Chunks::EndLf,
                Chunks::TrailerStart | Chunks::TrailerLine if c == b'\n' => return Err(()),
                Chunks::TrailerStart | Chunks::TrailerLine if c == b'\r' => Chunks::TrailerLf,
                Chunks::TrailerStart | Chunks::TrailerLine => Chunks::TrailerLine,
                Chunks::TrailerLf if c == b'\n' => Chunks::TrailerStart,
                Chunks::TrailerLf => return Err(()),
                Chunks::EndLf if c == b'\n' => return Ok(Some(i + 1)),
                Chunks::EndLf => return Err(()),
            };
            i += 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(body: &[u8], split: usize) -> Result<Option<usize>, ()> {
        let mut c = Chunks::default();
        let (a, b) = body.split_at(split);
        match c.feed(a)? {
            Some(n) => Ok(Some(n)),
            None => Ok(c.feed(b)?.map(|n| n + a.len())),
        }
    }

    #[test]
    fn a_chunked_body_ends_where_it_says_at_any_split() {
        let body = b"5\r\nhello\r\nA;ext=1\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let want = body.len() - 4;
        for split in 0..=body.len() {
            assert_eq!(end(body, split), Ok(Some(want)), "split at {split}");
        }
        assert_eq!(end(b"0\r\n\r\n", 2), Ok(Some(5)));
        assert_eq!(end(b"3\r\nabc\r\n", 4), Ok(None));
    }

    #[test]
    fn malformed_chunks_are_errors() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"3\r\nabcX",
            b"3\nabc\r\n",
            b"fffffffffffffffff\r\n",
            b"0\r\n\rX",
            b"0\r\n\n",
            b"0\r\nX-T: 1\n\r\n",
        ] {
            let mut c = Chunks::default();
            assert_eq!(c.feed(bad), Err(()), "{}", String::from_utf8_lossy(bad));
        }
    }
}
