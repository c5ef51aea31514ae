//! `prometheus.scrape`: scrape loops for the targets this node owns, the Prometheus text
//! exposition parser, and the sample types handed to receivers. Ownership (which targets) is
//! decided by the caller; where samples go is decided by the [`Appender`]s it is given.
//!
//! - `exposition.rs` parses the text format.
//! - `target.rs` turns a discovered target into labels and a URL.
//! - `fetch.rs` does one bounded HTTP GET.
//! - `scrape_loop.rs` runs one target: timing, labelling, staleness, report series.
//! - `manager.rs` starts and stops loops as the owned target set changes (hand-over rules).

pub mod exposition;
mod fetch;
mod manager;
mod sample;
mod scrape_loop;
mod target;

pub use manager::{ManagerOptions, ScrapeManager, SyncReport, CATCH_UP_WINDOW_DEFAULT};
pub use sample::{is_stale_nan, stale_nan, Appender, Labels, Sample, STALE_NAN_BITS};
pub use scrape_loop::{Health, StopMode, TargetStatus};
pub use target::ScrapeTarget;
