//! The built-in mappings shipped in `schemas/` and embedded in the binary.

/// `(name, TOML)` of every built-in mapping.
pub const BUILTIN: &[(&str, &str)] = &[
    ("x12-837p", include_str!("../../schemas/x12-837p.toml")),
    ("x12-837i", include_str!("../../schemas/x12-837i.toml")),
];

/// The TOML of the built-in mapping `name`.
pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, toml)| *toml)
}
