//! The protect stage: a mapped claim becomes a row to store, its PHI fields sealed under
//! the provider's data key and its blind indexes computed; and stored PHI is opened again
//! for a permitted reader.
//!
//! Each PHI value is sealed on its own (AES-256-GCM, fresh random nonce) with associated
//! data naming the table, the column and the claim's identity (`upload/record`), so a
//! value copied to another row or column does not open.

use std::sync::Arc;

use time::Date;
use zeroize::Zeroizing;

use crate::claims::{Claim, Money, Phi};
use crate::crypto::{BlindIndexKey, CryptoError, DataKey, FieldSlot};
use crate::keyring::{Keyring, KeyringError};
use crate::providers::ProviderCode;
use crate::store::{ClaimKey, ClaimRow, LineRow, SealedPhi, StoredPhi};

/// The table PHI columns belong to (part of every seal's associated data).
const TABLE: &str = "claims";

/// Seals claims of one provider: its active data key and its blind-index key.
#[derive(Debug, Clone)]
pub struct ClaimSealer {
    key: Arc<DataKey>,
    index: Arc<BlindIndexKey>,
}

impl ClaimSealer {
    /// The provider's current keys (created on first need).
    pub async fn for_provider(
        keyring: &Keyring,
        provider: &ProviderCode,
    ) -> Result<Self, KeyringError> {
        Ok(Self {
            key: keyring.sealing_key(provider).await?,
            index: keyring.index_key(provider).await?,
        })
    }

    /// A sealer over keys already at hand.
    pub fn new(key: Arc<DataKey>, index: Arc<BlindIndexKey>) -> Self {
        Self { key, index }
    }

    /// The id of the data key this sealer seals with.
    pub fn key_id(&self) -> &str {
        self.key.id()
    }

    /// The row to store for `claim`, found at `key`.
    pub fn seal(&self, key: ClaimKey, claim: &Claim) -> Result<ClaimRow, CryptoError> {
        let identity = key.row_identity();
        let birth_date = claim
            .birth_date
            .expose()
            .map(|d| Zeroizing::new(d.to_string()));
        let plain: [Option<&[u8]>; 7] = [
            text(&claim.member_id),
            text(&claim.patient_first_name),
            text(&claim.patient_last_name),
            birth_date.as_ref().map(|d| d.as_bytes()),
            text(&claim.address),
            text(&claim.city),
            text(&claim.zip),
        ];
        let mut phi = SealedPhi::default();
        for ((slot, value), column) in phi
            .values_mut()
            .into_iter()
            .zip(plain)
            .zip(SealedPhi::COLUMNS)
        {
            if let Some(value) = value {
                let at = FieldSlot {
                    table: TABLE,
                    column,
                    row: &identity,
                };
                *slot = Some(self.key.seal(at, value)?);
            }
        }
        let member_index = claim
            .member_id
            .expose()
            .as_deref()
            .filter(|m| !m.is_empty())
            .map(|m| self.index.member_id(m).to_vec());
        let person_index = match (
            claim.patient_last_name.expose(),
            claim.patient_first_name.expose(),
            claim.birth_date.expose(),
        ) {
            (Some(last), Some(first), Some(born)) => {
                Some(self.index.name_and_birth_date(last, first, *born).to_vec())
            }
            _ => None,
        };
        let first_service = claim
            .statement_from
            .or_else(|| claim.lines.iter().filter_map(|l| l.service_from).min());
        let deid_age = match (claim.birth_date.expose(), first_service) {
            (Some(born), Some(on)) => crate::deid::age_on(*born, on),
            _ => None,
        };
        Ok(ClaimRow {
            key,
            source_claim_id: claim.source_claim_id.clone(),
            claim_type: claim.claim_type.as_str(),
            frequency_code: claim.frequency.code().to_string(),
            original_claim_id: claim.original_claim_id.clone(),
            payer_id: claim.payer_id.clone(),
            payer_name: claim.payer_name.clone(),
            plan: claim.plan.clone(),
            sex: claim.sex.map(String::from),
            state: claim.state.clone(),
            billing_npi: code(claim.billing_npi.as_ref().map(|c| c.as_str())),
            billing_tin: code(claim.billing_tin.as_ref().map(|c| c.as_str())),
            rendering_npi: code(claim.rendering_npi.as_ref().map(|c| c.as_str())),
            attending_npi: code(claim.attending_npi.as_ref().map(|c| c.as_str())),
            facility_npi: code(claim.facility_npi.as_ref().map(|c| c.as_str())),
            bill_type: code(claim.bill_type.as_ref().map(|c| c.as_str())),
            place_of_service: code(claim.place_of_service.as_ref().map(|c| c.as_str())),
            statement_from: claim.statement_from,
            statement_through: claim.statement_through,
            admission_date: claim.admission_date,
            discharge_date: claim.discharge_date,
            admit_type: claim.admit_type.clone(),
            admit_source: claim.admit_source.clone(),
            discharge_status: claim.discharge_status.clone(),
            drg: code(claim.drg.as_ref().map(|c| c.as_str())),
            diagnoses: claim
                .diagnoses
                .iter()
                .map(|d| match d.poa {
                    Some(poa) => format!("{}:{poa}", d.code.as_str()),
                    None => d.code.as_str().to_owned(),
                })
                .collect::<Vec<_>>()
                .join(","),
            procedures: claim
                .procedures
                .iter()
                .map(|p| match p.date {
                    Some(date) => format!("{}:{date}", p.code),
                    None => p.code.clone(),
                })
                .collect::<Vec<_>>()
                .join(","),
            total_charge_cents: claim.total_charge.map(Money::cents),
            paid_cents: claim.paid.map(Money::cents),
            allowed_cents: claim.allowed.map(Money::cents),
            data_key_id: self.key.id().to_owned(),
            phi,
            member_index,
            person_index,
            deid_zip3: claim.zip.expose().as_deref().and_then(crate::deid::zip3),
            deid_age,
            lines: claim
                .lines
                .iter()
                .map(|l| LineRow {
                    line_number: i32::try_from(l.line_number).unwrap_or(i32::MAX),
                    service_from: l.service_from,
                    service_through: l.service_through,
                    procedure_code: code(l.procedure_code.as_ref().map(|c| c.as_str())),
                    modifiers: l
                        .modifiers
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    revenue_code: code(l.revenue_code.as_ref().map(|c| c.as_str())),
                    ndc: l.ndc.clone(),
                    units_milli: l.units_milli,
                    charge_cents: l.charge.map(Money::cents),
                    paid_cents: l.paid.map(Money::cents),
                    allowed_cents: l.allowed.map(Money::cents),
                    rendering_npi: code(l.rendering_npi.as_ref().map(|c| c.as_str())),
                    place_of_service: code(l.place_of_service.as_ref().map(|c| c.as_str())),
                })
                .collect(),
        })
    }

    /// The member-id blind index of `member_id` (for a look-up).
    pub fn member_index(&self, member_id: &str) -> Vec<u8> {
        self.index.member_id(member_id).to_vec()
    }

    /// The person blind index of a name and birth date (for a look-up).
    pub fn person_index(&self, last: &str, first: &str, born: Date) -> Vec<u8> {
        self.index.name_and_birth_date(last, first, born).to_vec()
    }
}

fn text(value: &Phi<Option<String>>) -> Option<&[u8]> {
    value.expose().as_deref().map(str::as_bytes)
}

fn code(value: Option<&str>) -> Option<String> {
    value.map(str::to_owned)
}

/// A stored claim's PHI, opened. Every value stays a [`Phi`].
#[derive(Debug, Default)]
pub struct ClaimPhi {
    /// Member id.
    pub member_id: Phi<Option<String>>,
    /// First name.
    pub first_name: Phi<Option<String>>,
    /// Last name.
    pub last_name: Phi<Option<String>>,
    /// Birth date.
    pub birth_date: Phi<Option<Date>>,
    /// Street address.
    pub address: Phi<Option<String>>,
    /// City.
    pub city: Phi<Option<String>>,
    /// ZIP code.
    pub zip: Phi<Option<String>>,
}

/// Opens a stored claim's PHI. After crypto-shredding this is
/// [`KeyringError::KeyDestroyed`]; a value moved from another row or column fails.
pub async fn open_phi(keyring: &Keyring, stored: &StoredPhi) -> Result<ClaimPhi, KeyringError> {
    let key = keyring.opening_key(&stored.data_key_id).await?;
    let identity = stored.key.row_identity();
    // Each opened value goes straight into a `Phi`, so it is wiped on every path.
    let mut opened: [Phi<Option<String>>; 7] = Default::default();
    for ((out, sealed), column) in opened
        .iter_mut()
        .zip(stored.phi.values())
        .zip(SealedPhi::COLUMNS)
    {
        if let Some(sealed) = sealed {
            let at = FieldSlot {
                table: TABLE,
                column,
                row: &identity,
            };
            let mut plain = key.open(at, sealed)?;
            let text = String::from_utf8(std::mem::take(&mut *plain))
                .map_err(|_| CryptoError::Malformed)?;
            *out = Phi::new(Some(text));
        }
    }
    let [
        member_id,
        first_name,
        last_name,
        birth_date,
        address,
        city,
        zip,
    ] = opened;
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let birth_date = birth_date
        .expose()
        .as_deref()
        .map(|text| Date::parse(text, &format).map_err(|_| CryptoError::Malformed))
        .transpose()?;
    Ok(ClaimPhi {
        member_id,
        first_name,
        last_name,
        birth_date: Phi::new(birth_date),
        address,
        city,
        zip,
    })
}
