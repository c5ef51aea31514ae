//! Profiles: `pyroscope.scrape` pulls pprof profiles from targets' `/debug/pprof/*`
//! endpoints ([`scrape`]) and `pyroscope.write` pushes them to Pyroscope's ingestion API
//! ([`write`], wire format in [`push`]). The pipeline owns the components and shares the
//! targets between cluster nodes exactly as for `prometheus.scrape`.

pub mod delta;
pub mod push;
pub mod scrape;
pub mod write;

use std::collections::BTreeMap;

use bytes::Bytes;

/// One scraped profile: its labels (`__name__` = the profile type, `service_name`, `job`,
/// `instance` and the target's own labels) and the pprof bytes as the target sent them
/// (gzip-compressed protobuf for Go programs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub labels: BTreeMap<String, String>,
    pub raw: Bytes,
}

/// Where a scrape component sends its profiles (a `pyroscope.write` receiver).
pub trait ProfileSink: Send + Sync {
    fn append(&self, profile: Profile);
}
