//! Key distributions: which record an operation touches (YCSB's request distributions).
//!
//! A [`KeyChooser`] draws a record number in `[0, count)` where `count` is the number of
//! records that exist now (it grows with inserts). All randomness comes from the caller's
//! [`Prng`]; a chooser holds only derived constants (the zipfian zeta sums), so it can be
//! built once and cloned per connection.
//!
//! - uniform: every record equally likely.
//! - zipfian(θ): Gray et al.'s generator ("Quickly generating billion-record synthetic
//!   databases", SIGMOD 1994), as YCSB's `ZipfianGenerator`; rank `r` has weight
//!   `1/(r+1)^θ`. Ranks are scrambled with FNV-1a onto record numbers (YCSB's
//!   `ScrambledZipfianGenerator`), so the popular records are spread over the key space.
//!   Like YCSB's, the scramble is a hash modulo `count`, so two ranks may share a record.
//! - latest: zipfian over recency: the newest record is the most popular (YCSB D).
//! - hotspot(h, o): a fraction `o` of operations go uniformly to the first `h` of the
//!   records, the rest uniformly to the others.

use crate::prng::{fnv1a64, Prng};

/// A key distribution as configured (before its constants are computed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    /// Every record equally likely.
    Uniform,
    /// Scrambled zipfian with this constant θ (YCSB's default is 0.99).
    Zipfian {
        /// The skew constant θ, in (0, 1).
        theta: f64,
    },
    /// The newest records most likely (zipfian over recency).
    Latest {
        /// The skew constant θ, in (0, 1).
        theta: f64,
    },
    /// A hot set taking a share of the operations.
    Hotspot {
        /// Fraction of the records that are hot, in (0, 1).
        hot_fraction: f64,
        /// Fraction of the operations that go to the hot records, in [0, 1].
        hot_op_fraction: f64,
    },
}

/// YCSB's zipfian constant.
pub const ZIPFIAN_THETA_DEFAULT: f64 = 0.99;

impl Distribution {
    /// Checks the parameters; the message names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        let theta_ok = |theta: f64| theta > 0.0 && theta < 1.0;
        match *self {
            Distribution::Uniform => Ok(()),
            Distribution::Zipfian { theta } | Distribution::Latest { theta } => {
                if theta_ok(theta) {
                    Ok(())
                } else {
                    Err(format!("zipfian constant {theta} must be in (0, 1)"))
                }
            }
            Distribution::Hotspot {
                hot_fraction,
                hot_op_fraction,
            } => {
                if !(hot_fraction > 0.0 && hot_fraction < 1.0) {
                    Err(format!("hot fraction {hot_fraction} must be in (0, 1)"))
                } else if !(0.0..=1.0).contains(&hot_op_fraction) {
                    Err(format!(
                        "hot operation fraction {hot_op_fraction} must be in [0, 1]"
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// A short name for reports: `uniform`, `zipfian(0.99)`, `latest(0.99)`,
    /// `hotspot(0.2,0.8)`.
    pub fn label(&self) -> String {
        match *self {
            Distribution::Uniform => "uniform".to_owned(),
            Distribution::Zipfian { theta } => format!("zipfian({theta})"),
            Distribution::Latest { theta } => format!("latest({theta})"),
            Distribution::Hotspot {
                hot_fraction,
                hot_op_fraction,
            } => format!("hotspot({hot_fraction},{hot_op_fraction})"),
        }
    }
}

/// Gray et al.'s zipfian generator over ranks `[0, n)`, where `n` may grow.
#[derive(Debug, Clone)]
pub struct Zipfian {
    theta: f64,
    alpha: f64,
    zeta2: f64,
    /// ζ(n, θ) = Σ_{i=1..n} 1/i^θ.
    zetan: f64,
    n: u64,
    eta: f64,
}

/// Σ_{i=from+1..=to} 1/i^θ.
fn zeta_range(from: u64, to: u64, theta: f64) -> f64 {
    (from + 1..=to).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Zipfian {
    /// A generator over `n ≥ 1` ranks; costs O(n) once.
    pub fn new(n: u64, theta: f64) -> Zipfian {
        assert!(n >= 1, "zipfian over {n} items");
        assert!(theta > 0.0 && theta < 1.0, "zipfian theta {theta}");
        let zeta2 = zeta_range(0, 2, theta);
        let mut z = Zipfian {
            theta,
            alpha: 1.0 / (1.0 - theta),
            zeta2,
            zetan: 0.0,
            n: 0,
            eta: 0.0,
        };
        z.grow_to(n);
        z
    }

    /// ζ(n, θ), the normaliser: rank `r` has probability `1/((r+1)^θ ζ)`.
    pub fn zetan(&self) -> f64 {
        self.zetan
    }

    /// Extends the ranks to `n` (never shrinks); costs O(growth).
    pub fn grow_to(&mut self, n: u64) {
        if n <= self.n {
            return;
        }
        self.zetan += zeta_range(self.n, n, self.theta);
        self.n = n;
        let n_f = n as f64;
        self.eta = (1.0 - (2.0 / n_f).powf(1.0 - self.theta)) / (1.0 - self.zeta2 / self.zetan);
    }

    /// A rank in `[0, n)`; rank 0 is the most likely.
    pub fn next(&self, prng: &mut Prng) -> u64 {
        let u = prng.next_f64();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.n - 1);
        }
        let rank = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.n - 1)
    }
}

/// A distribution with its constants computed, ready to draw record numbers.
#[derive(Debug, Clone)]
pub enum KeyChooser {
    /// See [`Distribution::Uniform`].
    Uniform,
    /// See [`Distribution::Zipfian`].
    Zipfian(Zipfian),
    /// See [`Distribution::Latest`].
    Latest(Zipfian),
    /// See [`Distribution::Hotspot`].
    Hotspot {
        /// Fraction of the records that are hot.
        hot_fraction: f64,
        /// Fraction of the operations that go to them.
        hot_op_fraction: f64,
    },
}

impl KeyChooser {
    /// Prepares `distribution` for `count ≥ 1` records (O(count) for the zipfians).
    pub fn new(distribution: Distribution, count: u64) -> KeyChooser {
        let count = count.max(1);
        match distribution {
            Distribution::Uniform => KeyChooser::Uniform,
            Distribution::Zipfian { theta } => KeyChooser::Zipfian(Zipfian::new(count, theta)),
            Distribution::Latest { theta } => KeyChooser::Latest(Zipfian::new(count, theta)),
            Distribution::Hotspot {
                hot_fraction,
                hot_op_fraction,
            } => KeyChooser::Hotspot {
                hot_fraction,
                hot_op_fraction,
            },
        }
    }

    /// A record number in `[0, count)`; `count ≥ 1` is the number of records now.
    pub fn next(&mut self, prng: &mut Prng, count: u64) -> u64 {
        assert!(count >= 1, "choosing a key among no records");
        let key = match self {
            KeyChooser::Uniform => prng.below(count),
            KeyChooser::Zipfian(z) => {
                z.grow_to(count);
                fnv1a64(z.next(prng)) % count
            }
            KeyChooser::Latest(z) => {
                z.grow_to(count);
                count - 1 - z.next(prng).min(count - 1)
            }
            KeyChooser::Hotspot {
                hot_fraction,
                hot_op_fraction,
            } => {
                let hot = ((count as f64 * *hot_fraction) as u64).clamp(1, count);
                let cold = count - hot;
                if cold == 0 || prng.next_f64() < *hot_op_fraction {
                    prng.below(hot)
                } else {
                    hot + prng.below(cold)
                }
            }
        };
        debug_assert!(key < count, "key {key} of {count}");
        key
    }
}
