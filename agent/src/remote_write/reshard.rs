//! How many shards an endpoint should send with, from what it measured over the last
//! [`RESHARD_INTERVAL`]: Prometheus' rule, so operators' intuition carries over.
//!
//! `desired = time_per_sample × (samples_in_rate + 0.1/interval_s × samples_behind)`, where
//! `time_per_sample` is the send time spent per sample sent, and `samples_behind` estimates the
//! backlog as (newest sample written − newest sample sent) × `samples_in_rate`. Rates are
//! exponentially weighted (α = 0.2 per interval, as Prometheus). The result is kept unless it
//! is more than 30% away from the current count (no flapping), clamped to
//! `[min_shards, max_shards]`, and not acted on while requests fail (more shards would only
//! add load to a receiver that is down).

use std::time::Duration;

/// How often the shard count is reconsidered.
pub const RESHARD_INTERVAL: Duration = Duration::from_secs(10);
const EWMA_WEIGHT: f64 = 0.2;
const TOLERANCE: f64 = 0.3;

/// An exponentially weighted rate, per second.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ewma {
    rate: Option<f64>,
}

impl Ewma {
    pub fn update(&mut self, count: u64, over: Duration) {
        let r = count as f64 / over.as_secs_f64().max(1e-9);
        self.rate = Some(match self.rate {
            None => r,
            Some(old) => old + EWMA_WEIGHT * (r - old),
        });
    }

    pub fn rate(&self) -> f64 {
        self.rate.unwrap_or(0.0)
    }
}

/// One interval's inputs.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub samples_in_rate: f64,
    pub samples_out_rate: f64,
    /// Seconds spent in requests per second (all shards).
    pub send_seconds_rate: f64,
    /// Newest timestamp written minus newest sent, seconds (≥ 0).
    pub behind_seconds: f64,
    pub current: usize,
    pub min: usize,
    pub max: usize,
}

/// The shard count to run with next.
pub fn desired_shards(m: &Measured) -> usize {
    let clamp = |n: usize| n.clamp(m.min.max(1), m.max.max(m.min.max(1)));
    if m.samples_out_rate <= 0.0 {
        return clamp(m.current);
    }
    let time_per_sample = m.send_seconds_rate / m.samples_out_rate;
    let behind = m.behind_seconds.max(0.0) * m.samples_in_rate;
    let integral_gain = 0.1 / RESHARD_INTERVAL.as_secs_f64();
    let desired = time_per_sample * (m.samples_in_rate + integral_gain * behind);
    let current = m.current as f64;
    if desired > current * (1.0 - TOLERANCE) && desired < current * (1.0 + TOLERANCE) {
        return clamp(m.current);
    }
    clamp(desired.ceil().max(1.0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(in_rate: f64, out_rate: f64, send_s: f64, behind: f64, current: usize) -> Measured {
        Measured {
            samples_in_rate: in_rate,
            samples_out_rate: out_rate,
            send_seconds_rate: send_s,
            behind_seconds: behind,
            current,
            min: 1,
            max: 50,
        }
    }

    #[test]
    fn shards_follow_the_work_with_hysteresis_and_bounds() {
        // 10k samples/s in, 1 ms per 2000-sample request: far less than one shard's worth.
        assert_eq!(
            desired_shards(&measured(10_000.0, 10_000.0, 0.005, 0.0, 4)),
            1
        );
        // Each sample costs 0.4 ms of request time: 4 shards keep up.
        assert_eq!(
            desired_shards(&measured(10_000.0, 10_000.0, 4.0, 0.0, 1)),
            4
        );
        // Within 30% of the current count: unchanged.
        assert_eq!(
            desired_shards(&measured(10_000.0, 10_000.0, 4.4, 0.0, 4)),
            4
        );
        // A 10-minute backlog asks for more, capped at max.
        let catch_up = desired_shards(&measured(10_000.0, 10_000.0, 4.0, 600.0, 4));
        assert!(catch_up > 4, "{catch_up}");
        assert_eq!(
            desired_shards(&measured(10_000.0, 10_000.0, 40.0, 600.0, 4)),
            50
        );
        // Nothing sent: no evidence, keep.
        assert_eq!(desired_shards(&measured(10_000.0, 0.0, 0.0, 100.0, 3)), 3);
    }

    #[test]
    fn rates_are_exponentially_weighted() {
        let mut e = Ewma::default();
        e.update(100, Duration::from_secs(10));
        assert_eq!(e.rate(), 10.0);
        e.update(200, Duration::from_secs(10));
        assert!((e.rate() - 12.0).abs() < 1e-9);
    }
}
