//! Pieces of `ctnet-bench`: the in-process floor, statistics and the report.
pub mod floor;
pub mod peers;
pub mod report;
pub mod slow;

use std::time::Duration;

/// The p-th percentile (0-100) of `samples`, in milliseconds.
pub fn pct(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

pub fn median(samples: &[Duration]) -> f64 {
    pct(samples, 50.0)
}
