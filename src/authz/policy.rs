//! The role → permission policy: `policies/model.conf` and `policies/policy.csv`, checked
//! line by line at start-up and evaluated by casbin.
//!
//! The CSV is parsed here first so that a mistake is refused with its line number and a
//! precise reason (casbin itself would accept an unknown role or a misspelt action and
//! simply never match it); the checked rows are then handed to casbin's enforcer.

use std::path::Path;

use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi};

use super::{Permission, Role, Scope};

/// Why the policy could not be loaded. Messages name the file and line.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file could not be read.
    #[error("{path}: cannot read: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: std::io::Error,
    },
    /// A policy line is wrong.
    #[error("{path}:{line}: {reason}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// casbin refused the model (or the checked rows).
    #[error("{path}: {reason}")]
    Model {
        /// The model file.
        path: String,
        /// casbin's reason.
        reason: String,
    },
}

/// One checked policy row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyRow {
    /// The role.
    pub role: Role,
    /// The scope a grant must have.
    pub scope: Scope,
    /// The permission.
    pub permission: Permission,
}

/// Parses `policy.csv` text; `path` is only for messages.
pub fn parse_rows(text: &str, path: &str) -> Result<Vec<PolicyRow>, PolicyError> {
    let mut rows = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |reason: String| PolicyError::Line {
            path: path.to_owned(),
            line: index + 1,
            reason,
        };
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [kind, role, scope, object, action] = fields.as_slice() else {
            return Err(fail(format!(
                "expected 5 comma-separated fields `p, role, scope, object, action`, found {}",
                fields.len()
            )));
        };
        if *kind != "p" {
            return Err(fail(format!(
                "rows start with `p` (grants of roles to principals live in the database), found `{kind}`"
            )));
        }
        let role: Role = role
            .parse()
            .map_err(|_| fail(format!("unknown role `{role}` (known: {})", Role::names())))?;
        let scope = Scope::parse(scope)
            .ok_or_else(|| fail(format!("scope `{scope}` is neither `global` nor `tenant`")))?;
        let permission = Permission::from_parts(object, action)
            .ok_or_else(|| fail(format!("unknown permission `{object}, {action}`")))?;
        let row = PolicyRow {
            role,
            scope,
            permission,
        };
        if rows.contains(&row) {
            return Err(fail("duplicate row".into()));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The loaded policy: the checked rows and the casbin enforcer built from them.
pub struct Policy {
    enforcer: Enforcer,
    rows: Vec<PolicyRow>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Loads and checks the model and policy files.
    pub async fn load(model_path: &Path, policy_path: &Path) -> Result<Self, PolicyError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|reason| PolicyError::Read {
                path: path.display().to_string(),
                reason,
            })
        };
        let model_text = read(model_path)?;
        let policy_text = read(policy_path)?;
        Self::from_texts(
            &model_text,
            &model_path.display().to_string(),
            &policy_text,
            &policy_path.display().to_string(),
        )
        .await
    }

    /// Builds the policy from the texts of the two files.
    pub async fn from_texts(
        model_text: &str,
        model_path: &str,
        policy_text: &str,
        policy_path: &str,
    ) -> Result<Self, PolicyError> {
        let rows = parse_rows(policy_text, policy_path)?;
        let model_err = |e: casbin::Error| PolicyError::Model {
            path: model_path.to_owned(),
            reason: e.to_string(),
        };
        let model = DefaultModel::from_str(model_text)
            .await
            .map_err(model_err)?;
        let mut enforcer = Enforcer::new(model, MemoryAdapter::default())
            .await
            .map_err(model_err)?;
        let rules = rows
            .iter()
            .map(|r| {
                vec![
                    r.role.as_str().to_owned(),
                    r.scope.as_str().to_owned(),
                    r.permission.object().to_owned(),
                    r.permission.action().to_owned(),
                ]
            })
            .collect();
        enforcer.add_policies(rules).await.map_err(model_err)?;
        let policy = Self { enforcer, rows };
        // The model must evaluate: a matcher naming an unknown field fails here, at
        // start-up, instead of denying every request later.
        policy
            .enforcer
            .enforce(("analyst", "global", "claims", "read_phi"))
            .map_err(model_err)?;
        Ok(policy)
    }

    /// Whether `role`, held with `scope`, allows `permission`. An evaluation error denies.
    pub fn allows(&self, role: Role, scope: Scope, permission: Permission) -> bool {
        self.enforcer
            .enforce((
                role.as_str(),
                scope.as_str(),
                permission.object(),
                permission.action(),
            ))
            .unwrap_or(false)
    }

    /// The checked rows, in file order.
    pub fn rows(&self) -> &[PolicyRow] {
        &self.rows
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MODEL: &str = include_str!("../../policies/model.conf");
    const POLICY: &str = include_str!("../../policies/policy.csv");

    #[tokio::test]
    async fn the_shipped_policy_evaluates_scopes_as_documented() {
        let policy = Policy::from_texts(MODEL, "model.conf", POLICY, "policy.csv")
            .await
            .unwrap();
        let read_phi = Permission::ClaimsReadPhi;
        assert!(policy.allows(Role::PhiReader, Scope::Tenant, read_phi));
        assert!(policy.allows(Role::PhiReader, Scope::Global, read_phi));
        assert!(!policy.allows(Role::SecurityAdmin, Scope::Global, read_phi));
        let write = Permission::PrincipalsWrite;
        assert!(policy.allows(Role::SecurityAdmin, Scope::Global, write));
        assert!(
            !policy.allows(Role::SecurityAdmin, Scope::Tenant, write),
            "a global permission needs a global grant"
        );
        // casbin agrees with the parsed rows on every role x scope x permission.
        for role in Role::ALL {
            for scope in [Scope::Global, Scope::Tenant] {
                for permission in Permission::ALL {
                    let expected = policy.rows().iter().any(|r| {
                        r.role == role
                            && r.permission == permission
                            && (r.scope == scope || r.scope == Scope::Tenant)
                    });
                    assert_eq!(
                        policy.allows(role, scope, permission),
                        expected,
                        "{role} {scope:?} {permission:?}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn mistakes_are_refused_with_their_line() {
        for (text, line, needle) in [
            ("# c\np, analyst, tenant, claims\n", 2, "expected 5"),
            (
                "p, wizard, global, claims, read_phi\n",
                1,
                "unknown role `wizard`",
            ),
            (
                "\n\np, analyst, local, claims, read_phi\n",
                3,
                "scope `local`",
            ),
            (
                "p, analyst, tenant, claims, delete\n",
                1,
                "unknown permission",
            ),
            ("g, alice, analyst, tenant, x\n", 1, "rows start with `p`"),
            (
                "p, analyst, tenant, claims, read_deidentified\np, analyst, tenant, claims, read_deidentified\n",
                2,
                "duplicate",
            ),
        ] {
            let err = Policy::from_texts(MODEL, "model.conf", text, "policy.csv")
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("policy.csv:{line}: ")) && err.contains(needle),
                "{err}"
            );
        }
        let err = Policy::from_texts("[request_definition]\nr = sub\n", "model.conf", POLICY, "p")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("model.conf: "), "{err}");
    }
}
