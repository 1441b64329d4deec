//! Number: parsing, printing, normalization, order, range and addition.

use std::cmp::Ordering;

use proptest::prelude::*;

use super::strategies::{number, pow10};
use crate::model::{ModelError, Number};

fn n(text: &str) -> Number {
    text.parse()
        .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

#[test]
fn equal_values_are_equal_numbers() {
    assert_eq!(n("1.0"), n("1"));
    assert_eq!(n("1"), n("10E-1"));
    assert_eq!(n("100"), n("1e2"));
    assert_eq!(n("0.5"), n(".5"));
    assert_eq!(n("5."), n("5"));
    assert_eq!(n("+5"), n("5"));
    assert_eq!(n("-0"), Number::ZERO);
    assert_eq!(n("0.000E+77"), Number::ZERO);
    assert_eq!(n("0E1000000000000000"), Number::ZERO);
    assert_eq!(n("-00012.3400"), n("-12.34"));
    assert_eq!(Number::from(-1200i64), n("-1.2E3"));
    assert_eq!(Number::from(u64::MAX), n("18446744073709551615"));
    assert_eq!(Number::from(i64::MIN), n("-9223372036854775808"));
}

#[test]
fn display_is_plain_for_moderate_exponents_and_scientific_otherwise() {
    for (input, shown) in [
        ("123", "123"),
        ("-0.0015", "-0.0015"),
        ("1000", "1000"),
        ("12.5", "12.5"),
        ("0", "0"),
        ("1E+100", "1E+100"),
        ("-1.5e-50", "-1.5E-50"),
        ("0.0000000001", "0.0000000001"),
        ("0.00000000001", "1E-11"),
        (
            "12345678901234567890123456789012345678",
            "12345678901234567890123456789012345678",
        ),
        ("1E37", "10000000000000000000000000000000000000"),
        ("1E38", "1E+38"),
        ("1E-130", "1E-130"),
    ] {
        assert_eq!(n(input).to_string(), shown, "display of {input}");
    }
}

#[test]
fn bad_syntax_is_rejected() {
    for input in [
        "", "-", "+", ".", "e5", "1e", "1e+", "1e-", " 1", "1 ", "1.2.3", "NaN", "Infinity",
        "0x10", "1,5", "--1", "1e5.5", "1ee5", "١",
    ] {
        assert!(
            matches!(
                input.parse::<Number>(),
                Err(ModelError::NumberSyntax { .. })
            ),
            "{input:?} should be a syntax error"
        );
    }
}

#[test]
fn precision_is_38_significant_digits() {
    let nines_38 = "9".repeat(38);
    assert_eq!(n(&nines_38).digit_count(), 38);
    assert_eq!(
        n(&format!("{nines_38}00")).digit_count(),
        38,
        "trailing zeros are free"
    );
    assert_eq!(
        n(&format!("0.000{nines_38}")).digit_count(),
        38,
        "leading zeros are free"
    );
    assert_eq!(
        format!("1{nines_38}").parse::<Number>(),
        Err(ModelError::NumberPrecision { digits: 39 })
    );
    assert_eq!(
        format!("1.{}1", "0".repeat(40)).parse::<Number>(),
        Err(ModelError::NumberPrecision { digits: 42 })
    );
}

#[test]
fn range_is_1e_minus_130_to_below_1e126() {
    let nines = format!("9.{}E+125", "9".repeat(37));
    assert_eq!(n(&nines).exponent_scientific(), 125);
    assert_eq!(n("-1E-130").exponent_scientific(), -130);
    assert_eq!(n("1.5E-130").exponent_scientific(), -130);
    for input in [
        "1E126",
        "-1E126",
        "1E-131",
        "0.9E-130",
        "1E1000000000000",
        "1E-99999999999",
    ] {
        assert!(
            matches!(input.parse::<Number>(), Err(ModelError::NumberRange { .. })),
            "{input} should be out of range"
        );
    }
}

#[test]
fn order_is_numeric() {
    let sorted = [
        "-1E125",
        "-100",
        "-12.5",
        "-12",
        "-1",
        "-0.5",
        "-1E-130",
        "0",
        "1E-130",
        "0.001",
        "0.5",
        "1",
        "1.0000000000000000000000000000000000001",
        "2",
        "10",
        "12",
        "12.5",
        "100",
        "9.9999999999999999999999999999999999999E+125",
    ];
    for pair in sorted.windows(2) {
        assert!(n(pair[0]) < n(pair[1]), "{} < {}", pair[0], pair[1]);
    }
}

#[test]
fn checked_add_is_exact_or_fails() {
    assert_eq!(n("1").checked_add(&n("2")), Ok(n("3")));
    assert_eq!(n("0.1").checked_add(&n("0.2")), Ok(n("0.3")));
    assert_eq!(n("-5").checked_add(&n("5")), Ok(Number::ZERO));
    assert_eq!(n("1E125").checked_add(&n("-1E125")), Ok(Number::ZERO));
    assert_eq!(n("-0.75").checked_add(&n("0.25")), Ok(n("-0.5")));
    // 38 nines plus one is 1E38: one significant digit, fine.
    assert_eq!(n(&"9".repeat(38)).checked_add(&n("1")), Ok(n("1E38")));
    assert_eq!(
        n(&"9".repeat(38)).checked_add(&n("0.1")),
        Err(ModelError::NumberPrecision { digits: 39 })
    );
    assert!(matches!(
        n("1E100").checked_add(&n("1E-100")),
        Err(ModelError::NumberPrecision { .. })
    ));
    let max = n(&format!("9.{}E+125", "9".repeat(37)));
    assert!(matches!(
        max.checked_add(&n("1E88")),
        Err(ModelError::NumberRange { .. })
    ));
    assert_eq!(n("7").checked_sub(&n("10")), Ok(n("-3")));
}

/// Reference order: both magnitudes as exact decimal digit strings at a common exponent.
fn reference_cmp(a: &Number, b: &Number) -> Ordering {
    let sign = |x: &Number| {
        if x.is_zero() {
            0
        } else if x.is_negative() {
            -1
        } else {
            1
        }
    };
    if sign(a) != sign(b) {
        return sign(a).cmp(&sign(b));
    }
    if a.is_zero() {
        return Ordering::Equal;
    }
    let common = a.exponent().min(b.exponent());
    let digits = |x: &Number| {
        let mut s = x.significand().to_string();
        s.push_str(&"0".repeat((x.exponent() - common) as usize));
        s
    };
    let (da, db) = (digits(a), digits(b));
    let magnitude = da.len().cmp(&db.len()).then_with(|| da.cmp(&db));
    if sign(a) < 0 {
        magnitude.reverse()
    } else {
        magnitude
    }
}

proptest! {
    #[test]
    fn display_then_parse_is_identity(x in number()) {
        prop_assert_eq!(x.to_string().parse::<Number>(), Ok(x));
    }

    #[test]
    fn ord_agrees_with_exact_reference(a in number(), b in number()) {
        prop_assert_eq!(a.cmp(&b), reference_cmp(&a, &b));
        prop_assert_eq!(a == b, reference_cmp(&a, &b) == Ordering::Equal);
    }

    #[test]
    fn parse_agrees_with_parts(
        negative in any::<bool>(),
        core_digits in 1u32..=38,
        raw in any::<u128>(),
        leading_zeros in 0usize..4,
        trailing_zeros in 0usize..4,
        point_from_end in 0usize..50,
        exponent in -60i64..60,
        upper_e in any::<bool>(),
    ) {
        let core = raw % pow10(core_digits);
        let body = format!(
            "{}{}{}", "0".repeat(leading_zeros), core, "0".repeat(trailing_zeros)
        );
        let point = point_from_end.min(body.len());
        let (int_part, frac_part) = body.split_at(body.len() - point);
        let text = format!(
            "{}{}.{}{}{}",
            if negative { "-" } else { "" },
            int_part,
            frac_part,
            if upper_e { "E" } else { "e" },
            exponent
        );
        let expected =
            Number::from_parts(negative, core, exponent - point as i64 + trailing_zeros as i64);
        prop_assert_eq!(text.parse::<Number>(), expected, "{}", text);
    }

    #[test]
    fn addition_is_commutative_and_inverts(a in number(), b in number()) {
        let sum = a.checked_add(&b);
        prop_assert_eq!(&sum, &b.checked_add(&a));
        if let Ok(sum) = sum {
            if let Ok(back) = sum.checked_sub(&b) {
                prop_assert_eq!(back, a);
            }
            prop_assert_eq!(sum.cmp(&a), b.cmp(&Number::ZERO));
        }
        prop_assert_eq!(a.checked_add(&a.negated()), Ok(Number::ZERO));
        prop_assert_eq!(a.checked_add(&Number::ZERO), Ok(a));
    }
}

/// Digits of |x| at exponent `common` (most significant first, no leading zeros).
fn aligned_digits(x: &Number, common: i32) -> Vec<u8> {
    let mut digits: Vec<u8> = x
        .significand()
        .to_string()
        .bytes()
        .map(|b| b - b'0')
        .collect();
    digits.extend(std::iter::repeat_n(0, (x.exponent() - common) as usize));
    digits
}

fn cmp_digits(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Schoolbook addition or subtraction (a >= b) of digit strings.
fn add_or_sub_digits(a: &[u8], b: &[u8], subtract: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut carry = 0i32;
    for i in 0..a.len().max(b.len()) {
        let da = i32::from(*a.iter().rev().nth(i).unwrap_or(&0));
        let db = i32::from(*b.iter().rev().nth(i).unwrap_or(&0));
        let mut d = if subtract {
            da - db + carry
        } else {
            da + db + carry
        };
        carry = 0;
        if d < 0 {
            d += 10;
            carry = -1;
        } else if d > 9 {
            d -= 10;
            carry = 1;
        }
        out.push(d as u8);
    }
    if carry == 1 {
        out.push(1);
    }
    while out.len() > 1 && out.last() == Some(&0) {
        out.pop();
    }
    out.reverse();
    out
}

/// The exact sum by digit strings, then DynamoDB's limits.
fn reference_add(a: &Number, b: &Number) -> Result<Number, ModelError> {
    if a.is_zero() || b.is_zero() {
        return Ok(if a.is_zero() { *b } else { *a });
    }
    let common = a.exponent().min(b.exponent());
    let (da, db) = (aligned_digits(a, common), aligned_digits(b, common));
    let (negative, mut digits) = if a.is_negative() == b.is_negative() {
        (a.is_negative(), add_or_sub_digits(&da, &db, false))
    } else if cmp_digits(&da, &db) != Ordering::Less {
        (a.is_negative(), add_or_sub_digits(&da, &db, true))
    } else {
        (b.is_negative(), add_or_sub_digits(&db, &da, true))
    };
    if digits == [0] {
        return Ok(Number::ZERO);
    }
    let mut exponent = i64::from(common);
    while digits.last() == Some(&0) {
        digits.pop();
        exponent += 1;
    }
    if digits.len() > 38 {
        return Err(ModelError::NumberPrecision {
            digits: digits.len(),
        });
    }
    let significand = digits
        .iter()
        .fold(0u128, |acc, d| acc * 10 + u128::from(*d));
    Number::from_parts(negative, significand, exponent)
}

/// Two numbers whose exponents are close, so that sums mostly fit and carries happen.
fn near_pair() -> impl Strategy<Value = (Number, Number)> {
    let near = || {
        (any::<bool>(), 1u32..=38, any::<u128>(), -40i64..40).prop_map(
            |(negative, digits, raw, exponent)| {
                let nines = raw % 4 == 0;
                let significand = if nines {
                    pow10(digits) - 1
                } else {
                    raw % pow10(digits)
                };
                Number::from_parts(negative, significand, exponent).unwrap_or(Number::ZERO)
            },
        )
    };
    (near(), near())
}

proptest! {
    #[test]
    fn checked_add_agrees_with_digit_string_arithmetic((a, b) in near_pair()) {
        let expected = reference_add(&a, &b);
        let actual = a.checked_add(&b);
        match (&expected, &actual) {
            (Ok(e), Ok(x)) => prop_assert_eq!(e, x),
            (Err(ModelError::NumberPrecision { .. }), Err(ModelError::NumberPrecision { .. })) => {}
            (Err(ModelError::NumberRange { .. }), Err(ModelError::NumberRange { .. })) => {}
            _ => prop_assert!(false, "{a:?} + {b:?}: expected {expected:?}, got {actual:?}"),
        }
    }

    #[test]
    fn checked_add_agrees_with_reference_over_the_whole_range(a in number(), b in number()) {
        let expected = reference_add(&a, &b);
        let actual = a.checked_add(&b);
        prop_assert_eq!(expected.is_ok(), actual.is_ok(), "{:?} + {:?}", a, b);
        if let (Ok(e), Ok(x)) = (expected, actual) {
            prop_assert_eq!(e, x);
        }
    }
}
