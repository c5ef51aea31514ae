//! Async driver and HTTP/2 transport (being written).
