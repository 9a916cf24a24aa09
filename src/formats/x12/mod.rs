//! X12 5010 (and 4010) 837 claims: a streaming tokenizer ([`tokenizer`]), envelope checks
//! ([`envelope`]), the claim state machine ([`claims837`]) and the interchange identity
//! intake checks for replays ([`interchange`]).

pub mod claims837;
pub mod envelope;
pub mod interchange;
pub mod tokenizer;

pub use claims837::{ClaimReader, ClaimRecord, LOOPS, SegmentList, Variant};
pub use interchange::InterchangeId;
pub use tokenizer::{Delimiters, Key, Limits, Segment, Tokenizer};
