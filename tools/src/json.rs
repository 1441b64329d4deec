//! Items as JSON, for the CLI: DynamoDB's attribute-value form and a plain shorthand.
//!
//! - **Typed** (DynamoDB's form, lossless): `{"id": {"S": "u1"}, "n": {"N": "1"}}`, with
//!   `S N B BOOL NULL M L SS NS BS`; binary values in base64; numbers as strings.
//! - **Plain** (shorthand): `{"id": "u1", "n": 1, "tags": ["a"], "m": {"k": true}}`:
//!   strings are S, numbers N (kept exactly as written), booleans BOOL, null NULL, arrays
//!   L and objects M. Binary values and sets need the typed form.
//!
//! [`parse_item`] takes either: an object whose every value is a one-key object naming a
//! type (`{"S": ...}`) is read as typed, anything else as plain; [`Form`] forces one.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use keel_net::{Item, Number, Value};
use serde_json::{Map, Value as Json};

/// How to read a JSON item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Typed if it looks typed, plain otherwise.
    Auto,
    /// DynamoDB's attribute-value form.
    Typed,
    /// The plain shorthand.
    Plain,
}

const TAGS: [&str; 10] = ["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"];

fn looks_typed(v: &Json) -> bool {
    match v {
        Json::Object(m) if m.len() == 1 => m.keys().all(|k| TAGS.contains(&k.as_str())),
        _ => false,
    }
}

/// Parses an item (or a key, or a map of `:values`) given as JSON text.
pub fn parse_item(text: &str, form: Form) -> Result<Item, String> {
    let json: Json = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let Json::Object(map) = json else {
        return Err("an item must be a JSON object".into());
    };
    let typed = match form {
        Form::Typed => true,
        Form::Plain => false,
        Form::Auto => !map.is_empty() && map.values().all(looks_typed),
    };
    map.into_iter()
        .map(|(k, v)| {
            let value = if typed {
                typed_value(&v)
            } else {
                plain_value(&v)
            };
            value
                .map(|v| (k.clone(), v))
                .map_err(|e| format!("{k}: {e}"))
        })
        .collect()
}

fn number(text: &str) -> Result<Number, String> {
    text.parse::<Number>()
        .map_err(|e| format!("invalid number {text:?}: {e}"))
}

fn plain_value(v: &Json) -> Result<Value, String> {
    Ok(match v {
        Json::String(s) => Value::S(s.clone()),
        Json::Number(n) => Value::N(number(&n.to_string())?),
        Json::Bool(b) => Value::Bool(*b),
        Json::Null => Value::Null,
        Json::Array(a) => Value::L(a.iter().map(plain_value).collect::<Result<_, _>>()?),
        Json::Object(m) => Value::M(
            m.iter()
                .map(|(k, v)| plain_value(v).map(|v| (k.clone(), v)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn str_of<'a>(v: &'a Json, what: &str) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("{what} must be a JSON string"))
}

fn bytes_of(v: &Json) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(str_of(v, "B")?)
        .map_err(|e| format!("B is not base64: {e}"))
}

fn array_of<'a>(v: &'a Json, what: &str) -> Result<&'a Vec<Json>, String> {
    v.as_array()
        .ok_or_else(|| format!("{what} must be a JSON array"))
}

fn typed_value(v: &Json) -> Result<Value, String> {
    let Json::Object(m) = v else {
        return Err("a typed value must be an object like {\"S\": \"text\"}".into());
    };
    let mut it = m.iter();
    let (Some((tag, inner)), None) = (it.next(), it.next()) else {
        return Err("a typed value must have exactly one type key".into());
    };
    Ok(match tag.as_str() {
        "S" => Value::S(str_of(inner, "S")?.to_owned()),
        "N" => Value::N(number(str_of(inner, "N")?)?),
        "B" => Value::B(bytes_of(inner)?),
        "BOOL" => Value::Bool(inner.as_bool().ok_or("BOOL must be true or false")?),
        "NULL" => Value::Null,
        "M" => {
            let Json::Object(m) = inner else {
                return Err("M must be a JSON object".into());
            };
            Value::M(
                m.iter()
                    .map(|(k, v)| typed_value(v).map(|v| (k.clone(), v)))
                    .collect::<Result<_, _>>()?,
            )
        }
        "L" => Value::L(
            array_of(inner, "L")?
                .iter()
                .map(typed_value)
                .collect::<Result<_, _>>()?,
        ),
        "SS" => Value::Ss(
            array_of(inner, "SS")?
                .iter()
                .map(|s| str_of(s, "an SS element").map(str::to_owned))
                .collect::<Result<BTreeSet<_>, _>>()?,
        ),
        "NS" => Value::Ns(
            array_of(inner, "NS")?
                .iter()
                .map(|s| number(str_of(s, "an NS element")?))
                .collect::<Result<BTreeSet<_>, _>>()?,
        ),
        "BS" => Value::Bs(
            array_of(inner, "BS")?
                .iter()
                .map(bytes_of)
                .collect::<Result<BTreeSet<_>, _>>()?,
        ),
        other => return Err(format!("unknown type {other:?}")),
    })
}

fn b64(b: &[u8]) -> Json {
    Json::String(base64::engine::general_purpose::STANDARD.encode(b))
}

/// A value in DynamoDB's typed form.
pub fn typed_json(v: &Value) -> Json {
    let (tag, inner) = match v {
        Value::S(s) => ("S", Json::String(s.clone())),
        Value::N(n) => ("N", Json::String(n.to_string())),
        Value::B(b) => ("B", b64(b)),
        Value::Bool(b) => ("BOOL", Json::Bool(*b)),
        Value::Null => ("NULL", Json::Bool(true)),
        Value::M(m) => ("M", typed_item_json(m)),
        Value::L(l) => ("L", Json::Array(l.iter().map(typed_json).collect())),
        Value::Ss(s) => (
            "SS",
            Json::Array(s.iter().map(|s| Json::String(s.clone())).collect()),
        ),
        Value::Ns(s) => (
            "NS",
            Json::Array(s.iter().map(|n| Json::String(n.to_string())).collect()),
        ),
        Value::Bs(s) => ("BS", Json::Array(s.iter().map(|b| b64(b)).collect())),
    };
    let mut m = Map::new();
    m.insert(tag.to_owned(), inner);
    Json::Object(m)
}

/// An item in DynamoDB's typed form.
pub fn typed_item_json(item: &BTreeMap<String, Value>) -> Json {
    Json::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), typed_json(v)))
            .collect(),
    )
}

/// A value in the plain form, for people: binary as `"b64:..."`, sets as arrays.
pub fn plain_json(v: &Value) -> Json {
    match v {
        Value::S(s) => Json::String(s.clone()),
        Value::N(n) => {
            // Exact: the number's own text, read back as a JSON number.
            serde_json::from_str::<Json>(&n.to_string())
                .unwrap_or_else(|_| Json::String(n.to_string()))
        }
        Value::B(b) => Json::String(format!(
            "b64:{}",
            base64::engine::general_purpose::STANDARD.encode(b)
        )),
        Value::Bool(b) => Json::Bool(*b),
        Value::Null => Json::Null,
        Value::M(m) => plain_item_json(m),
        Value::L(l) => Json::Array(l.iter().map(plain_json).collect()),
        Value::Ss(s) => Json::Array(s.iter().map(|s| Json::String(s.clone())).collect()),
        Value::Ns(s) => Json::Array(s.iter().map(|n| plain_json(&Value::N(*n))).collect()),
        Value::Bs(s) => Json::Array(s.iter().map(|b| plain_json(&Value::B(b.clone()))).collect()),
    }
}

/// An item in the plain form.
pub fn plain_item_json(item: &BTreeMap<String, Value>) -> Json {
    Json::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), plain_json(v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_typed_forms_give_the_same_item() {
        let plain = parse_item(
            r#"{"id":"u1","n":12.50,"ok":true,"z":null,"l":[1,"a"],"m":{"k":"v"}}"#,
            Form::Auto,
        )
        .unwrap();
        let typed = parse_item(
            r#"{"id":{"S":"u1"},"n":{"N":"12.50"},"ok":{"BOOL":true},"z":{"NULL":true},
                "l":{"L":[{"N":"1"},{"S":"a"}]},"m":{"M":{"k":{"S":"v"}}}}"#,
            Form::Auto,
        )
        .unwrap();
        assert_eq!(plain, typed);
        assert_eq!(plain.get("n"), Some(&Value::N("12.5".parse().unwrap())));
    }

    #[test]
    fn numbers_stay_exact_beyond_f64() {
        let item = parse_item(
            r#"{"n": 12345678901234567890123456789012345678}"#,
            Form::Plain,
        )
        .unwrap();
        let Some(Value::N(n)) = item.get("n") else {
            panic!("{item:?}")
        };
        assert_eq!(n.to_string(), "12345678901234567890123456789012345678");
        assert_eq!(
            plain_json(&Value::N(*n)).to_string(),
            "12345678901234567890123456789012345678"
        );
    }

    #[test]
    fn typed_round_trip_of_every_type() {
        let text = r#"{"b":{"B":"AAEC"},"ss":{"SS":["a","b"]},"ns":{"NS":["1","2.5"]},
                       "bs":{"BS":["AA=="]},"s":{"S":"x"}}"#;
        let item = parse_item(text, Form::Typed).unwrap();
        assert_eq!(item.get("b"), Some(&Value::B(vec![0, 1, 2])));
        let back = typed_item_json(&item).to_string();
        assert_eq!(parse_item(&back, Form::Typed).unwrap(), item);
    }

    #[test]
    fn bad_input_gets_a_message_naming_the_attribute() {
        let e = parse_item(r#"{"n":{"N":"abc"}}"#, Form::Auto).unwrap_err();
        assert!(e.starts_with("n: invalid number"), "{e}");
        assert!(parse_item("[1]", Form::Auto)
            .unwrap_err()
            .contains("object"));
        assert!(parse_item("{", Form::Auto)
            .unwrap_err()
            .contains("invalid JSON"));
        let e = parse_item(r#"{"x":{"Q":"1"}}"#, Form::Typed).unwrap_err();
        assert!(e.contains("unknown type"), "{e}");
    }
}
