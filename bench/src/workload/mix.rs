//! Operation kinds and the mix of them a workload draws from (YCSB's proportions).

use serde::Serialize;

use crate::prng::Prng;

/// One kind of operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Read one record (all fields).
    Read,
    /// Overwrite one field of a record (or all, with `write_all_fields`).
    Update,
    /// Insert a new record (all fields).
    Insert,
    /// Read a short run of records starting at one.
    Scan,
    /// Read a record, then update it.
    ReadModifyWrite,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; 5] = [
        OpKind::Read,
        OpKind::Update,
        OpKind::Insert,
        OpKind::Scan,
        OpKind::ReadModifyWrite,
    ];

    /// The kind's index in [`OpKind::ALL`].
    pub fn index(self) -> usize {
        match self {
            OpKind::Read => 0,
            OpKind::Update => 1,
            OpKind::Insert => 2,
            OpKind::Scan => 3,
            OpKind::ReadModifyWrite => 4,
        }
    }

    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Update => "update",
            OpKind::Insert => "insert",
            OpKind::Scan => "scan",
            OpKind::ReadModifyWrite => "read_modify_write",
        }
    }
}

/// Proportions of each kind; they need not sum to one (they are normalised).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    /// Weight of each kind, indexed by [`OpKind::index`].
    pub weights: [f64; 5],
}

impl Mix {
    /// A mix from (kind, weight) pairs; kinds not named have weight zero.
    pub fn of(pairs: &[(OpKind, f64)]) -> Mix {
        let mut weights = [0.0; 5];
        for &(kind, weight) in pairs {
            weights[kind.index()] += weight;
        }
        Mix { weights }
    }

    /// Checks that weights are finite, non-negative and not all zero.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(w) = self.weights.iter().find(|w| !w.is_finite() || **w < 0.0) {
            return Err(format!("operation proportion {w} must be finite and ≥ 0"));
        }
        if self.total() <= 0.0 {
            return Err("the operation proportions are all zero".to_owned());
        }
        Ok(())
    }

    fn total(&self) -> f64 {
        self.weights.iter().sum()
    }

    /// The normalised share of `kind`.
    pub fn share(&self, kind: OpKind) -> f64 {
        self.weights[kind.index()] / self.total()
    }

    /// The kinds with a positive weight.
    pub fn kinds(&self) -> Vec<OpKind> {
        OpKind::ALL
            .into_iter()
            .filter(|k| self.weights[k.index()] > 0.0)
            .collect()
    }

    /// Draws a kind with probability proportional to its weight.
    pub fn choose(&self, prng: &mut Prng) -> OpKind {
        let mut x = prng.next_f64() * self.total();
        let mut last = OpKind::Read;
        for kind in OpKind::ALL {
            let w = self.weights[kind.index()];
            if w <= 0.0 {
                continue;
            }
            last = kind;
            if x < w {
                return kind;
            }
            x -= w;
        }
        // Rounding left x a hair above the sum: the last kind with weight.
        last
    }

    /// `read=0.5,update=0.5` style.
    pub fn label(&self) -> String {
        self.kinds()
            .iter()
            .map(|k| format!("{}={}", k.name(), self.share(*k)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses `read=0.5,update=0.5` (names as in [`OpKind::name`], also `rmw`).
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut pairs = Vec::new();
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected KIND=PROPORTION"))?;
            let kind = match name.trim() {
                "read" => OpKind::Read,
                "update" => OpKind::Update,
                "insert" => OpKind::Insert,
                "scan" => OpKind::Scan,
                "rmw" | "read_modify_write" | "readmodifywrite" => OpKind::ReadModifyWrite,
                other => return Err(format!("unknown operation `{other}`")),
            };
            let weight: f64 = weight
                .trim()
                .parse()
                .map_err(|e| format!("`{part}`: bad proportion: {e}"))?;
            pairs.push((kind, weight));
        }
        let mix = Mix::of(&pairs);
        mix.validate()?;
        Ok(mix)
    }
}
