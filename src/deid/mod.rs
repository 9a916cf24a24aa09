//! Safe Harbor de-identification (45 CFR 164.514(b)(2)): the rules the analyst export
//! applies, in one place.
//!
//! - ZIP codes keep their first three digits, and become `000` where that three-digit
//!   area holds 20,000 people or fewer ([`zip3`], list in `restricted_zip3.txt`).
//! - Ages over 89 are reported as one category, 90 ([`age_on`]).
//! - Dates keep their year only: a date becomes January 1 of its year, so the column
//!   keeps its date type ([`year_only`]).
//! - Member and claim ids become pseudonyms: random codes, not derived from any PHI
//!   (164.514(c)), drawn once per export configuration and kept in the database
//!   (`export_pseudonyms`), so one member has one code in every export of a
//!   configuration and unlinkable codes across configurations; the mapping never leaves
//!   the gateway.
//!
//! The ZIP and age are derived at ingest (while the PHI is in hand) and stored in the
//! clear, so the analyst path never opens a sealed value.

use std::sync::OnceLock;

use time::{Date, Month};

/// The three-digit ZIP areas reported as `000`, with the source of the list.
const RESTRICTED_ZIP3: &str = include_str!("restricted_zip3.txt");

/// The oldest age reported as itself; older ages are reported as [`AGE_CAP`].
const OLDEST_REPORTED: i32 = 89;
/// The single category of every age over 89.
pub const AGE_CAP: i16 = 90;

fn restricted() -> &'static [[u8; 3]] {
    static LIST: OnceLock<Vec<[u8; 3]>> = OnceLock::new();
    LIST.get_or_init(|| {
        RESTRICTED_ZIP3
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter_map(|l| <[u8; 3]>::try_from(l.as_bytes()).ok())
            .collect()
    })
}

/// The Safe Harbor form of a ZIP code: its first three digits, or `000` for a restricted
/// area; `None` when it does not start with three digits.
pub fn zip3(zip: &str) -> Option<String> {
    let prefix: [u8; 3] = zip.trim().as_bytes().get(..3)?.try_into().ok()?;
    if !prefix.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if restricted().contains(&prefix) {
        return Some("000".into());
    }
    String::from_utf8(prefix.to_vec()).ok()
}

/// Age in whole years on `on` for someone born on `born`, with every age over 89 as 90;
/// `None` when `on` is before `born`.
pub fn age_on(born: Date, on: Date) -> Option<i16> {
    let years = whole_years(born, on)?;
    Some(if years > OLDEST_REPORTED {
        AGE_CAP
    } else {
        i16::try_from(years).unwrap_or(AGE_CAP)
    })
}

/// Age in whole years on `on` for someone born on `born` (not capped); `None` when `on`
/// is before `born`.
pub fn whole_years(born: Date, on: Date) -> Option<i32> {
    let mut years = on.year() - born.year();
    if (u8::from(on.month()), on.day()) < (u8::from(born.month()), born.day()) {
        years -= 1;
    }
    (years >= 0).then_some(years)
}

/// How a Safe Harbor age is shown: the number, or `90+` for the category of every age
/// over 89.
pub fn age_label(age: i16) -> String {
    if age >= AGE_CAP {
        format!("{AGE_CAP}+")
    } else {
        age.to_string()
    }
}

/// A date with only its year kept: January 1 of that year.
pub fn year_only(date: Date) -> Date {
    Date::from_calendar_date(date.year(), Month::January, 1).unwrap_or(date)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use time::macros::date;

    #[test]
    fn zip_codes_keep_three_digits_and_restricted_areas_become_000() {
        assert_eq!(zip3("90210-1234").as_deref(), Some("902"));
        assert_eq!(zip3(" 10001").as_deref(), Some("100"));
        for restricted in ["03601", "05901", "89301-0001", "69201"] {
            assert_eq!(zip3(restricted).as_deref(), Some("000"), "{restricted}");
        }
        assert_eq!(zip3("12"), None);
        assert_eq!(zip3("AB123"), None);
        assert_eq!(restricted().len(), 17, "the 2000 Census list has 17 areas");
    }

    #[test]
    fn ages_over_89_are_one_category() {
        let born = date!(1930 - 06 - 15);
        assert_eq!(age_on(born, date!(2019 - 06 - 14)), Some(88));
        assert_eq!(age_on(born, date!(2019 - 06 - 15)), Some(89));
        assert_eq!(age_on(born, date!(2020 - 06 - 15)), Some(90));
        assert_eq!(age_on(born, date!(2026 - 01 - 01)), Some(AGE_CAP));
        assert_eq!(
            age_on(date!(1900 - 01 - 01), date!(2026 - 01 - 01)),
            Some(90)
        );
        assert_eq!(age_on(born, date!(1929 - 01 - 01)), None);
        assert_eq!(age_on(born, born), Some(0));
        assert_eq!(age_label(89), "89");
        assert_eq!(age_label(AGE_CAP), "90+");
    }

    #[test]
    fn dates_keep_their_year() {
        assert_eq!(year_only(date!(2024 - 07 - 19)), date!(2024 - 01 - 01));
    }
}
