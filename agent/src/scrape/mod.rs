//! `prometheus.scrape`: scrape loops for the targets this node owns, the exposition parsers,
//! and the sample types handed to receivers. Ownership (which targets) is decided by the
//! caller; where samples go is decided by the [`Appender`]s it is given.
//!
//! - `exposition/` parses the Prometheus text format and OpenMetrics text.
//! - `target.rs` turns a discovered target into labels and a URL.
//! - `fetch.rs` does one bounded HTTP GET (content negotiation, gzip, body size limit).
//! - `scrape_cache.rs` turns one scrape into samples: labelling, staleness, the samples
//!   Prometheus would refuse, report series, metadata.
//! - `scrape_loop.rs` runs one target: timing, delivery, status.
//! - `manager.rs` starts and stops loops as the owned target set changes (hand-over rules).

pub mod exposition;
mod fetch;
mod manager;
mod sample;
mod scrape_cache;
mod scrape_loop;
mod target;

pub use manager::{ManagerOptions, ScrapeManager, SyncReport, CATCH_UP_WINDOW_DEFAULT};
pub use sample::{
    is_stale_nan, stale_nan, Appender, Labels, Metadata, MetricType, Sample, STALE_NAN_BITS,
};
pub(crate) use scrape_loop::unix_ms;
pub use scrape_loop::{Health, StopMode, TargetStatus};
pub use target::ScrapeTarget;
