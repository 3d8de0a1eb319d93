//! Argon2id cost calibration: measure this machine and find the parameters that reach a
//! target hashing time within a memory bound; and the start-up sanity warning.
//!
//! Blocking (CPU-bound) code: call it from a plain thread or `spawn_blocking`.

use argon2::{Algorithm, Argon2, Params, Version};
use std::time::{Duration, Instant};

use super::passwords::HashCost;

/// OWASP's floor for Argon2id memory (19 MiB with t=2).
pub const MIN_MEMORY_KIB: u32 = 19_456;
/// Below this a hash is too cheap to slow guessing down.
pub const TOO_FAST: Duration = Duration::from_millis(10);
/// Above this logins queue up and become a denial-of-service lever.
pub const TOO_SLOW: Duration = Duration::from_secs(1);

/// A measured cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calibration {
    /// The parameters.
    pub cost: HashCost,
    /// Median time of one hash with them here.
    pub took: Duration,
}

/// Median time of `runs` hashes with `cost`.
///
/// # Errors
/// Invalid parameters.
pub fn measure(cost: HashCost, runs: usize) -> anyhow::Result<Duration> {
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, Some(32))
        .map_err(|e| anyhow::anyhow!("invalid Argon2 parameters: {e}"))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = [0u8; 32];
    let mut times = Vec::with_capacity(runs.max(1));
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        argon
            .hash_password_into(b"calibration password", b"calibration-salt", &mut out)
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// Finds the cheapest parameters (p=1) whose hash takes at least `target`, using as much
/// memory as allowed first (memory hardness is what hurts GPU attackers), then raising
/// the iterations. If even one pass at `max_memory_kib` exceeds the target, memory is
/// lowered towards [`MIN_MEMORY_KIB`].
///
/// # Errors
/// Invalid parameters (e.g. `max_memory_kib` under 8 KiB).
pub fn calibrate(target: Duration, max_memory_kib: u32) -> anyhow::Result<Calibration> {
    let mut memory_kib = max_memory_kib.max(8);
    let mut cost = HashCost { memory_kib, iterations: 1, parallelism: 1 };
    let mut took = measure(cost, 3)?;
    while took > target && memory_kib / 2 >= MIN_MEMORY_KIB {
        memory_kib /= 2;
        cost = HashCost { memory_kib, iterations: 1, parallelism: 1 };
        took = measure(cost, 3)?;
    }
    while took < target && cost.iterations < 64 {
        // Time grows about linearly with passes; jump close, then step.
        let per_pass = took.as_secs_f64() / f64::from(cost.iterations);
        let want = (target.as_secs_f64() / per_pass.max(1e-6)).ceil() as u32;
        let next = want.clamp(cost.iterations + 1, 64);
        let candidate = HashCost { iterations: next, ..cost };
        let t = measure(candidate, 3)?;
        cost = candidate;
        took = t;
    }
    Ok(Calibration { cost, took })
}

/// Logs a warning when one hash with `cost` took under 10 ms or over 1 s here.
pub fn warn_if_off(cost: HashCost, took: Duration) {
    let ms = took.as_millis();
    if took < TOO_FAST {
        tracing::warn!(
            ms,
            memory_kib = cost.memory_kib,
            iterations = cost.iterations,
            "Argon2id hash takes under 10 ms here: too cheap against offline guessing; \
             run `gatepass passwords calibrate --target 250ms`"
        );
    } else if took > TOO_SLOW {
        tracing::warn!(
            ms,
            memory_kib = cost.memory_kib,
            iterations = cost.iterations,
            "Argon2id hash takes over 1 s here: logins will queue; run `gatepass passwords calibrate`"
        );
    } else {
        tracing::info!(ms, "Argon2id cost measured");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_reaches_target_within_memory() {
        let c = calibrate(Duration::from_millis(5), 1024).unwrap();
        assert_eq!(c.cost.memory_kib, 1024);
        assert!(c.took >= Duration::from_millis(5) || c.cost.iterations == 64);
    }
}
