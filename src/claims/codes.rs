//! Code types of the claim model. Each parses (normalising case and punctuation) or refuses.

use std::fmt;

/// Why a code was refused; the field name is added by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidCode(pub &'static str);

/// An ASCII code of at most [`ShortCode::CAPACITY`] bytes, stored inline (codes are
/// parsed millions of times; none needs the heap).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShortCode {
    bytes: [u8; ShortCode::CAPACITY],
    len: u8,
}

impl ShortCode {
    /// Longest code held.
    pub const CAPACITY: usize = 12;

    /// Builds a code from `text`'s characters that `keep` accepts, upper-cased; `None` if
    /// a kept character is not ASCII or there are too many.
    fn build(text: &str, keep: impl Fn(char) -> bool) -> Option<Self> {
        let mut code = Self {
            bytes: [0; Self::CAPACITY],
            len: 0,
        };
        for c in text.trim().chars().filter(|c| keep(*c)) {
            if !c.is_ascii() {
                return None;
            }
            let slot = code.bytes.get_mut(usize::from(code.len))?;
            *slot = c.to_ascii_uppercase() as u8;
            code.len += 1;
        }
        Some(code)
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    fn len(&self) -> usize {
        usize::from(self.len)
    }
}

impl fmt::Debug for ShortCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

macro_rules! code_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(ShortCode);

        impl $name {
            /// The normalised code.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0.as_str())
            }
        }
    };
}

code_type!(
    /// A National Provider Identifier: 10 digits whose last is a Luhn check digit over
    /// the prefix 80840 and the first nine.
    Npi
);
code_type!(
    /// A Tax Identification Number (EIN or SSN form): 9 digits, stored without the hyphen.
    Tin
);
code_type!(
    /// An ICD-10-CM diagnosis code: a letter, a digit, an alphanumeric, then up to four
    /// alphanumerics; stored upper case without the dot.
    Icd10Cm
);
code_type!(
    /// A HCPCS Level II or CPT procedure code: five characters (a letter and four digits,
    /// or five digits, or four digits and F/T/U/M).
    ProcedureCode
);
code_type!(
    /// A two-character procedure modifier.
    Modifier
);
code_type!(
    /// A UB-04 revenue code: four digits (a three-digit code gets its leading zero).
    RevenueCode
);
code_type!(
    /// A CMS place-of-service code: two digits.
    PlaceOfService
);
code_type!(
    /// A UB-04 type of bill: facility type, classification and frequency (three
    /// characters, stored without the leading zero of the four-character form).
    BillType
);
code_type!(
    /// An MS-DRG: three digits.
    Drg
);

/// The code without dots, dashes and blanks, upper case.
fn compact(text: &str) -> Option<ShortCode> {
    ShortCode::build(text, |c| c != '.' && c != '-' && c != ' ')
}

/// The code as given (trimmed), upper case.
fn plain(text: &str) -> Option<ShortCode> {
    ShortCode::build(text, |_| true)
}

/// A zero-padded code of `width` digits from one of `min..=width` digits.
fn padded(text: &str, min: usize, width: usize) -> Option<ShortCode> {
    let digits = plain(text)?;
    if !(min..=width).contains(&digits.len()) || !digits.as_bytes().iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut out = ShortCode {
        bytes: [b'0'; ShortCode::CAPACITY],
        len: width as u8,
    };
    let offset = width - digits.len();
    for (i, b) in digits.as_bytes().iter().enumerate() {
        if let Some(slot) = out.bytes.get_mut(offset + i) {
            *slot = *b;
        }
    }
    Some(out)
}

impl Npi {
    /// Parses and checks the Luhn digit.
    pub fn parse(text: &str) -> Result<Self, InvalidCode> {
        let code =
            plain(text).filter(|c| c.len() == 10 && c.as_bytes().iter().all(u8::is_ascii_digit));
        let Some(code) = code else {
            return Err(InvalidCode("an NPI is 10 digits"));
        };
        let digits = code.as_str();
        // Luhn over "80840" + the first nine digits, then compare the tenth.
        let body: Vec<u32> = "80840"
            .bytes()
            .chain(digits.bytes().take(9))
            .map(|b| u32::from(b - b'0'))
            .collect();
        let sum: u32 = body
            .iter()
            .rev()
            .enumerate()
            .map(|(i, d)| {
                if i % 2 == 0 {
                    let x = d * 2;
                    if x > 9 { x - 9 } else { x }
                } else {
                    *d
                }
            })
            .sum();
        let check = (10 - sum % 10) % 10;
        if digits.bytes().last().map(|b| u32::from(b - b'0')) != Some(check) {
            return Err(InvalidCode("the NPI check digit is wrong"));
        }
        Ok(Self(code))
    }
}

impl Tin {
    /// Parses `123456789` or `12-3456789`.
    pub fn parse(text: &str) -> Result<Self, InvalidCode> {
        match compact(text) {
            Some(d) if d.len() == 9 && d.as_bytes().iter().all(u8::is_ascii_digit) => Ok(Self(d)),
            _ => Err(InvalidCode("a TIN is 9 digits")),
        }
    }
}

impl Icd10Cm {
    /// Parses with or without the dot.
    pub fn parse(text: &str) -> Result<Self, InvalidCode> {
        let Some(code) = compact(text) else {
            return Err(InvalidCode("not an ICD-10-CM code"));
        };
        let b = code.as_bytes();
        let shape = (3..=7).contains(&b.len())
            && b.first().is_some_and(u8::is_ascii_uppercase)
            && b.get(1).is_some_and(u8::is_ascii_digit)
            && b.iter().skip(2).all(u8::is_ascii_alphanumeric);
        if shape {
            Ok(Self(code))
        } else {
            Err(InvalidCode("not an ICD-10-CM code"))
        }
    }
}

impl ProcedureCode {
    /// Parses a five-character HCPCS or CPT code.
    pub fn parse(text: &str) -> Result<Self, InvalidCode> {
        let Some(code) = plain(text) else {
            return Err(InvalidCode("not a HCPCS or CPT code"));
        };
        let b = code.as_bytes();
        let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
        let valid = b.len() == 5
            && match b {
                [first, rest @ ..] if first.is_ascii_uppercase() => digits(rest),
                [head @ .., last] => {
                    digits(head)
                        && (last.is_ascii_digit() || matches!(last, b'F' | b'T' | b'U' | b'M'))
                }
                _ => false,
            };
        if valid {
            Ok(Self(code))
        } else {
            Err(InvalidCode("not a HCPCS or CPT code"))
        }
    }
}

impl Modifier {
    /// Parses a two-character alphanumeric modifier.
    pub fn parse(text: &str) -> Result<Self, InvalidCode> {
        match plain(text) {
            Some(c) if c.len() == 2 && c.as_bytes().iter().all(u8::is_ascii_alphanumeric) => {
                Ok(Self(c))
            }
            _ => Err(InvalidCode("a modifier is two letters or digits")),
        }
    }
}

impl RevenueCode {
    /// Parses three or four digits.
    pub fn parse(text: &str) -> Result<Self, InvalidCode> {
        padded(text, 3, 4)
            .map(Self)
            .ok_or(InvalidCode("a revenue code is 4 digits"))
    }
}

impl PlaceOfService {
    /// Parses one or two digits.
    pub fn parse(text: &str) -> Result<Self, InvalidCode> {
        match padded(text, 1, 2) {
            Some(c) if c.as_str() != "00" => Ok(Self(c)),
            _ => Err(InvalidCode("a place of service is 2 digits")),
        }
    }
}

impl BillType {
    /// Parses `0111` or `111`, or the facility code and frequency given separately and
    /// joined by the caller.
    pub fn parse(text: &str) -> Result<Self, InvalidCode> {
        let trimmed = text.trim();
        let trimmed = match trimmed.len() {
            4 if trimmed.starts_with('0') => trimmed.get(1..).unwrap_or_default(),
            _ => trimmed,
        };
        let code = plain(trimmed).ok_or(InvalidCode("a type of bill is 3 characters"))?;
        let b = code.as_bytes();
        if b.len() == 3
            && b.first().is_some_and(|c| (b'1'..=b'9').contains(c))
            && b.iter().all(u8::is_ascii_alphanumeric)
        {
            Ok(Self(code))
        } else {
            Err(InvalidCode("a type of bill is 3 characters"))
        }
    }
}

impl Drg {
    /// Parses up to three digits (zero-padded).
    pub fn parse(text: &str) -> Result<Self, InvalidCode> {
        padded(text, 1, 3)
            .map(Self)
            .ok_or(InvalidCode("a DRG is 3 digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npi_luhn_with_the_80840_prefix() {
        assert!(Npi::parse("1234567893").is_ok(), "the CMS example NPI");
        assert!(Npi::parse("1234567890").is_err());
        assert!(Npi::parse("123456789").is_err());
        assert!(Npi::parse("12345678a3").is_err());
    }

    #[test]
    fn codes_normalise() {
        assert_eq!(
            Icd10Cm::parse("j02.0").map(|c| c.to_string()),
            Ok("J020".into())
        );
        assert!(Icd10Cm::parse("020").is_err());
        assert_eq!(
            ProcedureCode::parse("99213").map(|c| c.to_string()),
            Ok("99213".into())
        );
        assert_eq!(
            ProcedureCode::parse("j3490").map(|c| c.to_string()),
            Ok("J3490".into())
        );
        assert!(ProcedureCode::parse("0001F").is_ok());
        assert!(ProcedureCode::parse("9921").is_err());
        assert_eq!(
            RevenueCode::parse("450").map(|c| c.to_string()),
            Ok("0450".into())
        );
        assert_eq!(
            PlaceOfService::parse("11").map(|c| c.to_string()),
            Ok("11".into())
        );
        assert_eq!(
            PlaceOfService::parse("1").map(|c| c.to_string()),
            Ok("01".into())
        );
        assert!(PlaceOfService::parse("00").is_err());
        assert_eq!(
            BillType::parse("0111").map(|c| c.to_string()),
            Ok("111".into())
        );
        assert_eq!(
            Tin::parse("12-3456789").map(|c| c.to_string()),
            Ok("123456789".into())
        );
        assert_eq!(Drg::parse("89").map(|c| c.to_string()), Ok("089".into()));
        assert!(Drg::parse("8901").is_err());
        assert!(Modifier::parse("2é").is_err(), "non-ASCII is refused");
        assert!(
            Icd10Cm::parse(&"A".repeat(40)).is_err(),
            "too long for the inline buffer"
        );
    }
}
