//! A shard's connection string, with libpq's TLS settings honoured.
//!
//! tokio-postgres knows `sslmode` disable, prefer and require only, and neither
//! `sslrootcert` nor client certificates. So chute takes libpq's TLS keys out of
//! the string (`key=value` or `postgresql://...?...`), gives tokio-postgres the
//! rest, and `sinks::postgres::tls` makes the rustls configuration:
//!
//! - `disable`: plaintext;
//! - `prefer` (libpq's default): TLS if the server offers it, else plaintext; the
//!   certificate is not checked;
//! - `require`: TLS or no connection; the certificate is checked against
//!   `sslrootcert` when one is given (as libpq does), else not;
//! - `verify-ca`: TLS, the certificate signed by `sslrootcert`;
//! - `verify-full`: that, and issued for the host connected to.
//!
//! `sslcert` and `sslkey` present a client certificate. A connection never falls
//! back to plaintext below `prefer`.

use std::path::PathBuf;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The TLS settings taken out of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// Keys chute reads itself.
const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Why a connection string cannot be used. Never holds the string itself (it may
/// hold a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsnError {
    #[error("sslmode {0:?} is not one of disable, prefer, require, verify-ca, verify-full")]
    SslMode(String),
    #[error("sslmode {0} needs sslrootcert: the CA certificate(s) to verify the server with")]
    NoRootCert(&'static str),
    #[error("sslcert and sslkey go together")]
    HalfIdentity,
    #[error("unterminated quoted value")]
    Unterminated,
}

/// `dsn` without libpq's TLS keys, and what they said.
///
/// # Errors
/// An unknown `sslmode`, a verifying mode without `sslrootcert`, half a client
/// identity, or an unterminated quote.
pub fn split(dsn: &str) -> Result<(String, Tls), DsnError> {
    let (rest, pairs) = if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        split_url(dsn)
    } else {
        split_conninfo(dsn)?
    };
    let get = |key: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let mode = match get("sslmode").as_deref() {
        None | Some("prefer") => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        Some("require") => SslMode::Require,
        Some("verify-ca") => SslMode::VerifyCa,
        Some("verify-full") => SslMode::VerifyFull,
        Some(other) => return Err(DsnError::SslMode(other.to_owned())),
    };
    let tls = Tls {
        mode,
        root_cert: get("sslrootcert").map(PathBuf::from),
        client_cert: get("sslcert").map(PathBuf::from),
        client_key: get("sslkey").map(PathBuf::from),
    };
    if tls.root_cert.is_none() {
        match mode {
            SslMode::VerifyCa => return Err(DsnError::NoRootCert("verify-ca")),
            SslMode::VerifyFull => return Err(DsnError::NoRootCert("verify-full")),
            _ => {}
        }
    }
    if tls.client_cert.is_some() != tls.client_key.is_some() {
        return Err(DsnError::HalfIdentity);
    }
    Ok((rest, tls))
}

/// A URL without the TLS query parameters, and those parameters.
fn split_url(dsn: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = dsn.split_once('?') else {
        return (dsn.to_owned(), Vec::new());
    };
    let mut ours = Vec::new();
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if TLS_KEYS.contains(&k.as_ref()) {
            ours.push((k.into_owned(), v.into_owned()));
        } else {
            kept.append_pair(&k, &v);
        }
    }
    let kept = kept.finish();
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{kept}")
    };
    (rest, ours)
}

/// `key=value` pairs (values maybe single-quoted, with `\` escapes) without the
/// TLS keys, and those keys' values.
fn split_conninfo(dsn: &str) -> Result<(String, Vec<(String, String)>), DsnError> {
    let mut kept: Vec<&str> = Vec::new();
    let mut ours = Vec::new();
    let bytes = dsn.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &dsn[start..i];
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < bytes.len() && bytes[i] == b'\'' {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(DsnError::Unterminated),
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') if i + 1 < bytes.len() => {
                            value.push(bytes[i + 1] as char);
                            i += 2;
                        }
                        Some(_) => {
                            let c = dsn[i..].chars().next().unwrap_or_default();
                            value.push(c);
                            i += c.len_utf8();
                        }
                    }
                }
            } else {
                let v = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                value.push_str(&dsn[v..i]);
            }
        }
        if TLS_KEYS.contains(&key) {
            ours.push((key.to_owned(), value));
        } else {
            kept.push(&dsn[start..i]);
        }
    }
    Ok((kept.join(" "), ours))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_keys_come_out_of_both_forms_and_the_rest_stays_as_written() {
        let (rest, tls) = split(
            "host=db.internal password='a \\' b' sslmode=verify-full \
             sslrootcert = '/etc/my ca.pem' dbname=chute",
        )
        .unwrap();
        assert_eq!(rest, "host=db.internal password='a \\' b' dbname=chute");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/my ca.pem")));
        let (rest, tls) = split(
            "postgresql://u@db:5432/chute?sslmode=require&application_name=x&sslcert=c.pem&sslkey=k.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgresql://u@db:5432/chute?application_name=x");
        assert_eq!(tls.mode, SslMode::Require);
        assert_eq!(tls.client_key, Some(PathBuf::from("k.pem")));
        let (rest, tls) = split("host=/var/run/postgresql dbname=chute").unwrap();
        assert_eq!(rest, "host=/var/run/postgresql dbname=chute");
        assert_eq!(tls.mode, SslMode::Prefer);
    }

    #[test]
    fn what_cannot_be_honoured_is_an_error_not_a_weaker_connection() {
        assert_eq!(
            split("host=x sslmode=verify-full"),
            Err(DsnError::NoRootCert("verify-full"))
        );
        assert_eq!(
            split("host=x sslmode=allow"),
            Err(DsnError::SslMode("allow".into()))
        );
        assert_eq!(
            split("host=x sslmode=require sslcert=c.pem"),
            Err(DsnError::HalfIdentity)
        );
        assert_eq!(split("host=x password='open"), Err(DsnError::Unterminated));
    }
}
