//! [`Money`]: an amount in integer cents. Never a float.

use std::fmt;
use std::iter::Sum;
use std::ops::Add;

/// An amount of US dollars as a whole number of cents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

/// Why a text is not an amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not of the form `[-]digits[.digits]`.
    #[error("not a decimal amount")]
    NotDecimal,
    /// More than two decimals that are not zero: cents cannot hold it exactly.
    #[error("more than two decimal places")]
    TooPrecise,
    /// Too large to hold.
    #[error("amount out of range")]
    OutOfRange,
}

/// Largest number of integer digits accepted (a trillion dollars is plenty).
const MAX_INTEGER_DIGITS: usize = 13;

impl Money {
    /// An amount from cents.
    pub const fn from_cents(cents: i64) -> Self {
        Self(cents)
    }

    /// The amount in cents.
    pub const fn cents(self) -> i64 {
        self.0
    }

    /// Parses a decimal amount such as `100`, `24.5`, `-3.00` or `.75`. Surrounding
    /// blanks are ignored; digits beyond the second decimal must be zeros.
    pub fn parse_decimal(text: &str) -> Result<Self, MoneyError> {
        let text = text.trim();
        let (negative, digits) = match text.as_bytes().first() {
            Some(b'-') => (true, text.get(1..).unwrap_or_default()),
            Some(b'+') => (false, text.get(1..).unwrap_or_default()),
            _ => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction)
        {
            return Err(MoneyError::NotDecimal);
        }
        if whole.trim_start_matches('0').len() > MAX_INTEGER_DIGITS {
            return Err(MoneyError::OutOfRange);
        }
        if fraction.bytes().skip(2).any(|b| b != b'0') {
            return Err(MoneyError::TooPrecise);
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| MoneyError::OutOfRange)?
        };
        let mut cents = 0i64;
        for (i, b) in fraction.bytes().take(2).enumerate() {
            cents += i64::from(b - b'0') * if i == 0 { 10 } else { 1 };
        }
        let value = whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(cents))
            .ok_or(MoneyError::OutOfRange)?;
        Ok(Self(if negative { -value } else { value }))
    }

    /// Adds, or `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }
}

impl Add for Money {
    type Output = Self;
    /// Saturating: sums of claim amounts never come near the limits of `i64` cents.
    fn add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), Add::add)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_become_exact_cents() {
        for (text, cents) in [
            ("100", 10000),
            ("24.5", 2450),
            ("24.50", 2450),
            (".75", 75),
            ("-3.00", -300),
            (" 7 ", 700),
            ("1.250", 125),
            ("0", 0),
        ] {
            assert_eq!(
                Money::parse_decimal(text),
                Ok(Money::from_cents(cents)),
                "{text}"
            );
        }
        assert_eq!(Money::from_cents(-1234).to_string(), "-12.34");
    }

    #[test]
    fn non_amounts_are_refused() {
        assert_eq!(Money::parse_decimal(""), Err(MoneyError::NotDecimal));
        assert_eq!(Money::parse_decimal("."), Err(MoneyError::NotDecimal));
        assert_eq!(Money::parse_decimal("1e3"), Err(MoneyError::NotDecimal));
        assert_eq!(Money::parse_decimal("1,000"), Err(MoneyError::NotDecimal));
        assert_eq!(Money::parse_decimal("--1"), Err(MoneyError::NotDecimal));
        assert_eq!(Money::parse_decimal("1.005"), Err(MoneyError::TooPrecise));
        assert_eq!(
            Money::parse_decimal("99999999999999999999"),
            Err(MoneyError::OutOfRange)
        );
    }
}
