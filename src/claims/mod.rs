//! The normalized claim model and its domain types.
//!
//! Values are parsed into types that can only hold valid values (parse, don't validate).
//! None of these types knows about files, HTTP or SQL.

pub mod money;

pub use money::{Money, MoneyError};
