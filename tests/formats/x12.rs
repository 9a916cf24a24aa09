//! The X12 tokenizer and 837 reader on hand-made inputs.
