//! A JSON Schema (draft-07) of the configuration language, for editors with
//! a YAML language server: they validate and complete configs as people
//! type. It is generated from the same declarations the reader is (the
//! `model!` macro), so the keys it knows are exactly the keys `validate`
//! accepts; the checks that need more than a schema (capability names,
//! bind syntax, references between entries) stay `validate`'s.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use crate::decode::{Id, StringMap};
use crate::model::{Config, ImageName};
use crate::source::Sp;

/// Named definitions (`#/definitions/NAME`), each written once.
#[derive(Debug, Default)]
pub struct Defs(BTreeMap<&'static str, Json>);

impl Defs {
    /// A reference to the object type `name`, defining it on first use
    /// from its `properties` (every other key is refused).
    pub fn object(
        &mut self,
        name: &'static str,
        properties: impl FnOnce(&mut Defs) -> Vec<(&'static str, Json)>,
        required: &[&str],
    ) -> Json {
        if !self.0.contains_key(name) {
            // A placeholder first: a type may refer to itself.
            self.0.insert(name, Json::Null);
            let properties: Map<String, Json> = properties(self)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            let mut def = json!({
                "type": "object",
                "properties": properties,
                "additionalProperties": false,
            });
            if !required.is_empty() {
                def["required"] = json!(required);
            }
            self.0.insert(name, def);
        }
        json!({ "$ref": format!("#/definitions/{name}") })
    }
}

/// A type of the model with a JSON Schema.
pub trait Schema {
    fn schema(defs: &mut Defs) -> Json;
}

impl<T: Schema> Schema for Sp<T> {
    fn schema(defs: &mut Defs) -> Json {
        T::schema(defs)
    }
}

impl<T: Schema> Schema for Vec<T> {
    fn schema(defs: &mut Defs) -> Json {
        json!({ "type": "array", "items": T::schema(defs) })
    }
}

impl Schema for String {
    fn schema(_: &mut Defs) -> Json {
        json!({ "type": "string" })
    }
}

impl Schema for bool {
    fn schema(_: &mut Defs) -> Json {
        json!({ "type": "boolean" })
    }
}

macro_rules! integer_schema {
    ($($ty:ty),*) => {$(
        impl Schema for $ty {
            fn schema(_: &mut Defs) -> Json {
                json!({ "type": "integer", "minimum": <$ty>::MIN, "maximum": <$ty>::MAX })
            }
        }
    )*};
}

integer_schema!(i64, u64, i32, u32, u16);

impl Schema for StringMap {
    fn schema(_: &mut Defs) -> Json {
        json!({ "type": "object", "additionalProperties": { "type": "string" } })
    }
}

impl Schema for Id {
    fn schema(_: &mut Defs) -> Json {
        json!({
            "type": ["integer", "string"],
            "minimum": 0,
            "maximum": u32::MAX,
            "description": "a number, `root`, or the name of a container (its id)",
        })
    }
}

impl Schema for ImageName {
    fn schema(_: &mut Defs) -> Json {
        json!({
            "type": "string",
            "minLength": 1,
            "description": "an image reference (`linuxkit/getty:TAG`, `docker.io/library/alpine@sha256:...`) or a package directory (`@pkg:./path`, quoted)",
        })
    }
}

/// The whole language's schema.
pub fn json_schema() -> Json {
    let mut defs = Defs::default();
    let root = Config::schema(&mut defs);
    let mut schema = Map::new();
    let mut put = |key: &str, value: Json| schema.insert(key.to_owned(), value);
    put("$schema", json!("http://json-schema.org/draft-07/schema#"));
    put("$id", json!("https://slipway.invalid/schema/config.json"));
    put("title", json!("slipway / LinuxKit image configuration"));
    put(
        "description",
        json!(
            "A kernel, init images, onboot, onshutdown and service containers, files and \
             volumes (LinuxKit's YAML)."
        ),
    );
    put("allOf", json!([root]));
    put(
        "definitions",
        Json::Object(defs.0.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
    );
    Json::Object(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_the_model_is_in_the_schema() {
        let schema = json_schema();
        let defs = &schema["definitions"];
        let keys = |name: &str| -> Vec<String> {
            defs[name]["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{name} is defined"))
                .keys()
                .cloned()
                .collect()
        };
        let mut top = keys("Config");
        top.sort();
        let mut want: Vec<String> = Config::KEYS.iter().map(|k| (*k).to_owned()).collect();
        want.sort();
        assert_eq!(top, want);
        let image = keys("Image");
        for key in crate::model::ImageSpec::KEYS
            .iter()
            .chain(crate::model::Image::KEYS)
        {
            assert!(image.iter().any(|k| k == key), "{key} missing from Image");
        }
        assert_eq!(defs["Image"]["required"], json!(["name", "image"]));
        assert_eq!(defs["Config"]["additionalProperties"], json!(false));
    }
}
