//! Following PostgreSQL messages in one direction of a byte stream, as it
//! passes in chunks of any size: [`Framer`] finds each message's type, its
//! length and its first body bytes (all [`crate::net::wire`] needs), and
//! skips the rest. A chunk that starts with whole messages is read in place;
//! a message split across chunks is followed byte by byte.

/// Incremental framing of one direction: a header (type byte unless
/// `untyped`, then the length), then a body that is skipped but for the
/// bytes a caller needs.
#[derive(Debug, Default)]
pub(crate) struct Framer {
    header: [u8; 5],
    have: usize,
    /// Body bytes still to come.
    left: usize,
    /// The current message's type (0 for untyped ones).
    kind: u8,
    /// The first 4 body bytes (the code of an untyped message, or the status).
    head: [u8; 4],
    head_len: usize,
}

/// What a framer found complete.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    Typed(u8, [u8; 4]),
    Untyped(u32),
}

impl Framer {
    /// Feeds bytes; calls `done` for each complete message. `Err` when a length is impossible.
    pub(crate) fn feed(
        &mut self,
        mut buf: &[u8],
        untyped: &mut bool,
        mut done: impl FnMut(Frame, &mut bool),
    ) -> Result<(), ()> {
        while !buf.is_empty() {
            if self.left == 0 && self.have == 0 {
                if let Some(rest) = whole(buf, untyped, &mut done)? {
                    buf = rest;
                    continue;
                }
            }
            if self.left > 0 {
                let n = self.left.min(buf.len());
                let want = (4 - self.head_len).min(n);
                self.head[self.head_len..self.head_len + want].copy_from_slice(&buf[..want]);
                self.head_len += want;
                self.left -= n;
                buf = &buf[n..];
                if self.left == 0 {
                    self.complete(untyped, &mut done);
                }
                continue;
            }
            let header_len = if *untyped { 4 } else { 5 };
            let n = (header_len - self.have).min(buf.len());
            self.header[self.have..self.have + n].copy_from_slice(&buf[..n]);
            self.have += n;
            buf = &buf[n..];
            if self.have < header_len {
                continue;
            }
            let (kind, len) = if *untyped {
                (0, &self.header[..4])
            } else {
                (self.header[0], &self.header[1..5])
            };
            let len = length(len)?;
            self.kind = kind;
            self.have = 0;
            self.head_len = 0;
            self.left = len - 4;
            if self.left == 0 {
                self.complete(untyped, &mut done);
            }
        }
        Ok(())
    }

    fn complete(&mut self, untyped: &mut bool, mut done: impl FnMut(Frame, &mut bool)) {
        let frame = frame(*untyped, self.kind, self.head);
        self.head = [0; 4];
        done(frame, untyped);
    }
}

/// A message's length field (which counts itself): `Err` when impossible.
fn length(field: &[u8]) -> Result<usize, ()> {
    let len = u32::from_be_bytes([field[0], field[1], field[2], field[3]]) as usize;
    if (4..=(1 << 30)).contains(&len) {
        Ok(len)
    } else {
        Err(())
    }
}

/// The frame of a complete message of type `kind` whose body starts with `head`.
fn frame(untyped: bool, kind: u8, head: [u8; 4]) -> Frame {
    if untyped {
        Frame::Untyped(u32::from_be_bytes(head))
    } else {
        Frame::Typed(kind, head)
    }
}

/// The fast path of [`Framer::feed`], at a message boundary: when `buf`
/// starts with a whole message, reports it straight from `buf` (no copy of
/// its header) and returns the bytes after it; `None` when the message
/// continues past `buf` (the caller follows it byte by byte).
fn whole<'b>(
    buf: &'b [u8],
    untyped: &mut bool,
    done: &mut impl FnMut(Frame, &mut bool),
) -> Result<Option<&'b [u8]>, ()> {
    let header_len = if *untyped { 4 } else { 5 };
    let Some(len) = buf.get(header_len - 4..header_len) else {
        return Ok(None);
    };
    let len = length(len)?;
    let end = header_len - 4 + len;
    let Some(body) = buf.get(header_len..end) else {
        return Ok(None);
    };
    let mut head = [0; 4];
    let n = body.len().min(4);
    head[..n].copy_from_slice(&body[..n]);
    done(frame(*untyped, buf[0], head), untyped);
    Ok(Some(&buf[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Typed messages (type byte, body) laid end to end.
    fn encode(msgs: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (kind, body) in msgs {
            out.push(*kind);
            let len = u32::try_from(body.len() + 4).expect("small");
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(body);
        }
        out
    }

    /// The frames found when `bytes` arrive in chunks ending at `cuts`.
    fn frames(bytes: &[u8], cuts: &[usize]) -> Vec<Frame> {
        let mut framer = Framer::default();
        let mut untyped = false;
        let mut seen = Vec::new();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut at = 0;
        for end in cuts.into_iter().chain([bytes.len()]) {
            let chunk = &bytes[at..end.max(at)];
            at = end.max(at);
            framer
                .feed(chunk, &mut untyped, |f, _| seen.push(f))
                .expect("valid stream");
        }
        seen
    }

    proptest! {
        /// Whole chunks (the fast path) and any split (byte by byte across
        /// the cuts) find the same messages, with the same first bytes.
        #[test]
        fn any_split_finds_the_same_messages(
            msgs in prop::collection::vec(
                (any::<u8>(), prop::collection::vec(any::<u8>(), 0..12)),
                1..12,
            ),
            cuts in prop::collection::vec(any::<usize>(), 0..10),
        ) {
            let bytes = encode(&msgs);
            let whole = frames(&bytes, &[]);
            prop_assert_eq!(whole.len(), msgs.len());
            for (f, (kind, body)) in whole.iter().zip(&msgs) {
                let mut head = [0; 4];
                let n = body.len().min(4);
                head[..n].copy_from_slice(&body[..n]);
                prop_assert_eq!(f, &Frame::Typed(*kind, head));
            }
            prop_assert_eq!(frames(&bytes, &cuts), whole);
        }
    }

    #[test]
    fn an_impossible_length_is_an_error_on_either_path() {
        let mut framer = Framer::default();
        let mut untyped = false;
        let bad = [b'Z', 0, 0, 0, 2, b'I'];
        assert!(framer.feed(&bad, &mut untyped, |_, _| {}).is_err());
        let mut framer = Framer::default();
        assert!(framer.feed(&bad[..3], &mut untyped, |_, _| {}).is_ok());
        assert!(framer.feed(&bad[3..], &mut untyped, |_, _| {}).is_err());
    }
}
