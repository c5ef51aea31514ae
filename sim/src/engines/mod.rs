//! The engines that run scenarios: `turmoil` (the agent's real driver and HTTP/2 transport on
//! simulated TCP), `fast` (the core alone, discrete events) and `process` (real agent
//! processes in network namespaces, real time). They share `common` so their observations
//! mean the same thing.

pub mod common;
pub mod fast;
pub mod process;
pub mod turmoil;

pub use fast::FastEngine;
pub use process::ProcessEngine;
pub use turmoil::TurmoilEngine;
