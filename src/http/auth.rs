//! Who a request comes from: the token it presents, the tenant it may use.
//!
//! Without `[[tokens]]` the API is open, as before: the tenant is the one the
//! request names (`X-Chute-Tenant` for ingest, `X-Scope-OrgID` for queries), or
//! `default`. With tokens, every ingest and query request needs one, as
//! `Authorization: Bearer <token>` or HTTP Basic with the token as the password
//! (agents such as Promtail and Fluent Bit only do Basic). The tenant header then
//! chooses among the token's tenants; without it the request gets the first the
//! token lists (`default` for a token of every tenant). A websocket upgrade (the
//! live tail) may carry the token in a subprotocol instead, since browsers cannot
//! set headers on a websocket: see [`WEBSOCKET_TOKEN_PREFIX`].
//!
//! Refusals are 401 (no token, an unknown one, unreadable credentials) or 403 (a
//! scope or tenant the token lacks), each counted in `chute_auth_refused_total`
//! by reason; their log lines are limited to one per reason per 10 s, with the
//! number left out, so a flood of bad requests cannot flood the log. The token is
//! never logged, only the configured name of a known one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use base64::Engine;

use super::error::ApiError;
use crate::config::tokens::{self, ALL_TENANTS};
use crate::config::{Config, OpsAccess, Scope, TokenConfig};
use crate::metrics::Metrics;

/// A configured token: its name and what it may do.
#[derive(Debug)]
pub struct Grant {
    pub name: String,
    tenants: Vec<String>,
    scopes: Vec<Scope>,
}

impl Grant {
    fn all_tenants(&self) -> bool {
        self.tenants.iter().any(|t| t == ALL_TENANTS)
    }
}

/// Who is asking, once admitted.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: String,
    /// The token's grant; `None` when the API is open.
    pub grant: Option<Arc<Grant>>,
}

/// A refusal: 401 or 403, with a bounded reason.
#[derive(Debug)]
pub struct Denied {
    pub status: StatusCode,
    pub reason: &'static str,
    pub message: String,
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        ApiError::new(d.status, d.reason, d.message)
    }
}

impl From<Denied> for crate::query::QueryError {
    fn from(d: Denied) -> Self {
        if d.status == StatusCode::FORBIDDEN {
            crate::query::QueryError::Forbidden(d.message)
        } else {
            crate::query::QueryError::Unauthorized(d.message)
        }
    }
}

/// Configured tokens by digest.
type Tokens = HashMap<[u8; 32], Arc<Grant>>;

/// The tokens of the configuration, by digest, and what the refusals cost.
pub struct Auth {
    /// Replaced whole by SIGHUP ([`Auth::set_tokens`]).
    tokens: RwLock<Arc<Tokens>>,
    ops: OpsAccess,
    metrics: Arc<Metrics>,
    /// Per reason: when it was last logged, and how many were not since.
    logged: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

/// At most one log line per refusal reason in this long.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl Auth {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Auth {
        Auth {
            tokens: RwLock::new(Arc::new(Auth::table(&config.tokens))),
            ops: config.http.ops_access,
            metrics,
            logged: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a new set of tokens (SIGHUP): requests admitted from now on are
    /// checked against them; a revoked token is refused at its next request.
    pub fn set_tokens(&self, tokens: &[TokenConfig]) {
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Auth::table(tokens));
    }

    fn tokens(&self) -> Arc<Tokens> {
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn table(tokens: &[TokenConfig]) -> Tokens {
        tokens
            .iter()
            .filter_map(|t| {
                let digest = tokens::parse_digest(&t.sha256)?;
                let grant = Grant {
                    name: t.name.clone(),
                    tenants: t.tenants.clone(),
                    scopes: t.scopes.clone(),
                };
                Some((digest, Arc::new(grant)))
            })
            .collect()
    }

    /// Whether tokens are required.
    pub fn required(&self) -> bool {
        !self.tokens().is_empty()
    }

    /// The caller of a request that needs `scope`, using `tenant` (what the
    /// request's tenant header names, already checked as a name) or the token's
    /// first.
    ///
    /// # Errors
    /// [`Denied`], counted and (rate-limited) logged.
    pub fn admit(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
        scope: Scope,
        tenant: Option<String>,
    ) -> Result<Caller, Denied> {
        if !self.required() {
            return Ok(Caller {
                tenant: tenant.unwrap_or_else(|| super::logs::DEFAULT_TENANT.to_owned()),
                grant: None,
            });
        }
        let grant = self.grant(headers, peer)?;
        if !grant.scopes.contains(&scope) {
            return Err(self.refuse(
                StatusCode::FORBIDDEN,
                "scope",
                format!("this token may not {}", scope_verb(scope)),
                peer,
                Some(&grant.name),
            ));
        }
        let may = |t: &str| grant.all_tenants() || grant.tenants.iter().any(|g| g == t);
        let tenant = match tenant {
            Some(t) if t.split('|').all(may) => t,
            Some(t) => {
                return Err(self.refuse(
                    StatusCode::FORBIDDEN,
                    "tenant",
                    format!("this token may not use tenant {t:?}"),
                    peer,
                    Some(&grant.name),
                ))
            }
            None if grant.all_tenants() => super::logs::DEFAULT_TENANT.to_owned(),
            None => grant.tenants[0].clone(),
        };
        Ok(Caller {
            tenant,
            grant: Some(grant),
        })
    }

    /// Whether a request may read the operator's endpoints (`/metrics`,
    /// `/api/v1/cluster`, the details of `/readyz`), per `http.ops_access`.
    ///
    /// # Errors
    /// [`Denied`] without an admin token where one is needed.
    pub fn admit_ops(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Result<(), Denied> {
        if !self.ops_closed_to(peer) {
            return Ok(());
        }
        self.admit(headers, peer, Scope::Admin, None).map(|_| ())
    }

    /// Whether a request may see the operator's details, deciding quietly: a load
    /// balancer probing `/readyz` without a token is not refused, only told less.
    pub fn sees_ops(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> bool {
        !self.ops_closed_to(peer)
            || headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(presented)
                .is_some_and(|t| {
                    self.tokens()
                        .get(&tokens::digest(&t))
                        .is_some_and(|g| g.scopes.contains(&Scope::Admin))
                })
    }

    /// Whether the operator's endpoints need an admin token from `peer`.
    fn ops_closed_to(&self, peer: Option<SocketAddr>) -> bool {
        let local = peer.is_some_and(|p| p.ip().is_loopback());
        self.required()
            && match self.ops {
                OpsAccess::Open => false,
                OpsAccess::Loopback => !local,
                OpsAccess::Token => true,
            }
    }

    /// The grant of the token the request presents.
    fn grant(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Result<Arc<Grant>, Denied> {
        let unauthorized = |reason, message: &str| {
            self.refuse(
                StatusCode::UNAUTHORIZED,
                reason,
                message.to_owned(),
                peer,
                None,
            )
        };
        let token = match (headers.get(header::AUTHORIZATION), websocket_token(headers)) {
            (Some(value), _) => value.to_str().ok().and_then(presented).ok_or_else(|| {
                unauthorized(
                    "malformed_credentials",
                    "the Authorization header is neither Bearer <token> nor Basic credentials",
                )
            })?,
            (None, Some(token)) => token.ok_or_else(|| {
                unauthorized(
                    "malformed_credentials",
                    "the token subprotocol is not base64url.bearer.chute.<base64url of the token>",
                )
            })?,
            (None, None) => {
                return Err(unauthorized(
                    "missing_token",
                    "a token is required: Authorization: Bearer <token>, or HTTP Basic with \
                     the token as the password",
                ))
            }
        };
        match self.tokens().get(&tokens::digest(&token)) {
            Some(grant) => Ok(grant.clone()),
            None => Err(unauthorized("unknown_token", "the token is not known here")),
        }
    }

    /// Counts and (at most once per reason per [`LOG_EVERY`]) logs a refusal.
    fn refuse(
        &self,
        status: StatusCode,
        reason: &'static str,
        message: String,
        peer: Option<SocketAddr>,
        token: Option<&str>,
    ) -> Denied {
        self.metrics.auth_refused.with_label_values(&[reason]).inc();
        let now = Instant::now();
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        let entry = logged.entry(reason).or_insert((now - LOG_EVERY * 2, 0));
        if now.duration_since(entry.0) >= LOG_EVERY {
            let left_out = entry.1;
            *entry = (now, 0);
            drop(logged);
            tracing::warn!(
                status = status.as_u16(),
                reason,
                peer = ?peer,
                token,
                left_out,
                "request refused: {message} ({left_out} more refusals for this reason not logged)"
            );
        } else {
            entry.1 += 1;
        }
        Denied {
            status,
            reason,
            message,
        }
    }
}

fn scope_verb(scope: Scope) -> &'static str {
    match scope {
        Scope::Ingest => "send records (scope ingest)",
        Scope::Query => "read records (scope query)",
        Scope::Admin => "read the operator's endpoints (scope admin)",
    }
}

/// The token in an `Authorization` value: `Bearer <token>`, or `Basic` with the
/// token as the password (or as the user name, when the password is empty).
fn presented(value: &str) -> Option<String> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then(|| rest.to_owned());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    let token = if password.is_empty() { user } else { password };
    (!token.is_empty()).then(|| token.to_owned())
}

/// The prefix of the websocket subprotocol that carries a token. Browsers cannot
/// set `Authorization` on a websocket, only `Sec-WebSocket-Protocol`, so a
/// browser's tail offers `base64url.bearer.chute.<the token in unpadded
/// base64url>` beside [`WEBSOCKET_PROTOCOL`] (as Kubernetes does for its
/// websockets); the answer names [`WEBSOCKET_PROTOCOL`], never the token.
pub const WEBSOCKET_TOKEN_PREFIX: &str = "base64url.bearer.chute.";

/// The subprotocol a tail answers with when the client offers it.
pub const WEBSOCKET_PROTOCOL: &str = "chute.tail";

/// The subprotocols a request offers (`Sec-WebSocket-Protocol`).
pub fn websocket_protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// The token a websocket upgrade carries in its subprotocols: `None` when it
/// carries none (or the request is no upgrade), `Some(None)` when the protocol
/// is there but does not decode to a token.
fn websocket_token(headers: &HeaderMap) -> Option<Option<String>> {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        return None;
    }
    let encoded = websocket_protocols(headers).find_map(|p| {
        p.get(..WEBSOCKET_TOKEN_PREFIX.len())
            .filter(|head| head.eq_ignore_ascii_case(WEBSOCKET_TOKEN_PREFIX))
            .map(|_| &p[WEBSOCKET_TOKEN_PREFIX.len()..])
    })?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|t| !t.is_empty());
    Some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_websocket_upgrade_may_carry_its_token_in_a_subprotocol() {
        let headers = |upgrade: bool, protocols: &str| {
            let mut h = HeaderMap::new();
            if upgrade {
                h.insert(header::UPGRADE, "websocket".parse().unwrap());
            }
            h.insert(header::SEC_WEBSOCKET_PROTOCOL, protocols.parse().unwrap());
            h
        };
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("chute_ab+/c");
        let offer = format!("chute.tail, {WEBSOCKET_TOKEN_PREFIX}{encoded}");
        assert_eq!(
            websocket_token(&headers(true, &offer)),
            Some(Some("chute_ab+/c".to_owned()))
        );
        assert_eq!(websocket_token(&headers(false, &offer)), None);
        assert_eq!(websocket_token(&headers(true, "chute.tail")), None);
        let bad = format!("{WEBSOCKET_TOKEN_PREFIX}!!!");
        assert_eq!(websocket_token(&headers(true, &bad)), Some(None));
        let empty = WEBSOCKET_TOKEN_PREFIX.to_owned();
        assert_eq!(websocket_token(&headers(true, &empty)), Some(None));
        let h = headers(true, &offer);
        let offered: Vec<&str> = websocket_protocols(&h).collect();
        assert_eq!(offered[0], WEBSOCKET_PROTOCOL);
        assert_eq!(offered.len(), 2);
    }

    #[test]
    fn bearer_and_basic_credentials_give_the_token() {
        assert_eq!(presented("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(presented("bearer   abc ").as_deref(), Some("abc"));
        let basic = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert_eq!(presented(&basic("promtail:tok")).as_deref(), Some("tok"));
        assert_eq!(presented(&basic("tok:")).as_deref(), Some("tok"));
        assert_eq!(presented(&basic(":")), None);
        assert_eq!(presented("Basic !!!"), None);
        assert_eq!(presented("Digest x"), None);
        assert_eq!(presented("Bearer"), None);
    }
}
