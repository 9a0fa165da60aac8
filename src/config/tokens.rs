//! `[[tokens]]`: who may send and read which tenants' records.
//!
//! A token is 32 random bytes, given to clients as `chute_` and 64 hex digits;
//! the configuration holds only its SHA-256. A fast hash is enough here: the
//! token has 256 bits of entropy, so no guess from a stolen configuration can
//! succeed, and checking a request costs one SHA-256 of 70 bytes, not the tens of
//! milliseconds a password hash (argon2id) is tuned to cost for low-entropy
//! passwords.

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Send records (`/api/v1/logs` and the protocols to come).
    Ingest,
    /// Read records (the Loki API, `chute query`, `chute tail`).
    Query,
    /// The operator's view: metrics, `/api/v1/cluster`, readiness details.
    Admin,
}

impl Scope {
    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "ingest" => Some(Scope::Ingest),
            "query" => Some(Scope::Query),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// Every tenant: `tenants = ["*"]`.
pub const ALL_TENANTS: &str = "*";

/// One `[[tokens]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Names the token in logs; unique. 1 to 64 of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// SHA-256 of the token, 64 hex digits (`chute token new` prints it).
    pub sha256: String,
    /// The tenants the token may use, the first being the one a request that names
    /// none gets; `["*"]` for every tenant.
    pub tenants: Vec<String>,
    pub scopes: Vec<Scope>,
}

/// SHA-256 of `token`, as bytes.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// `hex` as 32 bytes, if it is 64 hex digits.
pub fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A fresh token: `chute_` and 64 hex digits of the system's random source.
///
/// # Errors
/// The system has no random source to read.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("chute_{}", hex(&bytes)))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `name` is a valid tenant or token name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The problems of `tokens`, as (key path, message).
pub fn check(tokens: &[TokenConfig]) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut digests = std::collections::HashSet::new();
    for (i, t) in tokens.iter().enumerate() {
        let at = |key: &str| format!("tokens[{i}].{key}");
        if !valid_name(&t.name) {
            errors.push((at("name"), "must be 1 to 64 of A-Z a-z 0-9 . _ -".into()));
        } else if !names.insert(t.name.as_str()) {
            errors.push((at("name"), format!("{:?} names another token too", t.name)));
        }
        match parse_digest(&t.sha256) {
            None => errors.push((
                at("sha256"),
                "must be the 64 hex digits of the token's SHA-256 (chute token new prints it)"
                    .into(),
            )),
            Some(d) if !digests.insert(d) => {
                errors.push((at("sha256"), "is the hash of another token too".into()))
            }
            Some(_) => {}
        }
        if t.tenants.is_empty() {
            errors.push((
                at("tenants"),
                "must name at least one tenant, or \"*\"".into(),
            ));
        }
        for tenant in &t.tenants {
            if tenant != ALL_TENANTS && !valid_name(tenant) {
                errors.push((
                    at("tenants"),
                    format!("{tenant:?}: a tenant is 1 to 64 of A-Z a-z 0-9 . _ -, or \"*\""),
                ));
            }
        }
        if t.scopes.is_empty() {
            errors.push((at("scopes"), "must name ingest, query or admin".into()));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_is_random_and_its_digest_round_trips_through_hex() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("chute_") && a.len() == 70, "{a}");
        let d = digest(&a);
        assert_eq!(parse_digest(&hex(&d)), Some(d));
        assert_eq!(
            hex(&digest("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(parse_digest("zz"), None);
    }

    #[test]
    fn bad_entries_are_named_by_key() {
        let t = |name: &str, sha: &str, tenants: &[&str], scopes: Vec<Scope>| TokenConfig {
            name: name.into(),
            sha256: sha.into(),
            tenants: tenants.iter().map(|s| s.to_string()).collect(),
            scopes,
        };
        let sha = hex(&digest("x"));
        let errors = check(&[
            t("a", &sha, &["acme"], vec![Scope::Ingest]),
            t("a", &sha, &[], vec![]),
            t("b c", "nothex", &["bad tenant"], vec![Scope::Query]),
        ]);
        let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "tokens[1].name",
                "tokens[1].sha256",
                "tokens[1].tenants",
                "tokens[1].scopes",
                "tokens[2].name",
                "tokens[2].sha256",
                "tokens[2].tenants",
            ]
        );
    }
}
