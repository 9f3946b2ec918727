//! The keys of a JSON object line, failing on a key written twice at its
//! top level (serde_json's own maps keep the last one silently).

use serde::de::{Deserialize, Deserializer, Error, IgnoredAny, MapAccess, Visitor};

/// An object whose top-level keys are all different.
struct TopKeys;

impl<'de> Deserialize<'de> for TopKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TopKeys, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = TopKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopKeys, A::Error> {
                let mut keys: Vec<String> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    if keys.contains(&key) {
                        return Err(A::Error::custom(format!("duplicate key {key:?}")));
                    }
                    keys.push(key);
                }
                Ok(TopKeys)
            }
        }
        d.deserialize_map(Keys)
    }
}

/// Fails when `line` is not a JSON object or has a top-level key twice.
pub fn assert_no_key_twice(line: &str) {
    if let Err(e) = serde_json::from_str::<TopKeys>(line) {
        panic!("{e}: {line}");
    }
}
