//! Conditions on a write: what the current item must look like for the write to happen.

use keel_net::{Item, Value};

/// The precondition of a put or delete, checked against the item stored now.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Condition {
    /// No precondition.
    Always,
    /// An item with this key exists.
    Exists,
    /// No item with this key exists.
    Absent,
    /// The item exists and its attribute `name` equals `value`.
    AttributeEquals {
        /// The attribute.
        name: String,
        /// The value it must hold.
        value: Value,
    },
    /// The item does not exist, or it has no attribute `name`.
    AttributeAbsent {
        /// The attribute.
        name: String,
    },
}

impl Condition {
    /// Whether the condition holds for the current item (`None`: no item).
    pub fn holds(&self, current: Option<&Item>) -> bool {
        match self {
            Condition::Always => true,
            Condition::Exists => current.is_some(),
            Condition::Absent => current.is_none(),
            Condition::AttributeEquals { name, value } => {
                current.and_then(|i| i.get(name)) == Some(value)
            }
            Condition::AttributeAbsent { name } => current.and_then(|i| i.get(name)).is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_on_present_and_absent_items() {
        let mut item = Item::new();
        item.insert("v".into(), Value::S("x".into()));
        let eq = |s: &str| Condition::AttributeEquals {
            name: "v".into(),
            value: Value::S(s.into()),
        };
        let absent = Condition::AttributeAbsent { name: "v".into() };
        assert!(Condition::Always.holds(None));
        assert!(Condition::Exists.holds(Some(&item)) && !Condition::Exists.holds(None));
        assert!(Condition::Absent.holds(None) && !Condition::Absent.holds(Some(&item)));
        assert!(eq("x").holds(Some(&item)));
        assert!(!eq("y").holds(Some(&item)) && !eq("x").holds(None));
        assert!(absent.holds(None) && !absent.holds(Some(&item)));
    }
}
