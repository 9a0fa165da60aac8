//! The labels of the read API and the columns behind them.
//!
//! A stream is what Loki calls one: the records of one label set. chute's labels
//! are fixed: `tenant`, `host`, `app`, `level`, `facility`, `procid` and `msgid`,
//! each a column of `chute.logs` (`level` and `facility` are numbers stored and
//! names shown). Everything in a record's `fields` is structured metadata, not a
//! label. Only the names here ever become SQL identifiers.

use std::collections::BTreeMap;

/// A label of the read API.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Tenant,
    Host,
    App,
    Level,
    Facility,
    Procid,
    Msgid,
}

impl Label {
    /// Every label, in the order streams print them.
    pub const ALL: [Label; 7] = [
        Label::Tenant,
        Label::Host,
        Label::App,
        Label::Level,
        Label::Facility,
        Label::Procid,
        Label::Msgid,
    ];

    /// The label called `name`, if chute has one.
    pub fn parse(name: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Label::Tenant => "tenant",
            Label::Host => "host",
            Label::App => "app",
            Label::Level => "level",
            Label::Facility => "facility",
            Label::Procid => "procid",
            Label::Msgid => "msgid",
        }
    }

    /// The column of `chute.logs` it reads (a fixed identifier).
    pub fn column(self) -> &'static str {
        match self {
            Label::Tenant => "tenant",
            Label::Host => "host",
            Label::App => "app",
            Label::Level => "severity",
            Label::Facility => "facility",
            Label::Procid => "procid",
            Label::Msgid => "msgid",
        }
    }

    /// Whether the column holds a number shown as a name (`level`, `facility`).
    pub fn is_coded(self) -> bool {
        matches!(self, Label::Level | Label::Facility)
    }

    /// Every value a coded label can show, with the codes behind each, in the
    /// order of the codes; `None` for a text label.
    pub fn codes(self) -> Option<Vec<(&'static str, Vec<i16>)>> {
        match self {
            Label::Level => Some(
                LEVELS
                    .iter()
                    .map(|&name| {
                        let codes = (0..8).filter(|&s| level_name(Some(s)) == name).collect();
                        (name, codes)
                    })
                    .collect(),
            ),
            Label::Facility => Some(
                FACILITIES
                    .iter()
                    .enumerate()
                    .map(|(code, name)| (*name, vec![code as i16]))
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// The level names Grafana colours, most severe first; `unknown` is a record
/// without a severity.
pub const LEVELS: [&str; 5] = ["critical", "error", "warning", "info", "debug"];

/// The `level` label of a syslog severity: emerg, alert and crit are `critical`,
/// err is `error`, notice and info are `info`; none is `unknown`.
pub fn level_name(severity: Option<i16>) -> &'static str {
    match severity {
        Some(0..=2) => "critical",
        Some(3) => "error",
        Some(4) => "warning",
        Some(5 | 6) => "info",
        Some(7) => "debug",
        _ => "unknown",
    }
}

/// Syslog facility names by code (RFC 5424, with the names rsyslog uses).
pub const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// The `facility` label of a facility code; none is `""` (no label).
pub fn facility_name(facility: Option<i16>) -> &'static str {
    facility
        .and_then(|f| usize::try_from(f).ok())
        .and_then(|f| FACILITIES.get(f))
        .copied()
        .unwrap_or("")
}

/// A record's stream labels, those with a value; `level` and `facility` by name.
pub fn labels_of(
    tenant: Option<String>,
    host: Option<String>,
    app: Option<String>,
    severity: Option<i16>,
    facility: Option<i16>,
    procid: Option<String>,
    msgid: Option<String>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut put = |name: &str, value: Option<String>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            labels.insert(name.to_owned(), v);
        }
    };
    put("tenant", tenant);
    put("host", host);
    put("app", app);
    put("level", severity.map(|s| level_name(Some(s)).to_owned()));
    put("facility", Some(facility_name(facility).to_owned()));
    put("procid", procid);
    put("msgid", msgid);
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_severity_has_a_level_and_every_level_its_severities() {
        let codes = Label::Level.codes().unwrap();
        let names: Vec<&str> = codes.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, LEVELS);
        let all: Vec<i16> = codes.iter().flat_map(|(_, c)| c.clone()).collect();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
        assert_eq!(level_name(Some(5)), "info");
        assert_eq!(level_name(None), "unknown");
        assert_eq!(facility_name(Some(16)), "local0");
        assert_eq!(facility_name(Some(99)), "");
        assert_eq!(Label::parse("level").map(Label::column), Some("severity"));
        assert_eq!(Label::parse("user"), None);
    }
}
