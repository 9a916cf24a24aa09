//! The virtual file system every SFTP account sees, by construction and nothing else:
//!
//! ```text
//! /            the account's root (lists inbox and outbox)
//! /inbox       write-only: files put here become uploads when complete
//! /outbox      read-only: the receipts (and X12 999s) of the provider's processed uploads
//! ```
//!
//! A client's path is parsed into a [`VirtualPath`]; nothing here touches a real file
//! system, so `..`, absolute paths elsewhere, symlinks and other providers' files cannot
//! be reached: they have no [`VirtualPath`]. A path with a `..` component is refused
//! outright rather than normalised, so `cd ..` fails instead of silently staying put.
//! File names are metadata only: stored files get server-generated names.

/// Where a client's path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VirtualPath {
    /// `/`.
    Root,
    /// `/inbox`.
    Inbox,
    /// `/outbox`.
    Outbox,
    /// `/inbox/NAME`.
    InboxFile(String),
    /// `/outbox/NAME`.
    OutboxFile(String),
}

/// Why a path has no place in the jail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRefusal {
    /// It climbs with `..`.
    Traversal,
    /// It names something outside `/inbox` and `/outbox`.
    OutsideJail,
    /// A file name the gateway does not accept (control or bidirectional-override
    /// characters, empty, longer than 255 bytes).
    BadName,
}

impl PathRefusal {
    /// The reason code recorded in the audit trail.
    pub fn code(self) -> &'static str {
        match self {
            Self::Traversal => "path_traversal",
            Self::OutsideJail => "outside_jail",
            Self::BadName => "bad_file_name",
        }
    }
}

/// The directory relative paths start from, and where `realpath(".")` leads.
pub const HOME: &str = "/inbox";

impl VirtualPath {
    /// Parses `path` (absolute, or relative to [`HOME`]).
    pub fn parse(path: &str) -> Result<Self, PathRefusal> {
        let mut parts: Vec<&str> = Vec::new();
        if !path.starts_with('/') {
            parts.push(&HOME[1..]);
        }
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(PathRefusal::Traversal),
                other => parts.push(other),
            }
        }
        match parts.as_slice() {
            [] => Ok(Self::Root),
            ["inbox"] => Ok(Self::Inbox),
            ["outbox"] => Ok(Self::Outbox),
            ["inbox", name] => Ok(Self::InboxFile(file_name(name)?)),
            ["outbox", name] => Ok(Self::OutboxFile(file_name(name)?)),
            _ => Err(PathRefusal::OutsideJail),
        }
    }

    /// The canonical absolute path.
    pub fn display(&self) -> String {
        match self {
            Self::Root => "/".to_owned(),
            Self::Inbox => "/inbox".to_owned(),
            Self::Outbox => "/outbox".to_owned(),
            Self::InboxFile(name) => format!("/inbox/{name}"),
            Self::OutboxFile(name) => format!("/outbox/{name}"),
        }
    }
}

fn file_name(name: &str) -> Result<String, PathRefusal> {
    let bidi = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if name.is_empty() || name.len() > 255 || name.chars().any(|c| c.is_control() || bidi(c)) {
        return Err(PathRefusal::BadName);
    }
    Ok(name.to_owned())
}

/// Whether a name in `/inbox` is a temporary one (`.part`, `.tmp`, `.filepart`,
/// `.partial`, or a leading dot): such a file is complete only when renamed to a
/// non-temporary name, the convention of clients that upload and then rename.
pub fn is_temporary(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || [".part", ".tmp", ".filepart", ".partial"]
            .iter()
            .any(|suffix| lower.ends_with(suffix))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_jail_has_three_directories_and_their_files() {
        assert_eq!(VirtualPath::parse("/"), Ok(VirtualPath::Root));
        assert_eq!(VirtualPath::parse("."), Ok(VirtualPath::Inbox));
        assert_eq!(VirtualPath::parse(""), Ok(VirtualPath::Inbox));
        assert_eq!(VirtualPath::parse("//outbox/./"), Ok(VirtualPath::Outbox));
        assert_eq!(
            VirtualPath::parse("claims.837"),
            Ok(VirtualPath::InboxFile("claims.837".into()))
        );
        assert_eq!(
            VirtualPath::parse("/outbox/a.receipt.json"),
            Ok(VirtualPath::OutboxFile("a.receipt.json".into()))
        );
        assert_eq!(
            VirtualPath::parse("/inbox/-rf").unwrap().display(),
            "/inbox/-rf"
        );
    }

    #[test]
    fn climbing_and_leaving_are_refused_not_normalised() {
        for path in [
            "..",
            "/..",
            "/inbox/..",
            "../other/file",
            "/inbox/../outbox",
        ] {
            assert_eq!(
                VirtualPath::parse(path),
                Err(PathRefusal::Traversal),
                "{path}"
            );
        }
        for path in [
            "/etc/passwd",
            "/etc",
            "/inbox/sub/file",
            "/inboxx",
            "/inbox1/x",
            "/p10/f",
        ] {
            assert_eq!(
                VirtualPath::parse(path),
                Err(PathRefusal::OutsideJail),
                "{path}"
            );
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        let long = "a".repeat(256);
        for name in [
            "a\nb",
            "a\rb",
            "\u{1b}[31m",
            "x\u{202e}txt",
            "nul\0",
            long.as_str(),
        ] {
            assert_eq!(
                VirtualPath::parse(&format!("/inbox/{name}")),
                Err(PathRefusal::BadName),
                "{name:?}"
            );
        }
        assert!(VirtualPath::parse(&format!("/inbox/{}", "a".repeat(255))).is_ok());
    }

    #[test]
    fn temporary_names_wait_for_their_rename() {
        for name in [
            "x.part",
            "X.PART",
            "claims.837.tmp",
            ".claims.837",
            "f.filepart",
            "a.partial",
        ] {
            assert!(is_temporary(name), "{name}");
        }
        for name in ["claims.837", "part", "claims.csv"] {
            assert!(!is_temporary(name), "{name}");
        }
    }
}
