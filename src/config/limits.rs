//! `[limits]`: how fast each tenant may send, per node.

use serde::Deserialize;

/// `[limits]`: records and bytes per second a tenant may send to this node; 0 is
/// no limit. `[[limits.tenants]]` sets them for one tenant.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Records per second each tenant may send (its default).
    #[serde(default)]
    pub records_per_s: u32,
    /// Bytes of request body per second each tenant may send (its default).
    #[serde(default)]
    pub bytes_per_s: u32,
    /// Tenants with limits of their own.
    #[serde(default)]
    pub tenants: Vec<TenantLimits>,
}

/// One `[[limits.tenants]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    pub tenant: String,
    #[serde(default)]
    pub records_per_s: u32,
    #[serde(default)]
    pub bytes_per_s: u32,
}

impl LimitsConfig {
    /// The (records, bytes) per second limits of `tenant`; 0 is none.
    pub fn of(&self, tenant: &str) -> (u32, u32) {
        match self.tenants.iter().find(|t| t.tenant == tenant) {
            Some(t) => (t.records_per_s, t.bytes_per_s),
            None => (self.records_per_s, self.bytes_per_s),
        }
    }
}
