//! The agent as a library: the binary (`main.rs`) and the integration tests call into these
//! modules. Keep this file a list of `pub mod` lines.

pub mod config;
pub mod discovery;
pub mod remote_write;
pub mod scrape;
