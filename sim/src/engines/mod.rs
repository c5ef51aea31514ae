//! The engines that run scenarios: `turmoil` (the agent's real driver and HTTP/2 transport on
//! simulated TCP) and `fast` (the core alone, discrete events). Both share `common` so their
//! observations mean the same thing.

pub mod common;
pub mod fast;
pub mod turmoil;

pub use fast::FastEngine;
pub use turmoil::TurmoilEngine;
