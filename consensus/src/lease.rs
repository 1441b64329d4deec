//! Leader leases: how long a leader may serve reads without a round trip.
//!
//! A follower that hears from its leader at local time `r` refuses every vote and
//! pre-vote until `r + election_timeout_min_ms` on its own clock (and a restarted replica
//! refuses them for `election_timeout_min_ms` after it boots). A leader that sent a message
//! at its local time `s` and got an acknowledgement of it from a majority (counting
//! itself) holds a lease until `s + lease_ms` on its own clock. With clock rates within
//! `1 ± ρ` of real time, the follower's refusal lasts at least `min / (1 + ρ)` real time
//! after `r`, and the lease lasts at most `lease / (1 - ρ)` real time after `s`, and `s`
//! happened before `r`. So choosing
//!
//! ```text
//!   lease_ms <= election_timeout_min_ms * (1 - ρ) / (1 + ρ)
//! ```
//! means every majority that could elect a new leader contains a replica still refusing,
//! until the old lease has expired: no two leaders ever serve lease reads at once.
//! The deposed leader also refuses votes while its own lease may run (it is a member of
//! the lease majority). [`lease_ms`] computes the bound, rounding down, minus one tick of
//! margin for the integer clock.

/// One million, the denominator of a drift in parts per million.
pub const PPM: u64 = 1_000_000;

/// The longest lease that is safe for the election timeout and the drift bound (ppm).
/// Zero means "no lease": every strong read takes the read-index path.
#[must_use]
pub fn lease_ms(election_timeout_min_ms: u64, clock_drift_max_ppm: u64) -> u64 {
    assert!(
        clock_drift_max_ppm < PPM,
        "drift bound {clock_drift_max_ppm} ppm is not < 1"
    );
    let num = u128::from(election_timeout_min_ms) * u128::from(PPM - clock_drift_max_ppm);
    let den = u128::from(PPM + clock_drift_max_ppm);
    let bound = u64::try_from(num / den).unwrap_or(0);
    // One millisecond of margin: the clock is read at millisecond granularity.
    bound.saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (election_timeout_min_ms, drift ppm, lease_ms).
    const CASES: &[(u64, u64, u64)] = &[
        (1000, 0, 999),
        (1000, 10_000, 979),  // 1 %: 1000 * 0.99 / 1.01 = 980.19
        (1000, 100_000, 817), // 10 %: 1000 * 0.9 / 1.1 = 818.18
        (150, 50_000, 134),   // 5 %: 150 * 0.95 / 1.05 = 135.7
        (1, 0, 0),
        (0, 0, 0),
    ];

    #[test]
    fn lease_table() {
        for (timeout, drift, want) in CASES {
            assert_eq!(
                lease_ms(*timeout, *drift),
                *want,
                "timeout {timeout} drift {drift}"
            );
        }
    }

    #[test]
    fn lease_ends_before_any_refusal_ends_in_real_time() {
        // Worst case: the leader's clock runs slow (lease lasts longer in real time) and
        // the follower's runs fast (refusal ends sooner), both at the bound.
        for drift in [0u64, 1_000, 50_000, 200_000] {
            for timeout in [10u64, 150, 1000, 10_000] {
                let lease = lease_ms(timeout, drift) as f64;
                let rho = drift as f64 / PPM as f64;
                let lease_real = lease / (1.0 - rho);
                let refusal_real = timeout as f64 / (1.0 + rho);
                assert!(
                    lease_real <= refusal_real,
                    "timeout {timeout} drift {drift}"
                );
            }
        }
    }
}
