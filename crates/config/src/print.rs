//! Printing a configuration back as YAML (`slipway build --dry-run`).
//!
//! Only the fields that are present are printed, in the schema's order, so
//! parsing the output gives the same configuration, presence included.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::decode::{Id, StringMap};
use crate::source::Sp;

/// A YAML value in the shape it is printed.
#[derive(Clone, Debug, PartialEq)]
pub enum Out {
    Str(String),
    Int(i128),
    Bool(bool),
    Seq(Vec<Out>),
    Map(Vec<(String, Out)>),
}

impl Serialize for Out {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Str(v) => s.serialize_str(v),
            Out::Int(v) => s.serialize_i128(*v),
            Out::Bool(v) => s.serialize_bool(*v),
            Out::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Out::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// A model type that can be printed.
pub trait ToOut {
    fn to_out(&self) -> Out;
}

impl<T: ToOut> ToOut for Sp<T> {
    fn to_out(&self) -> Out {
        self.value.to_out()
    }
}

impl<T: ToOut> ToOut for Vec<T> {
    fn to_out(&self) -> Out {
        Out::Seq(self.iter().map(ToOut::to_out).collect())
    }
}

impl ToOut for String {
    fn to_out(&self) -> Out {
        Out::Str(self.clone())
    }
}

impl ToOut for bool {
    fn to_out(&self) -> Out {
        Out::Bool(*self)
    }
}

macro_rules! integer_to_out {
    ($($ty:ty),*) => {$(
        impl ToOut for $ty {
            fn to_out(&self) -> Out {
                Out::Int(i128::from(*self))
            }
        }
    )*};
}
integer_to_out!(i64, u64, u32, u16);

impl ToOut for StringMap {
    fn to_out(&self) -> Out {
        Out::Map(
            self.0
                .iter()
                .map(|(k, v)| (k.value.clone(), Out::Str(v.value.clone())))
                .collect(),
        )
    }
}

impl ToOut for Id {
    fn to_out(&self) -> Out {
        match self {
            Id::Number(n) => Out::Int(i128::from(*n)),
            Id::Name(s) => Out::Str(s.clone()),
        }
    }
}

/// Render a printed value as a YAML document.
pub fn to_yaml(out: &Out) -> String {
    if let Out::Map(m) = out
        && m.is_empty()
    {
        return "{}\n".to_string();
    }
    match serde_saphyr::to_string(out) {
        Ok(text) => text,
        // The value tree holds only strings, integers, booleans, lists and
        // string-keyed maps, which always serialise; keep a readable fallback.
        Err(err) => format!("# could not print the configuration: {err}\n"),
    }
}
