//! The normalized claim model and its domain types.
//!
//! Values are parsed into types that can only hold valid values (parse, don't validate).
//! Identifying values are wrapped in [`Phi`]. None of these types knows about files,
//! HTTP or SQL.

pub mod codes;
pub mod model;
pub mod money;
pub mod validate;

pub use codes::{
    BillType, Drg, Icd10Cm, InvalidCode, Modifier, Npi, PlaceOfService, ProcedureCode, RevenueCode,
    Tin,
};
pub use model::{
    Claim, ClaimLine, ClaimType, Diagnosis, DiagnosisCode, Frequency, Phi, PhiValue, Procedure,
};
pub use money::{Money, MoneyError};
