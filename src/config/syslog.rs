//! `[syslog]` and `[[syslog.listeners]]`, with the value types a listener is set
//! with: [`Format`] and [`Timezone`] (how zone-less RFC 3164 stamps are read). The
//! syslog source (`crate::sources::syslog`) reads them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::offset::LocalResult;
use chrono::{DateTime, FixedOffset, Local, NaiveDateTime, Offset, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// `[syslog]`: syslog listeners.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// Syslog records are made durable in groups, at most this long after arrival
    /// (syslog has no acknowledgement, so this only bounds what a crash can lose).
    #[serde(default = "default_group_commit_ms")]
    pub group_commit_ms: u64,
    /// The listeners. Absent: UDP and TCP on 127.0.0.1:5514. `listeners = []`: none.
    #[serde(default)]
    pub listeners: Option<Vec<ListenerConfig>>,
}

/// Transport of a syslog listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Udp,
    Tcp,
    Tls,
    Unix,
}

/// `[[syslog.listeners]]`: one socket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `udp`, `tcp`, `tls` or `unix` (a datagram socket like /dev/log).
    pub protocol: Protocol,
    /// Address to listen on (`udp`, `tcp`, `tls`); port 0 picks a free one.
    #[serde(default)]
    pub address: Option<SocketAddr>,
    /// Socket file (`unix`); a stale socket there is replaced, but never one that
    /// another process still listens on.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Permissions of the socket file (`unix`), e.g. `0o666` (the default, as
    /// `/dev/log`: every local program may log) or `0o660` with a group.
    #[serde(default = "default_socket_mode")]
    pub socket_mode: u32,
    /// Name in metrics (`listener` label) and logs. Default: `<protocol>:<address or path>`.
    #[serde(default)]
    pub name: Option<String>,
    /// `auto` (RFC 5424 when VERSION 1 follows the PRI, else RFC 3164), `rfc5424`, `rfc3164`.
    #[serde(default)]
    pub format: Format,
    /// Zone of RFC 3164 stamps that carry none: `UTC`, `local`, `+02:00`, `Europe/Berlin`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Tenant of every record from this listener.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Longer messages are truncated (marked `fields.truncated`, counted).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Most connections at once (`tcp`, `tls`); more are closed at once, counted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed (`tcp`, `tls`).
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// PEM certificate chain (`tls`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key (`tls`).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates; when set, clients must present a certificate it signed.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: the tenant of a client's records by a name in its
    /// certificate, its subject's CN or a DNS, URI or email SAN (DNS names
    /// compared without case), e.g. `{ "web-1.example.net" = "web" }`; `"*"`
    /// names the tenant of certificates no other key matches. A certificate that
    /// matches none, or two keys of different tenants, is refused. Empty: every
    /// record gets `tenant`.
    #[serde(default)]
    pub client_tenants: BTreeMap<String, String>,
}

impl ListenerConfig {
    /// The `listener` label.
    pub fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let proto = format!("{:?}", self.protocol).to_lowercase();
        match (&self.address, &self.path) {
            (Some(a), _) => format!("{proto}:{a}"),
            (None, Some(p)) => format!("{proto}:{}", p.display()),
            (None, None) => proto,
        }
    }

    /// A plain listener with the defaults (what chute runs without `[syslog]`).
    pub fn plain(protocol: Protocol, address: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            protocol,
            address: Some(address),
            path: None,
            socket_mode: default_socket_mode(),
            name: None,
            format: Default::default(),
            timezone: default_timezone(),
            tenant: default_tenant(),
            max_message_bytes: default_max_message_bytes(),
            max_connections: default_max_connections(),
            idle_timeout_ms: default_idle_timeout_ms(),
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            client_tenants: BTreeMap::new(),
        }
    }
}

impl SyslogConfig {
    /// The checks `chute validate` runs over `[syslog]`, reported through `err` with
    /// their key paths.
    pub fn check(&self, err: &mut impl FnMut(String, &str)) {
        if self.group_commit_ms == 0 {
            err("syslog.group_commit_ms".into(), "must be at least 1");
        }
        let mut names = std::collections::HashSet::new();
        for (i, l) in self.listeners.iter().flatten().enumerate() {
            let at = |key: &str| format!("syslog.listeners[{i}].{key}");
            let network = l.protocol != Protocol::Unix;
            if network && l.address.is_none() {
                err(at("address"), "required for udp, tcp and tls");
            }
            if !network && l.path.is_none() {
                err(at("path"), "required for unix");
            }
            if l.protocol == Protocol::Tls && (l.cert_file.is_none() || l.key_file.is_none()) {
                err(at("cert_file"), "tls needs cert_file and key_file");
            }
            if l.protocol != Protocol::Tls && (l.cert_file.is_some() || l.client_ca_file.is_some())
            {
                err(at("cert_file"), "only tls listeners take certificates");
            }
            if !l.client_tenants.is_empty() && l.client_ca_file.is_none() {
                err(
                    at("client_tenants"),
                    "maps client certificates: needs client_ca_file (and protocol tls)",
                );
            }
            let valid = super::tokens::valid_name;
            for (name, tenant) in std::iter::once(("", &l.tenant)).chain(
                l.client_tenants
                    .iter()
                    .map(|(name, tenant)| (name.as_str(), tenant)),
            ) {
                if !valid(tenant) {
                    err(
                        if name.is_empty() {
                            at("tenant")
                        } else {
                            at(&format!("client_tenants.{name:?}"))
                        },
                        "a tenant is 1 to 64 characters of A-Z a-z 0-9 . _ -",
                    );
                }
            }
            if let Err(e) = l.timezone.parse::<Timezone>() {
                err(at("timezone"), &e.to_string());
            }
            if !(480..=MAX_MESSAGE_BYTES_LIMIT).contains(&l.max_message_bytes) {
                err(
                    at("max_message_bytes"),
                    "must be at least 480 (RFC 5424 §6.1) and at most 64 MiB",
                );
            }
            if l.socket_mode > 0o777 {
                err(at("socket_mode"), "must be permission bits, at most 0o777");
            }
            if l.max_connections == 0 {
                err(at("max_connections"), "must be at least 1");
            }
            if !names.insert(l.label()) {
                err(at("name"), "two listeners have the same name");
            }
        }
    }

    /// The listeners to start: the configured ones, or UDP and TCP on 127.0.0.1:5514.
    pub fn effective_listeners(&self) -> Vec<ListenerConfig> {
        self.listeners.clone().unwrap_or_else(|| {
            let at = SocketAddr::from(([127, 0, 0, 1], 5514));
            vec![
                ListenerConfig::plain(Protocol::Udp, at),
                ListenerConfig::plain(Protocol::Tcp, at),
            ]
        })
    }
}

fn default_group_commit_ms() -> u64 {
    10
}
fn default_timezone() -> String {
    "UTC".to_owned()
}
fn default_tenant() -> String {
    "default".to_owned()
}
/// The largest `max_message_bytes`: no sender writes syslog messages this long,
/// and a message's parts are addressed with 32-bit offsets (a NUL becomes three
/// bytes of U+FFFD, so three times the limit must stay below 4 GiB).
pub const MAX_MESSAGE_BYTES_LIMIT: usize = 64 << 20;
fn default_max_message_bytes() -> usize {
    64 * 1024
}
fn default_socket_mode() -> u32 {
    0o666
}
fn default_max_connections() -> usize {
    1024
}
fn default_idle_timeout_ms() -> u64 {
    300_000
}

/// Every default is the same as an empty section in the file.
impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig {
            group_commit_ms: default_group_commit_ms(),
            listeners: None,
        }
    }
}

/// Which syslog format a listener expects (see `crate::sources::syslog`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// RFC 5424 when VERSION 1 follows the PRI, RFC 3164 otherwise.
    #[default]
    Auto,
    /// RFC 5424; anything else is read as RFC 3164 and marked malformed.
    Rfc5424,
    /// RFC 3164, as real senders write it.
    Rfc3164,
}

/// The timezone of RFC 3164 time stamps that carry no offset.
///
/// Written in the configuration as `UTC`, `local` (the zone of the machine
/// chute runs on, from `TZ` or `/etc/localtime`), a fixed offset such as
/// `+02:00`, `-0530` or `+02`, or an IANA name such as `Europe/Berlin`.
/// `local` and IANA names follow daylight saving time: a local time that
/// occurs twice is read as the first, one that falls in a gap is read with
/// the offset in effect around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timezone {
    /// Coordinated Universal Time.
    Utc,
    /// The zone of the machine chute runs on.
    Local,
    /// A fixed offset from UTC.
    Fixed(FixedOffset),
    /// A zone of the IANA time zone database.
    Named(chrono_tz::Tz),
}

/// A timezone name that [`Timezone::from_str`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown timezone {0:?}: expected UTC, local, an offset such as +02:00, \
     or an IANA name such as Europe/Berlin"
)]
pub struct TimezoneError(pub String);

impl FromStr for Timezone {
    type Err = TimezoneError;

    /// Parses `UTC` (or `Z`, any case), `local` (any case), an offset
    /// (`+02:00`, `+0200`, `+02`) or an IANA name.
    ///
    /// # Errors
    ///
    /// [`TimezoneError`] for anything else.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("utc") || t.eq_ignore_ascii_case("z") {
            return Ok(Self::Utc);
        }
        if t.eq_ignore_ascii_case("local") {
            return Ok(Self::Local);
        }
        if t.starts_with('+') || t.starts_with('-') {
            return parse_offset(t)
                .map(Self::Fixed)
                .ok_or_else(|| TimezoneError(s.to_owned()));
        }
        t.parse::<chrono_tz::Tz>()
            .map(Self::Named)
            .map_err(|_| TimezoneError(s.to_owned()))
    }
}

impl fmt::Display for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Utc => f.write_str("UTC"),
            Self::Local => f.write_str("local"),
            Self::Fixed(o) => write!(f, "{o}"),
            Self::Named(tz) => f.write_str(tz.name()),
        }
    }
}

impl<'de> Deserialize<'de> for Timezone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Timezone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Timezone {
    /// The instant at which the clocks of this zone showed `local`; `None`
    /// only when that instant is outside what [`DateTime`] can hold.
    pub fn to_utc(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self {
            Self::Utc => Some(local.and_utc()),
            Self::Local => resolve(&Local, local),
            Self::Fixed(o) => resolve(o, local),
            Self::Named(tz) => resolve(tz, local),
        }
    }
}

/// `local` read in `tz`: the earlier of two candidates when clocks went back,
/// and in a gap (clocks went forward) the offset in effect around it.
fn resolve<T: TimeZone>(tz: &T, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(earlier, _) => Some(earlier.with_timezone(&Utc)),
        LocalResult::None => {
            let offset = tz.offset_from_utc_datetime(&local).fix();
            offset
                .from_local_datetime(&local)
                .single()
                .map(|t| t.with_timezone(&Utc))
        }
    }
}

/// `+hh:mm`, `+hhmm` or `+hh` (or with `-`), hours 0-23 and minutes 0-59.
fn parse_offset(s: &str) -> Option<FixedOffset> {
    let b = s.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let number = |digits: &[u8]| -> Option<u32> { std::str::from_utf8(digits).ok()?.parse().ok() };
    let (h, m) = match &b[1..] {
        [h1, h2] if h1.is_ascii_digit() && h2.is_ascii_digit() => (number(&b[1..3])?, 0),
        [_, _, rest @ ..] if rest.len() == 2 || (rest.len() == 3 && rest[0] == b':') => {
            let minutes = &rest[rest.len() - 2..];
            if !b[1..3].iter().chain(minutes).all(u8::is_ascii_digit) {
                return None;
            }
            (number(&b[1..3])?, number(minutes)?)
        }
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h as i32 * 3600 + m as i32 * 60))
}
