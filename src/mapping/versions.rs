//! Versions of a provider's mapping: their lifecycle, content hash and structured diff.
//!
//! A version moves `draft → approved → active → retired`, and a retired version that was
//! reviewed may become active again (a rollback). Only a draft's content changes; its
//! SHA-256 is the ETag a reviewer approves, so an approval of content that changed since
//! it was read is refused.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use super::builtin::builtin;

/// Where a version is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MappingState {
    /// Written, editable, not yet reviewed.
    Draft,
    /// Reviewed by a principal other than its author; immutable from here on.
    Approved,
    /// The version new uploads of the provider are read with.
    Active,
    /// Was active; may be activated again.
    Retired,
}

impl MappingState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Approved => "approved",
            Self::Active => "active",
            Self::Retired => "retired",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Draft, Self::Approved, Self::Active, Self::Retired]
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

/// One stored version of a provider's mapping.
#[derive(Debug, Clone)]
pub struct MappingVersion {
    /// Its number, 1, 2, … per provider.
    pub version: i32,
    /// Lifecycle state.
    pub state: MappingState,
    /// `x12`, a built-in name, or a mapping definition in TOML.
    pub content: String,
    /// The author's note.
    pub comment: String,
    /// The principal that wrote it (`operator-console` for the CLI).
    pub author: String,
    /// When it was drafted.
    pub created_at: OffsetDateTime,
    /// The reviewer; `None` for a version activated without review (the operator console).
    pub approved_by: Option<String>,
    /// When it was approved.
    pub approved_at: Option<OffsetDateTime>,
    /// Who last activated it.
    pub activated_by: Option<String>,
    /// When it was last activated.
    pub activated_at: Option<OffsetDateTime>,
}

impl MappingVersion {
    /// The hex SHA-256 of the content: its ETag and the hash audit events name.
    pub fn content_sha256(&self) -> String {
        content_sha256(&self.content)
    }
}

/// The hex SHA-256 of mapping content.
pub fn content_sha256(content: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        content.as_bytes(),
    ))
}

/// How one setting differs between two versions (`None`: absent on that side).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Path of the setting, `claim.member_id.transforms[1].date`.
    pub path: String,
    /// Its value in the first version.
    pub from: Option<serde_json::Value>,
    /// Its value in the second version.
    pub to: Option<serde_json::Value>,
}

/// A structured diff of two versions: target fields added, removed and changed, and every
/// setting that differs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MappingDiff {
    /// Target fields (`claim.x`, `line.y`) only the second version fills.
    pub fields_added: Vec<String>,
    /// Target fields only the first version fills.
    pub fields_removed: Vec<String>,
    /// Target fields both fill, differently.
    pub fields_changed: Vec<String>,
    /// Every leaf setting that differs, in path order.
    pub changes: Vec<Change>,
}

/// Why content could not be compared.
#[derive(Debug, thiserror::Error)]
#[error("version {version} is not a readable mapping definition")]
pub struct Unreadable {
    /// The version that could not be read.
    pub version: i32,
}

/// The definition tree of mapping content (a built-in name reads as its TOML; `x12`,
/// which picks 837P or 837I per file, reads as the 837P definition).
fn tree(version: &MappingVersion) -> Result<serde_json::Value, Unreadable> {
    let name = version.content.trim();
    let text = match name {
        "x12" => builtin("x12-837p"),
        other => builtin(other),
    }
    .unwrap_or(&version.content);
    let value: toml::Value = toml::from_str(text).map_err(|_| Unreadable {
        version: version.version,
    })?;
    serde_json::to_value(value).map_err(|_| Unreadable {
        version: version.version,
    })
}

fn flatten(value: &serde_json::Value, path: String, out: &mut BTreeMap<String, serde_json::Value>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let next = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten(child, next, out);
            }
        }
        serde_json::Value::Array(items) if !items.is_empty() => {
            for (i, child) in items.iter().enumerate() {
                flatten(child, format!("{path}[{i}]"), out);
            }
        }
        leaf => {
            out.insert(path, leaf.clone());
        }
    }
}

/// The target field a setting path belongs to (`claim.member_id` of
/// `claim.member_id.transforms[0]`), if it is one.
fn field_of(path: &str) -> Option<String> {
    let mut parts = path.splitn(3, '.');
    let section = parts.next()?;
    let field = parts.next()?;
    let field = field.split('[').next().unwrap_or(field);
    matches!(section, "claim" | "line").then(|| format!("{section}.{field}"))
}

/// Compares two versions setting by setting.
pub fn diff(from: &MappingVersion, to: &MappingVersion) -> Result<MappingDiff, Unreadable> {
    let mut old = BTreeMap::new();
    flatten(&tree(from)?, String::new(), &mut old);
    let mut new = BTreeMap::new();
    flatten(&tree(to)?, String::new(), &mut new);
    let mut out = MappingDiff::default();
    let mut paths: Vec<&String> = old.keys().chain(new.keys()).collect();
    paths.sort();
    paths.dedup();
    for path in paths {
        let (a, b) = (old.get(path), new.get(path));
        if a != b {
            out.changes.push(Change {
                path: path.clone(),
                from: a.cloned(),
                to: b.cloned(),
            });
        }
    }
    let fields = |m: &BTreeMap<String, serde_json::Value>| {
        let mut f: Vec<String> = m.keys().filter_map(|p| field_of(p)).collect();
        f.dedup();
        f
    };
    let (old_fields, new_fields) = (fields(&old), fields(&new));
    out.fields_added = new_fields
        .iter()
        .filter(|f| !old_fields.contains(f))
        .cloned()
        .collect();
    out.fields_removed = old_fields
        .iter()
        .filter(|f| !new_fields.contains(f))
        .cloned()
        .collect();
    let mut changed: Vec<String> = out
        .changes
        .iter()
        .filter_map(|c| field_of(&c.path))
        .filter(|f| old_fields.contains(f) && new_fields.contains(f))
        .collect();
    changed.dedup();
    out.fields_changed = changed;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn version(n: i32, content: &str) -> MappingVersion {
        MappingVersion {
            version: n,
            state: MappingState::Draft,
            content: content.into(),
            comment: String::new(),
            author: "a".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            approved_by: None,
            approved_at: None,
            activated_by: None,
            activated_at: None,
        }
    }

    #[test]
    fn diff_names_fields_added_removed_and_changed_with_each_setting() {
        let a = version(
            1,
            "name = \"m\"\nformat = \"csv\"\n[claim]\nsource_claim_id = { column = \"ID\" }\nbirth_date = { column = \"DOB\", transforms = [\"trim\", { date = \"MM/DD/YYYY\" }] }\nzip = { column = \"ZIP\" }\n",
        );
        let b = version(
            2,
            "name = \"m\"\nformat = \"csv\"\n[claim]\nsource_claim_id = { column = \"ID\" }\nbirth_date = { column = \"DOB\", transforms = [\"trim\", { date = \"YYYY-MM-DD\" }] }\ncity = { column = \"CITY\" }\n",
        );
        let d = diff(&a, &b).unwrap();
        assert_eq!(d.fields_added, vec!["claim.city"]);
        assert_eq!(d.fields_removed, vec!["claim.zip"]);
        assert_eq!(d.fields_changed, vec!["claim.birth_date"]);
        let date = d
            .changes
            .iter()
            .find(|c| c.path == "claim.birth_date.transforms[1].date")
            .unwrap();
        assert_eq!(date.from, Some(serde_json::json!("MM/DD/YYYY")));
        assert_eq!(date.to, Some(serde_json::json!("YYYY-MM-DD")));
        assert_eq!(d.changes.len(), 3, "{d:?}");
        assert_eq!(diff(&a, &a).unwrap(), MappingDiff::default());
    }

    #[test]
    fn builtin_names_diff_as_their_definitions_and_bad_toml_is_unreadable() {
        let x12 = version(1, "x12");
        let p = version(2, "x12-837p");
        assert_eq!(diff(&x12, &p).unwrap(), MappingDiff::default());
        let i = version(3, "x12-837i");
        assert!(!diff(&p, &i).unwrap().changes.is_empty());
        assert_eq!(diff(&p, &version(4, "[claim")).unwrap_err().version, 4);
    }

    #[test]
    fn states_round_trip_and_hash_is_of_the_content() {
        for s in ["draft", "approved", "active", "retired"] {
            assert_eq!(MappingState::parse(s).unwrap().as_str(), s);
        }
        assert!(MappingState::parse("deleted").is_none());
        assert_eq!(
            version(1, "abc").content_sha256(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
