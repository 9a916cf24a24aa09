//! Business rules over a mapped claim. Field shapes and code sets were checked when the
//! values were parsed into their types; these rules look at the claim as a whole.
//!
//! | code | severity | rule |
//! |---|---|---|
//! | `claim.no_lines` | error | a claim has at least one line |
//! | `claim.charge_sum` | error | the line charges add up to the claim's total charge |
//! | `claim.bill_type_missing` | error | an institutional claim has a type of bill |
//! | `claim.revenue_code_missing` | error | every institutional line has a revenue code |
//! | `claim.place_of_service_missing` | error | a professional claim has a place of service (on the claim or every line) |
//! | `claim.procedure_missing` | error | every professional line has a procedure code |
//! | `claim.service_outside_statement` | warning | line service dates fall inside the statement period |
//! | `claim.dates_reversed` | error | a period's start is not after its end |
//! | `claim.original_missing` | warning | a replacement or void names the claim it corrects |

use super::model::{Claim, ClaimType, Frequency};
use super::money::Money;
use crate::findings::{Finding, Position};

/// Appends a finding for every rule `claim` breaks.
pub fn validate(claim: &Claim, at: &Position, findings: &mut Vec<Finding>) {
    let mut error = |code, message: &str| findings.push(Finding::error(code, at.clone(), message));
    if claim.lines.is_empty() {
        error("claim.no_lines", "the claim has no service lines");
    }
    if let Some(total) = claim.total_charge {
        let lines: Option<Money> = claim.lines.iter().map(|l| l.charge).sum::<Option<Money>>();
        if lines.is_some_and(|sum| sum != total) && !claim.lines.is_empty() {
            error(
                "claim.charge_sum",
                "the line charges do not add up to the claim's total charge",
            );
        }
    }
    match claim.claim_type {
        ClaimType::Institutional => {
            if claim.bill_type.is_none() {
                error(
                    "claim.bill_type_missing",
                    "an institutional claim needs a type of bill",
                );
            }
            if claim.lines.iter().any(|l| l.revenue_code.is_none()) {
                error(
                    "claim.revenue_code_missing",
                    "every institutional line needs a revenue code",
                );
            }
        }
        ClaimType::Professional => {
            if claim.place_of_service.is_none()
                && claim.lines.iter().any(|l| l.place_of_service.is_none())
            {
                error(
                    "claim.place_of_service_missing",
                    "a professional claim needs a place of service",
                );
            }
            if claim.lines.iter().any(|l| l.procedure_code.is_none()) {
                error(
                    "claim.procedure_missing",
                    "every professional line needs a procedure code",
                );
            }
        }
    }
    let reversed = |a: Option<time::Date>, b: Option<time::Date>| matches!((a, b), (Some(a), Some(b)) if a > b);
    if reversed(claim.statement_from, claim.statement_through)
        || reversed(claim.admission_date, claim.discharge_date)
        || claim
            .lines
            .iter()
            .any(|l| reversed(l.service_from, l.service_through))
    {
        error("claim.dates_reversed", "a period ends before it starts");
    }
    if let (Some(from), Some(through)) = (claim.statement_from, claim.statement_through) {
        let outside = claim.lines.iter().any(|l| {
            l.service_from.is_some_and(|d| d < from || d > through)
                || l.service_through.is_some_and(|d| d < from || d > through)
        });
        if outside {
            findings.push(Finding::warning(
                "claim.service_outside_statement",
                at.clone(),
                "a line's service dates fall outside the statement period",
            ));
        }
    }
    if matches!(claim.frequency, Frequency::Replacement | Frequency::Void)
        && claim.original_claim_id.is_none()
    {
        findings.push(Finding::warning(
            "claim.original_missing",
            at.clone(),
            "a replacement or void does not name the claim it corrects",
        ));
    }
}
