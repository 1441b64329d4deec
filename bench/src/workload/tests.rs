//! Statistical checks of the key distributions and the operation mix. Every test draws
//! from a fixed seed, so the checks are deterministic; the bounds are wide enough that a
//! correct generator passes with any seed with overwhelming probability.

use super::*;
use crate::prng::Prng;

const DRAWS: usize = 200_000;

fn counts(chooser: &mut KeyChooser, n: u64, seed: u64) -> Vec<u64> {
    let mut prng = Prng::new(seed);
    let mut counts = vec![0u64; n as usize];
    for _ in 0..DRAWS {
        counts[chooser.next(&mut prng, n) as usize] += 1;
    }
    counts
}

/// Pearson's χ² of `observed` against `expected` probabilities.
fn chi_square(observed: &[u64], expected: &[f64]) -> f64 {
    let total: u64 = observed.iter().sum();
    observed
        .iter()
        .zip(expected)
        .map(|(&o, &p)| {
            let e = p * total as f64;
            (o as f64 - e).powi(2) / e
        })
        .sum()
}

#[test]
fn uniform_keys_pass_a_chi_square_test() {
    let n = 100;
    let c = counts(&mut KeyChooser::new(Distribution::Uniform, n), n, 1);
    let chi2 = chi_square(&c, &vec![1.0 / n as f64; n as usize]);
    // 99 degrees of freedom: mean 99, sd 14; 170 is beyond p = 1e-5.
    assert!(chi2 < 170.0, "chi2 {chi2}");
}

#[test]
fn zipfian_ranks_follow_the_power_law() {
    let n = 1000u64;
    let theta = 0.99;
    let z = distribution::Zipfian::new(n, theta);
    let mut prng = Prng::new(2);
    let mut c = vec![0u64; n as usize];
    for _ in 0..DRAWS {
        c[z.next(&mut prng) as usize] += 1;
    }
    let p = |r: usize| 1.0 / ((r + 1) as f64).powf(theta) / z.zetan();
    // Ranks 0 and 1 are exact in Gray et al.'s method.
    for (r, &count) in c.iter().enumerate().take(2) {
        let observed = count as f64 / DRAWS as f64;
        assert!(
            (observed / p(r) - 1.0).abs() < 0.03,
            "rank {r}: {observed} vs {}",
            p(r)
        );
    }
    // Beyond them it is an approximation: check it over decades of ranks.
    for (lo, hi) in [(2usize, 10usize), (10, 100), (100, 1000)] {
        let observed = c[lo..hi].iter().sum::<u64>() as f64 / DRAWS as f64;
        let expected: f64 = (lo..hi).map(p).sum();
        assert!(
            (observed / expected - 1.0).abs() < 0.1,
            "ranks {lo}..{hi}: {observed} vs {expected}"
        );
    }
    // Skew: rank 0 is drawn about 2^θ times as often as rank 1.
    let ratio = c[0] as f64 / c[1] as f64;
    assert!(
        (ratio / 2f64.powf(theta) - 1.0).abs() < 0.05,
        "ratio {ratio}"
    );
}

#[test]
fn zipfian_grown_matches_zipfian_built_at_that_size() {
    let mut grown = distribution::Zipfian::new(10, 0.9);
    grown.grow_to(5000);
    let built = distribution::Zipfian::new(5000, 0.9);
    assert!((grown.zetan() - built.zetan()).abs() < 1e-9);
}

#[test]
fn scrambled_zipfian_is_skewed_but_spread_over_the_key_space() {
    let n = 1000u64;
    let dist = Distribution::Zipfian { theta: 0.99 };
    let c = counts(&mut KeyChooser::new(dist, n), n, 3);
    let zetan = distribution::Zipfian::new(n, 0.99).zetan();
    let (hottest, hottest_count) = c.iter().enumerate().max_by_key(|(_, &c)| c).unwrap();
    let share = *hottest_count as f64 / DRAWS as f64;
    // The hottest record takes rank 0's share (more if another rank hashes onto it).
    assert!(
        share >= 0.97 / zetan,
        "hottest share {share}, 1/zeta {}",
        1.0 / zetan
    );
    assert_ne!(hottest, 0, "ranks are scrambled, not record numbers");
    // The ten hottest records are not neighbours.
    let mut order: Vec<usize> = (0..n as usize).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(c[i]));
    let top = &order[..10];
    let span = top.iter().max().unwrap() - top.iter().min().unwrap();
    assert!(
        span > n as usize / 4,
        "top ten within {span} records: {top:?}"
    );
}

#[test]
fn latest_prefers_the_newest_records() {
    let n = 1000u64;
    let dist = Distribution::Latest { theta: 0.99 };
    let c = counts(&mut KeyChooser::new(dist, n), n, 4);
    let zetan = distribution::Zipfian::new(n, 0.99).zetan();
    let newest = c[n as usize - 1] as f64 / DRAWS as f64;
    assert!((newest * zetan - 1.0).abs() < 0.03, "newest share {newest}");
    assert!(c[n as usize - 1] > c[n as usize - 2]);
    assert!(c[n as usize - 2] > c[0] * 10);
}

#[test]
fn latest_follows_inserts() {
    let dist = Distribution::Latest { theta: 0.99 };
    let mut chooser = KeyChooser::new(dist, 100);
    let mut prng = Prng::new(5);
    let newest = (0..10_000)
        .filter(|_| chooser.next(&mut prng, 200) == 199)
        .count();
    assert!(newest > 1000, "record 199 drawn {newest} times of 10000");
}

#[test]
fn hotspot_sends_its_share_to_the_hot_set_uniformly() {
    let n = 1000u64;
    let dist = Distribution::Hotspot {
        hot_fraction: 0.2,
        hot_op_fraction: 0.8,
    };
    let c = counts(&mut KeyChooser::new(dist, n), n, 6);
    let hot: u64 = c[..200].iter().sum();
    let share = hot as f64 / DRAWS as f64;
    assert!((share - 0.8).abs() < 0.01, "hot share {share}");
    let hot_probs = vec![1.0 / 200.0; 200];
    let chi2 = chi_square(&c[..200], &hot_probs);
    // 199 degrees of freedom: mean 199, sd 20.
    assert!(chi2 < 300.0, "chi2 within the hot set {chi2}");
}

#[test]
fn bad_distribution_parameters_are_refused() {
    assert!(Distribution::Zipfian { theta: 1.0 }.validate().is_err());
    assert!(Distribution::Latest { theta: 0.0 }.validate().is_err());
    let hot = Distribution::Hotspot {
        hot_fraction: 1.5,
        hot_op_fraction: 0.5,
    };
    assert!(hot.validate().is_err());
}

#[test]
fn mix_draws_each_kind_in_proportion() {
    let (mix, _) = preset("f").unwrap();
    let mut prng = Prng::new(7);
    let mut n = [0u64; 5];
    for _ in 0..DRAWS {
        n[mix.choose(&mut prng).index()] += 1;
    }
    let read = n[OpKind::Read.index()] as f64 / DRAWS as f64;
    assert!((read - 0.5).abs() < 0.01, "read share {read}");
    assert_eq!(n[OpKind::Update.index()], 0);
    assert_eq!(n[OpKind::Scan.index()], 0);
}

#[test]
fn custom_mix_parses_and_rejects_nonsense() {
    let mix = Mix::parse("read=0.9, update=0.05,rmw=0.05").unwrap();
    assert!((mix.share(OpKind::ReadModifyWrite) - 0.05).abs() < 1e-12);
    assert!(Mix::parse("read=1,write=1").is_err());
    assert!(Mix::parse("read=-1").is_err());
    assert!(Mix::parse("read=0").is_err());
    assert!(Mix::parse("read").is_err());
}

#[test]
fn generator_inserts_claim_fresh_keys_and_reads_stay_in_range() {
    let (mix, distribution) = preset("d").unwrap();
    let spec = WorkloadSpec {
        name: "d".to_owned(),
        mix,
        distribution,
        records: 100,
        field_count: 10,
        field_bytes: 100,
        scan_length_max: 100,
        write_all_fields: false,
    };
    let keys = KeySpace::new(spec.records);
    let mut g = Generator::new(&spec, KeyChooser::new(distribution, 100), 8);
    let mut inserted = Vec::new();
    for _ in 0..10_000 {
        match g.next(&keys) {
            Operation::Insert { key } => inserted.push(key),
            Operation::Read { key } => assert!(key < keys.visible()),
            other => panic!("workload D issued {other:?}"),
        }
    }
    let expected: Vec<u64> = (100..100 + inserted.len() as u64).collect();
    assert_eq!(inserted, expected);
}

#[test]
fn key_names_sort_in_record_order() {
    assert_eq!(key_name(123), "user000000000123");
    assert!(key_name(99) < key_name(100));
}
