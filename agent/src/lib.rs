//! The agent as a library: the binary (`main.rs`) and the integration tests call into these
//! modules. Keep this file a list of `pub mod` lines.

pub mod advertise;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod fmt;
pub mod http;
pub mod http_client;
pub mod kubernetes;
pub mod metrics;
pub mod operator;
pub mod pipeline;
pub mod pyroscope;
pub mod relabel;
pub mod remote_write;
pub mod resolve;
pub mod run;
pub mod scrape;
pub mod status;
pub mod validate;
pub mod wal;
