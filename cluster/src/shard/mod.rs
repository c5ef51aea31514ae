//! Target sharding (placeholder, being written).
