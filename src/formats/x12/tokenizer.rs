//! The X12 tokenizer: bytes → segments, streaming, with delimiters discovered from ISA.
//!
//! The interchange header fixes the delimiters: the byte after `ISA` separates elements,
//! ISA11 is the repetition separator (5010; an alphanumeric value there is the 4010
//! standards identifier, meaning no repetition separator), ISA16 is the component
//! separator and the byte after it terminates segments. The ISA is located by counting
//! its sixteen element separators, so a header of the wrong length is still read (and
//! reported). Line breaks and blanks between segments are ignored. The reader keeps one
//! buffer and one [`Segment`] that the caller reuses; memory is bounded by the segment
//! length limit whatever the file size.

use std::io::Read;
use std::ops::Range;

use crate::formats::{Finding, Position};

/// The four X12 delimiters of an interchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    /// Separates elements (ISA byte 4).
    pub element: u8,
    /// Separates repeated elements (ISA11 in 5010), if any.
    pub repetition: Option<u8>,
    /// Separates components of a composite element (ISA16).
    pub component: u8,
    /// Ends a segment (the byte after ISA16).
    pub segment: u8,
}

/// Hard limits of the tokenizer.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest segment accepted, in bytes; a longer one is skipped with a finding.
    pub max_segment_bytes: usize,
    /// Most elements in one segment.
    pub max_elements: usize,
    /// Largest input, in bytes; reading stops with a finding beyond it.
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_segment_bytes: 64 * 1024,
            max_elements: 1024,
            max_file_bytes: 64 * 1024 * 1024 * 1024,
        }
    }
}

/// Length of a well-formed ISA segment including its terminator.
const ISA_LEN: usize = 106;
/// Bytes of other text (a banner, a mail header) tolerated before the ISA.
const MAX_LEADING_BYTES: usize = 4096;
/// Size of each read from the source.
const CHUNK: usize = 64 * 1024;

/// A short name (segment id or loop id, up to 8 bytes) packed into an integer, so that
/// look-ups compare one number instead of two strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Key(u64);

impl Key {
    /// Matches any name (used for "any loop").
    pub const ANY: Self = Self(0);

    /// Packs `name`; names longer than 8 bytes share the key of their first 8.
    pub fn of(name: &[u8]) -> Self {
        let mut packed = [0u8; 8];
        for (slot, byte) in packed.iter_mut().zip(name) {
            *slot = *byte;
        }
        Self(u64::from_le_bytes(packed))
    }
}

/// One segment, reused from call to call. Element 0 is the segment id.
#[derive(Debug, Default)]
pub struct Segment {
    bytes: Vec<u8>,
    elements: Vec<Range<u32>>,
    component: u8,
    repetition: Option<u8>,
    key: Key,
    /// Byte offset of the segment's first byte.
    pub byte: u64,
    /// 1-based line of the segment's first byte.
    pub line: u64,
    /// 1-based number of the segment in the file.
    pub index: u64,
}

impl Clone for Segment {
    fn clone(&self) -> Self {
        let mut copy = Self::default();
        copy.clone_from(self);
        copy
    }

    /// Copies into the existing buffers: the reader copies each claim's context
    /// segments this way, and the derived `clone_from` would allocate every time.
    fn clone_from(&mut self, source: &Self) {
        self.bytes.clone_from(&source.bytes);
        self.elements.clone_from(&source.elements);
        self.component = source.component;
        self.repetition = source.repetition;
        self.key = source.key;
        self.byte = source.byte;
        self.line = source.line;
        self.index = source.index;
    }
}

impl Segment {
    /// The segment id (`ISA`, `CLM`, …).
    pub fn id(&self) -> &[u8] {
        self.raw_element(0)
    }

    /// The segment id as a [`Key`].
    pub fn key(&self) -> Key {
        self.key
    }

    /// Element `n` (1-based, as in `CLM01`); empty when absent.
    pub fn element(&self, n: usize) -> &[u8] {
        self.raw_element(n)
    }

    /// Component `c` (1-based) of element `n`; component 1 of a simple element is the element.
    pub fn component(&self, n: usize, c: usize) -> &[u8] {
        let element = self.raw_element(n);
        let first_repeat = match self.repetition {
            Some(r) => element.split(|b| *b == r).next().unwrap_or_default(),
            None => element,
        };
        first_repeat
            .split(|b| *b == self.component)
            .nth(c.saturating_sub(1))
            .unwrap_or_default()
    }

    /// Number of elements after the id.
    pub fn element_count(&self) -> usize {
        self.elements.len().saturating_sub(1)
    }

    /// The position of this segment, for findings.
    pub fn position(&self) -> Position {
        Position {
            byte: self.byte,
            line: self.line,
            segment: Some(self.index),
            ..Position::default()
        }
    }

    fn raw_element(&self, n: usize) -> &[u8] {
        self.elements
            .get(n)
            .and_then(|r| self.bytes.get(r.start as usize..r.end as usize))
            .unwrap_or_default()
    }

    /// Fills the segment from `bytes`, splitting on `delimiters.element`.
    fn fill(&mut self, bytes: &[u8], delimiters: &Delimiters) {
        self.bytes.clear();
        self.bytes.extend_from_slice(bytes);
        self.elements.clear();
        let mut start = 0u32;
        for sep in memchr::memchr_iter(delimiters.element, bytes) {
            self.elements.push(start..sep as u32);
            start = sep as u32 + 1;
        }
        self.elements.push(start..bytes.len() as u32);
        self.key = Key::of(self.raw_element(0));
        self.component = delimiters.component;
        self.repetition = delimiters.repetition;
    }

    /// Builds a segment directly (tests, generators).
    pub fn parse(bytes: &[u8], delimiters: &Delimiters) -> Self {
        let mut segment = Self::default();
        segment.fill(bytes, delimiters);
        segment
    }
}

/// Streams segments out of any reader.
pub struct Tokenizer<R> {
    source: R,
    limits: Limits,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    stopped: bool,
    delimiters: Option<Delimiters>,
    /// Byte offset of `buf[start]` in the file.
    offset: u64,
    /// Line of `buf[start]`.
    line: u64,
    segments: u64,
}

impl<R: Read> Tokenizer<R> {
    /// A tokenizer with default limits.
    pub fn new(source: R) -> Self {
        Self::with_limits(source, Limits::default())
    }

    /// A tokenizer with the given limits.
    pub fn with_limits(source: R, limits: Limits) -> Self {
        Self {
            source,
            limits,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            eof: false,
            stopped: false,
            delimiters: None,
            offset: 0,
            line: 1,
            segments: 0,
        }
    }

    /// The delimiters, once the ISA has been read.
    pub fn delimiters(&self) -> Option<Delimiters> {
        self.delimiters
    }

    fn position(&self) -> Position {
        Position {
            byte: self.offset,
            line: self.line,
            segment: Some(self.segments + 1),
            ..Position::default()
        }
    }

    /// Reads the next segment into `segment`. Returns `Ok(false)` at the end of input, or
    /// when the input cannot be read as X12 any further (with a finding saying why).
    pub fn read_segment(
        &mut self,
        segment: &mut Segment,
        findings: &mut Vec<Finding>,
    ) -> std::io::Result<bool> {
        if self.stopped {
            return Ok(false);
        }
        let delimiters = match self.delimiters {
            Some(d) => d,
            None => match self.discover(findings)? {
                Some(d) => d,
                None => {
                    self.stopped = true;
                    return Ok(false);
                }
            },
        };
        loop {
            if self.offset > self.limits.max_file_bytes {
                findings.push(Finding::error(
                    "x12.file_too_large",
                    self.position(),
                    "the input is larger than the limit",
                ));
                self.stopped = true;
                return Ok(false);
            }
            self.skip_noise(&delimiters)?;
            if self.start == self.end && self.eof {
                return Ok(false);
            }
            let window = self.buffered();
            match memchr::memchr(delimiters.segment, window) {
                // An empty segment (two terminators, or a line-break terminator on a blank line).
                Some(0) => self.consume(1),
                Some(len) if len > self.limits.max_segment_bytes => {
                    findings.push(Finding::error(
                        "x12.segment_too_long",
                        self.position(),
                        "segment longer than the limit; skipped",
                    ));
                    self.consume(len + 1);
                    self.segments += 1;
                }
                Some(len) => {
                    let bytes = self
                        .buf
                        .get(self.start..self.start + len)
                        .unwrap_or_default();
                    segment.fill(bytes, &delimiters);
                    segment.byte = self.offset;
                    segment.line = self.line;
                    self.segments += 1;
                    segment.index = self.segments;
                    self.consume(len + 1);
                    self.check_segment(segment, findings);
                    return Ok(true);
                }
                None if window.len() > self.limits.max_segment_bytes => {
                    // No terminator within the limit: drop what we have and keep looking.
                    findings.push(Finding::error(
                        "x12.segment_too_long",
                        self.position(),
                        "segment longer than the limit; skipped",
                    ));
                    let skip = window.len();
                    self.consume(skip);
                    self.skip_to_terminator(&delimiters)?;
                    self.segments += 1;
                }
                None if self.eof => {
                    findings.push(Finding::error(
                        "x12.unterminated_segment",
                        self.position(),
                        "the input ends inside a segment (truncated file?)",
                    ));
                    let rest = self.end - self.start;
                    self.consume(rest);
                    return Ok(false);
                }
                None => {
                    if !self.fill()? {
                        continue;
                    }
                }
            }
        }
    }

    fn check_segment(&self, segment: &Segment, findings: &mut Vec<Finding>) {
        let id = segment.id();
        if !(2..=3).contains(&id.len())
            || !id
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            findings.push(Finding::error(
                "x12.bad_segment_id",
                segment.position(),
                "not a valid segment identifier",
            ));
        }
        if segment.element_count() > self.limits.max_elements {
            findings.push(Finding::error(
                "x12.too_many_elements",
                segment.position(),
                "more elements than the limit",
            ));
        }
    }

    /// The bytes read and not yet consumed (never the stale ones past them).
    fn buffered(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// Consumes `n` buffered bytes, keeping the byte offset and line count.
    fn consume(&mut self, n: usize) {
        let consumed = self.buf.get(self.start..self.start + n).unwrap_or_default();
        self.line += memchr::memchr_iter(b'\n', consumed).count() as u64;
        self.offset += n as u64;
        self.start += n;
    }

    /// Reads more input into the buffer. Returns whether anything was added.
    fn fill(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grow = self.buf.len().min(self.limits.max_segment_bytes + CHUNK);
            self.buf.resize(self.buf.len() + grow, 0);
        }
        let n = crate::formats::read_some(
            &mut self.source,
            self.buf.get_mut(self.end..).unwrap_or_default(),
        )?;
        if n == 0 {
            self.eof = true;
        }
        self.end += n;
        Ok(n > 0)
    }

    /// Makes sure at least `n` bytes are buffered (or the input has ended).
    fn ensure(&mut self, n: usize) -> std::io::Result<()> {
        while self.end - self.start < n && !self.eof {
            self.fill()?;
        }
        Ok(())
    }

    /// Skips line breaks and blanks between segments (unless they are delimiters).
    fn skip_noise(&mut self, delimiters: &Delimiters) -> std::io::Result<()> {
        loop {
            if self.start == self.end && (self.eof || !self.fill()?) {
                return Ok(());
            }
            let window = self.buffered();
            let noise = window
                .iter()
                .take_while(|b| {
                    matches!(b, b'\r' | b'\n' | b' ' | b'\t') && !is_delimiter(**b, delimiters)
                })
                .count();
            self.consume(noise);
            if self.start < self.end {
                return Ok(());
            }
        }
    }

    fn skip_to_terminator(&mut self, delimiters: &Delimiters) -> std::io::Result<()> {
        loop {
            let window = self.buffered();
            if let Some(at) = memchr::memchr(delimiters.segment, window) {
                self.consume(at + 1);
                return Ok(());
            }
            let all = window.len();
            self.consume(all);
            if !self.fill()? {
                return Ok(());
            }
        }
    }

    /// Finds the ISA and reads the delimiters from it.
    fn discover(&mut self, findings: &mut Vec<Finding>) -> std::io::Result<Option<Delimiters>> {
        self.ensure(3)?;
        if self.buffered().starts_with(b"\xEF\xBB\xBF") {
            self.consume(3);
        }
        loop {
            self.ensure(1)?;
            match self.buffered().first() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => self.consume(1),
                _ => break,
            }
        }
        self.ensure(MAX_LEADING_BYTES + ISA_LEN + 64)?;
        let missing = |findings: &mut Vec<Finding>, this: &Self| {
            findings.push(Finding::error(
                "x12.no_isa",
                this.position(),
                "no ISA interchange header at the start of the input",
            ));
            None
        };
        let window = self.buffered();
        let leading = memchr::memmem::find_iter(window, b"ISA")
            .take_while(|at| *at <= MAX_LEADING_BYTES)
            .find(|at| {
                window
                    .get(at + 3)
                    .is_some_and(|b| !b.is_ascii_alphanumeric())
            });
        match leading {
            None => return Ok(missing(findings, self)),
            Some(0) => {}
            Some(at) => {
                findings.push(Finding::warning(
                    "x12.leading_bytes",
                    self.position(),
                    format!("{at} bytes before the ISA header were ignored"),
                ));
                self.consume(at);
            }
        }
        let window = self.buffered();
        let Some(&element) = window.get(3) else {
            return Ok(missing(findings, self));
        };
        if element.is_ascii_alphanumeric() {
            return Ok(missing(findings, self));
        }
        // The 16th element separator precedes ISA16 (one byte), then the terminator.
        let Some(last_sep) = memchr::memchr_iter(element, window).nth(15) else {
            return Ok(missing(findings, self));
        };
        let (Some(&component), Some(&segment)) =
            (window.get(last_sep + 1), window.get(last_sep + 2))
        else {
            return Ok(missing(findings, self));
        };
        let isa = Segment::parse(
            window.get(..last_sep + 2).unwrap_or_default(),
            &Delimiters {
                element,
                repetition: None,
                component,
                segment,
            },
        );
        let mut repetition = match isa.element(11) {
            [r] if !r.is_ascii_alphanumeric() => Some(*r),
            _ => None,
        };
        if repetition == Some(component) || repetition == Some(segment) {
            findings.push(Finding::warning(
                "x12.delimiter_clash",
                self.position(),
                "ISA11 repeats another delimiter; the file is read without a repetition separator",
            ));
            repetition = None;
        }
        let delimiters = Delimiters {
            element,
            repetition,
            component,
            segment,
        };
        let distinct = [Some(element), Some(component), Some(segment), repetition]
            .iter()
            .flatten()
            .enumerate()
            .all(|(i, a)| {
                [Some(element), Some(component), Some(segment), repetition]
                    .iter()
                    .flatten()
                    .skip(i + 1)
                    .all(|b| a != b)
            });
        if !distinct || component.is_ascii_alphanumeric() || segment.is_ascii_alphanumeric() {
            findings.push(Finding::error(
                "x12.bad_delimiters",
                self.position(),
                "the ISA header defines unusable delimiters",
            ));
            return Ok(None);
        }
        if last_sep + 3 != ISA_LEN {
            findings.push(Finding::warning(
                "x12.isa_length",
                self.position(),
                format!("the ISA segment is {} bytes long instead of {ISA_LEN}; delimiters were read by counting elements", last_sep + 3),
            ));
        }
        self.delimiters = Some(delimiters);
        Ok(Some(delimiters))
    }
}

fn is_delimiter(b: u8, d: &Delimiters) -> bool {
    b == d.element || b == d.component || b == d.segment || Some(b) == d.repetition
}
