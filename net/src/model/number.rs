//! [`Number`]: an exact decimal as DynamoDB has it.
//!
//! A number is `(-1)^negative × significand × 10^exponent` with:
//! - `significand` < 10^38 (at most 38 significant digits) and, unless the number is zero,
//!   not divisible by 10: the representation is normalized, so equal values have equal
//!   fields (`1.0 == 1 == 10E-1`) and the derived `Eq`/`Hash` agree with numeric equality;
//! - zero is `significand = 0, exponent = 0, negative = false` (there is no `-0`);
//! - a non-zero magnitude lies in `1E-130 ..= 9.9999999999999999999999999999999999999E+125`,
//!   i.e. the scientific exponent `exponent + digits - 1` is in `-130..=125`.
//!
//! It does not round: an input or a sum that needs more than 38 significant digits is an
//! error, as in DynamoDB.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::model::error::{input_start, ModelError};

/// Most significant digits a number may have.
pub const DIGITS_MAX: usize = 38;
/// Smallest scientific exponent of a non-zero number (1E-130).
pub const EXPONENT_SCIENTIFIC_MIN: i32 = -130;
/// Largest scientific exponent of a non-zero number (9.99..9E+125).
pub const EXPONENT_SCIENTIFIC_MAX: i32 = 125;

/// Powers of ten that fit in a `u128`: 10^0 ..= 10^38.
const POW10: [u128; 39] = {
    let mut table = [1u128; 39];
    let mut i = 1;
    while i < 39 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// 10^38: every significand is below it.
const SIGNIFICAND_LIMIT: u128 = POW10[38];
const _: () = assert!(
    SIGNIFICAND_LIMIT < u128::MAX / 2,
    "room for the sign bit in the codec"
);

/// An exact decimal number with up to 38 significant digits (DynamoDB's `N`).
///
/// Parsed with [`FromStr`], printed with [`Display`](fmt::Display) (plain notation for
/// moderate exponents, `d.dddE+x` otherwise), ordered by numeric value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Number {
    /// Digits without trailing zeros; 0 only for zero. Two u64 halves (high, low) rather
    /// than a u128, whose 16-byte alignment would grow `Number` to 32 bytes and every
    /// `Value` with it; `Number` is 24 bytes.
    significand_halves: [u64; 2],
    /// Power of ten of the last digit; 0 for zero.
    exponent: i16,
    /// Sign; false for zero.
    negative: bool,
}

impl Number {
    /// The number zero.
    pub const ZERO: Number = Number {
        significand_halves: [0, 0],
        exponent: 0,
        negative: false,
    };

    /// Builds `(-1)^negative × significand × 10^exponent`, normalizing trailing zeros.
    ///
    /// Errors if more than 38 significant digits remain or the magnitude is out of range.
    pub fn from_parts(
        negative: bool,
        significand: u128,
        exponent: i64,
    ) -> Result<Number, ModelError> {
        if significand == 0 {
            return Ok(Number::ZERO);
        }
        let mut significand = significand;
        let mut exponent = exponent;
        while significand % 10 == 0 {
            significand /= 10;
            exponent = exponent.saturating_add(1);
        }
        if significand >= SIGNIFICAND_LIMIT {
            return Err(ModelError::NumberPrecision {
                digits: digit_count(significand),
            });
        }
        let digits = digit_count(significand) as i64;
        let exponent_scientific = exponent.saturating_add(digits - 1);
        if exponent_scientific < i64::from(EXPONENT_SCIENTIFIC_MIN)
            || exponent_scientific > i64::from(EXPONENT_SCIENTIFIC_MAX)
        {
            return Err(ModelError::NumberRange {
                exponent_scientific,
            });
        }
        // In range, so the exponent of the last digit is within -167..=125: fits an i16.
        let exponent = i16::try_from(exponent).map_err(|_| ModelError::NumberRange {
            exponent_scientific,
        })?;
        Ok(Number {
            significand_halves: halves(significand),
            exponent,
            negative,
        })
    }

    /// Whether the number is zero.
    pub fn is_zero(&self) -> bool {
        self.significand_halves == [0, 0]
    }

    /// Whether the number is below zero.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// The significant digits as an integer (no trailing zeros; 0 for zero).
    pub fn significand(&self) -> u128 {
        let [high, low] = self.significand_halves;
        (u128::from(high) << 64) | u128::from(low)
    }

    /// The power of ten of the last significant digit (0 for zero).
    pub fn exponent(&self) -> i32 {
        i32::from(self.exponent)
    }

    /// How many significant digits (1 for zero).
    pub fn digit_count(&self) -> usize {
        digit_count(self.significand())
    }

    /// The exponent in scientific notation `d.ddd × 10^e` (0 for zero).
    pub fn exponent_scientific(&self) -> i32 {
        self.exponent() + self.digit_count() as i32 - 1
    }

    /// The negated number (zero stays zero).
    pub fn negated(&self) -> Number {
        Number {
            negative: !self.negative && !self.is_zero(),
            ..*self
        }
    }

    /// The exact sum, or an error if it needs more than 38 significant digits or leaves the
    /// range (DynamoDB's `ADD` and atomic counters fail the same way rather than round).
    pub fn checked_add(&self, other: &Number) -> Result<Number, ModelError> {
        if self.is_zero() {
            return Ok(*other);
        }
        if other.is_zero() {
            return Ok(*self);
        }
        // Align both significands on the smaller exponent. If the shift overflows a u128,
        // the exact sum needs more than 38 digits: the smaller-exponent operand's last digit
        // is non-zero and survives the addition, while the larger one exceeds 10^38 units.
        let (high, low) = if self.exponent >= other.exponent {
            (self, other)
        } else {
            (other, self)
        };
        let shift =
            usize::try_from(i32::from(high.exponent) - i32::from(low.exponent)).map_err(|_| {
                ModelError::NumberPrecision {
                    digits: DIGITS_MAX + 1,
                }
            })?;
        let too_many = ModelError::NumberPrecision {
            digits: DIGITS_MAX + 1,
        };
        let scale = POW10.get(shift).ok_or_else(|| too_many.clone())?;
        let high_aligned = high
            .significand()
            .checked_mul(*scale)
            .ok_or_else(|| too_many.clone())?;
        let low_aligned = low.significand();
        let (negative, magnitude) = if high.negative == low.negative {
            (
                high.negative,
                high_aligned.checked_add(low_aligned).ok_or(too_many)?,
            )
        } else if high_aligned >= low_aligned {
            (high.negative, high_aligned - low_aligned)
        } else {
            (low.negative, low_aligned - high_aligned)
        };
        Number::from_parts(negative, magnitude, i64::from(low.exponent))
    }

    /// The exact difference `self - other`; errors as [`Number::checked_add`].
    pub fn checked_sub(&self, other: &Number) -> Result<Number, ModelError> {
        self.checked_add(&other.negated())
    }

    /// DynamoDB's size of a number: 1 byte per two significant digits, plus 1 byte.
    pub fn size_bytes(&self) -> usize {
        self.digit_count().div_ceil(2) + 1
    }

    /// The significant digits, most significant first, as values 0..=9, and their count.
    pub(crate) fn digits(&self) -> ([u8; DIGITS_MAX], usize) {
        let mut out = [0u8; DIGITS_MAX];
        let count = self.digit_count();
        let mut rest = self.significand();
        for slot in out.iter_mut().take(count).rev() {
            *slot = (rest % 10) as u8;
            rest /= 10;
        }
        (out, count)
    }

    /// The magnitude compared to another's, ignoring signs.
    fn cmp_magnitude(&self, other: &Number) -> Ordering {
        // Scale both significands to 38 digits so that, at equal scientific exponents,
        // integer comparison is digit-by-digit comparison.
        let scaled = |n: &Number| {
            let pad = DIGITS_MAX - n.digit_count();
            n.significand() * POW10.get(pad).copied().unwrap_or(1)
        };
        self.exponent_scientific()
            .cmp(&other.exponent_scientific())
            .then_with(|| scaled(self).cmp(&scaled(other)))
    }

    fn sign_class(&self) -> i8 {
        if self.is_zero() {
            0
        } else if self.negative {
            -1
        } else {
            1
        }
    }
}

/// A u128 as (high, low) u64 halves.
fn halves(value: u128) -> [u64; 2] {
    [(value >> 64) as u64, value as u64]
}

/// Decimal digits of a u128 (1 for zero).
fn digit_count(value: u128) -> usize {
    match value.checked_ilog10() {
        Some(log) => log as usize + 1,
        None => 1,
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Number) -> Ordering {
        match self.sign_class().cmp(&other.sign_class()) {
            Ordering::Equal => match self.sign_class() {
                0 => Ordering::Equal,
                1 => self.cmp_magnitude(other),
                _ => self.cmp_magnitude(other).reverse(),
            },
            unequal => unequal,
        }
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Number) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<i64> for Number {
    fn from(value: i64) -> Number {
        Number::from_integer(value < 0, u128::from(value.unsigned_abs()))
    }
}

impl From<u64> for Number {
    fn from(value: u64) -> Number {
        Number::from_integer(false, u128::from(value))
    }
}

impl From<i32> for Number {
    fn from(value: i32) -> Number {
        Number::from(i64::from(value))
    }
}

impl Number {
    /// Normalizes an integer below 2^64: at most 20 digits and exponent at most 19, so it
    /// is always in range and needs no checks.
    fn from_integer(negative: bool, magnitude: u128) -> Number {
        if magnitude == 0 {
            return Number::ZERO;
        }
        let mut significand = magnitude;
        let mut exponent = 0i16;
        while significand % 10 == 0 {
            significand /= 10;
            exponent += 1;
        }
        Number {
            significand_halves: halves(significand),
            exponent,
            negative,
        }
    }
}

impl FromStr for Number {
    type Err = ModelError;

    /// Parses `[+-]digits[.digits][(e|E)[+-]digits]` (at least one mantissa digit; `.5`
    /// and `5.` are accepted). No whitespace, no `Infinity`/`NaN`.
    fn from_str(input: &str) -> Result<Number, ModelError> {
        let syntax = || ModelError::NumberSyntax {
            input: input_start(input),
        };
        let bytes = input.as_bytes();
        let mut at = 0usize;
        let mut negative = false;
        if let Some(&sign) = bytes.first() {
            if sign == b'+' || sign == b'-' {
                negative = sign == b'-';
                at += 1;
            }
        }
        let mut significand: u128 = 0;
        let mut significant_digits = 0usize; // From the first to the last non-zero digit.
        let mut pending_zeros = 0usize; // Zeros after the last non-zero digit.
        let mut fraction_digits = 0usize;
        let mut mantissa_digits = 0usize;
        let mut seen_point = false;
        while let Some(&byte) = bytes.get(at) {
            match byte {
                b'0'..=b'9' => {
                    mantissa_digits += 1;
                    if seen_point {
                        fraction_digits += 1;
                    }
                    let digit = u128::from(byte - b'0');
                    if digit == 0 {
                        if significant_digits > 0 {
                            pending_zeros += 1;
                        }
                    } else {
                        significant_digits += pending_zeros + 1;
                        if significant_digits <= DIGITS_MAX {
                            // At most 38 digits are accumulated, so this cannot overflow.
                            significand =
                                significand * POW10[pending_zeros.min(DIGITS_MAX)] * 10 + digit;
                        }
                        pending_zeros = 0;
                    }
                }
                b'.' if !seen_point => seen_point = true,
                _ => break,
            }
            at += 1;
        }
        if mantissa_digits == 0 {
            return Err(syntax());
        }
        let mut exponent: i64 = 0;
        if let Some(&marker) = bytes.get(at) {
            if marker != b'e' && marker != b'E' {
                return Err(syntax());
            }
            at += 1;
            let mut exponent_negative = false;
            if let Some(&sign) = bytes.get(at) {
                if sign == b'+' || sign == b'-' {
                    exponent_negative = sign == b'-';
                    at += 1;
                }
            }
            let exponent_start = at;
            while let Some(&byte) = bytes.get(at) {
                if !byte.is_ascii_digit() {
                    return Err(syntax());
                }
                // Saturate: any exponent past a billion is out of range anyway.
                exponent = (exponent * 10 + i64::from(byte - b'0')).min(1_000_000_000);
                at += 1;
            }
            if at == exponent_start {
                return Err(syntax());
            }
            if exponent_negative {
                exponent = -exponent;
            }
        }
        if significant_digits == 0 {
            return Ok(Number::ZERO);
        }
        if significant_digits > DIGITS_MAX {
            return Err(ModelError::NumberPrecision {
                digits: significant_digits,
            });
        }
        let fraction_digits = i64::try_from(fraction_digits).map_err(|_| syntax())?;
        let pending_zeros = i64::try_from(pending_zeros).map_err(|_| syntax())?;
        Number::from_parts(
            negative,
            significand,
            exponent - fraction_digits + pending_zeros,
        )
    }
}

impl fmt::Display for Number {
    /// Plain notation when the exponent is moderate (`123`, `-0.0015`, `1000`), otherwise
    /// scientific (`1.5E+100`, `-2E-50`). Parsing the output gives the same number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        let (digits, count) = self.digits();
        let digits = digits.get(..count).unwrap_or(&[]);
        let mut text = String::with_capacity(64);
        if self.negative {
            text.push('-');
        }
        let push_digits = |text: &mut String, ds: &[u8]| {
            for d in ds {
                text.push(char::from(b'0' + d));
            }
        };
        let exponent = self.exponent();
        let exponent_scientific = self.exponent_scientific();
        if exponent >= 0 && exponent_scientific < DIGITS_MAX as i32 {
            push_digits(&mut text, digits);
            for _ in 0..exponent {
                text.push('0');
            }
        } else if exponent < 0 && exponent_scientific >= -10 {
            if exponent_scientific >= 0 {
                let (int_part, frac_part) = digits.split_at((exponent_scientific + 1) as usize);
                push_digits(&mut text, int_part);
                text.push('.');
                push_digits(&mut text, frac_part);
            } else {
                text.push_str("0.");
                for _ in 0..(-exponent_scientific - 1) {
                    text.push('0');
                }
                push_digits(&mut text, digits);
            }
        } else {
            let (first, rest) = digits.split_at(1);
            push_digits(&mut text, first);
            if !rest.is_empty() {
                text.push('.');
                push_digits(&mut text, rest);
            }
            text.push('E');
            text.push(if exponent_scientific >= 0 { '+' } else { '-' });
            text.push_str(&exponent_scientific.unsigned_abs().to_string());
        }
        f.write_str(&text)
    }
}

impl fmt::Debug for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Number({self})")
    }
}
