//! A streaming reader of a `multipart/form-data` body carrying one file (what
//! `curl -F file=@claims.x12` sends): the part's bytes are passed on as they arrive, so a
//! multi-GB file never sits in memory. Exactly one part is accepted.

use memchr::memmem;

/// Why a multipart body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// The `boundary` parameter is missing or unusable.
    #[error("the multipart boundary is missing or invalid")]
    Boundary,
    /// The body does not follow the multipart syntax.
    #[error("the multipart body is malformed")]
    Malformed,
    /// More than one part was sent.
    #[error("send exactly one file part")]
    SeveralParts,
    /// The body ended before the closing boundary.
    #[error("the multipart body ended early")]
    Incomplete,
}

/// Longest part header block.
const MAX_HEADERS: usize = 8 * 1024;

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Before the first boundary line.
    Preamble,
    /// Reading the part's headers.
    Headers,
    /// Passing the part's bytes on.
    Body,
    /// After the closing boundary.
    Done,
}

/// The parser: feed it chunks with [`OnePart::push`], then call [`OnePart::finish`].
#[derive(Debug)]
pub struct OnePart {
    /// `--boundary`.
    opening: Vec<u8>,
    /// `\r\n--boundary`.
    delimiter: Vec<u8>,
    state: State,
    pending: Vec<u8>,
}

impl OnePart {
    /// A parser for `content_type` (`multipart/form-data; boundary=…`).
    pub fn new(content_type: &str) -> Result<Self, MultipartError> {
        let boundary = content_type
            .split(';')
            .skip(1)
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
            .map(|(_, v)| v.trim().trim_matches('"'))
            .filter(|b| {
                (1..=70).contains(&b.len()) && b.bytes().all(|c| c.is_ascii_graphic() || c == b' ')
            })
            .ok_or(MultipartError::Boundary)?;
        Ok(Self {
            opening: format!("--{boundary}").into_bytes(),
            delimiter: format!("\r\n--{boundary}").into_bytes(),
            state: State::Preamble,
            pending: Vec::new(),
        })
    }

    /// Consumes `chunk`, passing the file's bytes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut dyn FnMut(&[u8])) -> Result<(), MultipartError> {
        self.pending.extend_from_slice(chunk);
        loop {
            match self.state {
                State::Preamble => {
                    let Some(at) = memmem::find(&self.pending, &self.opening) else {
                        if self.pending.len() > MAX_HEADERS {
                            return Err(MultipartError::Malformed);
                        }
                        return Ok(());
                    };
                    let after = at + self.opening.len();
                    if self.pending.len() < after + 2 {
                        return Ok(());
                    }
                    if self.pending.get(after..after + 2) != Some(b"\r\n") {
                        return Err(MultipartError::Malformed);
                    }
                    self.pending.drain(..after + 2);
                    self.state = State::Headers;
                }
                State::Headers => {
                    let Some(at) = memmem::find(&self.pending, b"\r\n\r\n") else {
                        if self.pending.len() > MAX_HEADERS {
                            return Err(MultipartError::Malformed);
                        }
                        return Ok(());
                    };
                    self.pending.drain(..at + 4);
                    self.state = State::Body;
                }
                State::Body => match memmem::find(&self.pending, &self.delimiter) {
                    Some(at) => {
                        let after = at + self.delimiter.len();
                        if self.pending.len() < after + 2 {
                            // The delimiter is complete, what follows it is not yet here.
                            return Ok(());
                        }
                        out(self.pending.get(..at).unwrap_or_default());
                        let closing = self.pending.get(after..after + 2) == Some(b"--");
                        self.pending.drain(..after + 2);
                        if !closing {
                            return Err(MultipartError::SeveralParts);
                        }
                        self.state = State::Done;
                    }
                    None => {
                        // Keep what could be the start of a delimiter split across chunks.
                        let keep = self.delimiter.len() - 1;
                        if self.pending.len() > keep {
                            let cut = self.pending.len() - keep;
                            out(self.pending.get(..cut).unwrap_or_default());
                            self.pending.drain(..cut);
                        }
                        return Ok(());
                    }
                },
                State::Done => {
                    // Only an epilogue may follow; it is ignored.
                    self.pending.clear();
                    return Ok(());
                }
            }
        }
    }

    /// Checks that the closing boundary arrived.
    pub fn finish(&self) -> Result<(), MultipartError> {
        if self.state == State::Done {
            Ok(())
        } else {
            Err(MultipartError::Incomplete)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(body: &[u8], chunk: usize) -> Result<Vec<u8>, MultipartError> {
        let mut parser = OnePart::new("multipart/form-data; boundary=XyZ").unwrap();
        let mut file = Vec::new();
        for piece in body.chunks(chunk) {
            parser.push(piece, &mut |b| file.extend_from_slice(b))?;
        }
        parser.finish()?;
        Ok(file)
    }

    #[test]
    fn one_part_comes_through_whatever_the_chunking() {
        let content: Vec<u8> = (0..5000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let mut body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.x12\"\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
        body.extend_from_slice(&content);
        body.extend_from_slice(b"\r\n--XyZ--\r\nepilogue");
        for chunk in [1, 2, 3, 7, 64, 1000, body.len()] {
            assert_eq!(parse(&body, chunk).unwrap(), content, "chunk {chunk}");
        }
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        let head = b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\ndata".to_vec();
        assert_eq!(parse(&head, 5), Err(MultipartError::Incomplete));
        let mut two = head.clone();
        two.extend_from_slice(
            b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"g\"\r\n\r\nmore\r\n--XyZ--",
        );
        assert_eq!(parse(&two, 4), Err(MultipartError::SeveralParts));
        assert_eq!(parse(b"--XyZX\r\n", 3), Err(MultipartError::Malformed));
        assert_eq!(
            OnePart::new("multipart/form-data").unwrap_err(),
            MultipartError::Boundary
        );
    }
}
