//! The tenant of a mutual-TLS syslog client, from a name in its certificate
//! (`client_tenants` of a TLS listener).
//!
//! The certificate has already been verified against the listener's
//! `client_ca_file` by the handshake; this only reads which names it carries (its
//! subject's CN, its DNS, URI and email SANs) and looks them up. A certificate is
//! refused when none of its names is mapped (and there is no `"*"`), or when two of
//! them map to different tenants: guessing would put a sender's records into a
//! tenant nobody chose.

use std::collections::{BTreeMap, HashMap};

/// Why a client certificate gives no tenant (the `reason` label of
/// `chute_syslog_connections_refused_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmapped {
    /// None of its names is mapped, and there is no `"*"`.
    Unknown { names: Vec<String> },
    /// Its names map to different tenants.
    Ambiguous { names: Vec<String> },
    /// No certificate, or one that cannot be decoded.
    Unreadable,
}

impl Unmapped {
    pub fn reason(&self) -> &'static str {
        match self {
            Unmapped::Unknown { .. } => "unmapped_client",
            Unmapped::Ambiguous { .. } => "ambiguous_client",
            Unmapped::Unreadable => "unreadable_client_certificate",
        }
    }
}

impl std::fmt::Display for Unmapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unmapped::Unknown { names } => write!(
                f,
                "no name of the client's certificate is in client_tenants: {names:?}"
            ),
            Unmapped::Ambiguous { names } => write!(
                f,
                "the client's certificate names map to different tenants: {names:?}"
            ),
            Unmapped::Unreadable => write!(f, "the client's certificate cannot be read"),
        }
    }
}

/// A listener's `client_tenants`, ready for lookups.
#[derive(Debug, Default)]
pub struct ClientTenants {
    /// Names, lowercased (DNS names compare without case; the rest are rarely
    /// written with two cases for two clients).
    names: HashMap<String, String>,
    /// The `"*"` entry.
    fallback: Option<String>,
}

impl ClientTenants {
    pub fn new(config: &BTreeMap<String, String>) -> ClientTenants {
        let mut map = ClientTenants::default();
        for (name, tenant) in config {
            if name == "*" {
                map.fallback = Some(tenant.clone());
            } else {
                map.names.insert(name.to_lowercase(), tenant.clone());
            }
        }
        map
    }

    /// Whether certificates choose the tenant on this listener.
    pub fn active(&self) -> bool {
        !self.names.is_empty() || self.fallback.is_some()
    }

    /// The tenant of a client whose certificate (DER) is `der`.
    ///
    /// # Errors
    /// [`Unmapped`], when no single tenant fits.
    pub fn tenant_of(&self, der: Option<&[u8]>) -> Result<&str, Unmapped> {
        let names = der
            .and_then(|d| crate::tls::certificate_names(d).ok())
            .ok_or(Unmapped::Unreadable)?;
        let mut found: Option<&str> = None;
        for name in &names {
            let Some(tenant) = self.names.get(&name.to_lowercase()) else {
                continue;
            };
            match found {
                Some(t) if t != tenant => return Err(Unmapped::Ambiguous { names }),
                _ => found = Some(tenant),
            }
        }
        found
            .or(self.fallback.as_deref())
            .ok_or(Unmapped::Unknown { names })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &str, sans: &[&str]) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn map(pairs: &[(&str, &str)]) -> ClientTenants {
        ClientTenants::new(
            &pairs
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_cn_or_any_san_picks_the_tenant_and_dns_names_ignore_case() {
        let m = map(&[("web-1", "web"), ("db-1.example.net", "db")]);
        assert!(m.active());
        assert_eq!(m.tenant_of(Some(&cert("web-1", &[]))), Ok("web"));
        assert_eq!(
            m.tenant_of(Some(&cert("someone", &["DB-1.Example.NET"]))),
            Ok("db")
        );
        // Both names, one tenant: fine.
        let both = map(&[("web-1", "web"), ("web-1.example.net", "web")]);
        assert_eq!(
            both.tenant_of(Some(&cert("web-1", &["web-1.example.net"]))),
            Ok("web")
        );
    }

    #[test]
    fn unknown_ambiguous_and_unreadable_certificates_are_refused_unless_a_star_catches_them() {
        let m = map(&[("web-1", "web"), ("db-1", "db")]);
        let stranger = cert("stranger", &["stranger.example.net"]);
        assert_eq!(
            m.tenant_of(Some(&stranger)),
            Err(Unmapped::Unknown {
                names: vec!["stranger".into(), "stranger.example.net".into()]
            })
        );
        let both = m.tenant_of(Some(&cert("web-1", &["db-1"]))).unwrap_err();
        assert_eq!(both.reason(), "ambiguous_client");
        assert_eq!(
            m.tenant_of(Some(b"not a certificate")),
            Err(Unmapped::Unreadable)
        );
        assert_eq!(m.tenant_of(None), Err(Unmapped::Unreadable));
        let star = map(&[("web-1", "web"), ("*", "rest")]);
        assert_eq!(star.tenant_of(Some(&stranger)), Ok("rest"));
        assert_eq!(star.tenant_of(Some(&cert("web-1", &[]))), Ok("web"));
        assert!(!map(&[]).active());
    }
}
