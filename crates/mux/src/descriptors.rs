//! Reflection answered from a serialized `FileDescriptorSet`: the
//! multiplexer's own protos, and components that serve no reflection of
//! their own (containerd) but register a descriptor set.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use prost::Message as _;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorProto, FileDescriptorSet};

/// Files by name and the file that defines each symbol.
#[derive(Debug, Default)]
pub struct DescriptorIndex {
    /// Serialized file and the names of the files it imports.
    files: HashMap<String, (Bytes, Vec<String>)>,
    /// Fully-qualified symbol (message, enum, service, method, extension) → file.
    symbols: HashMap<String, String>,
    /// (extended message, field number) → file.
    extensions: HashMap<(String, i32), String>,
    /// Extended message → its extension numbers, sorted.
    extension_numbers: BTreeMap<String, Vec<i32>>,
}

impl DescriptorIndex {
    pub fn from_set(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let set = FileDescriptorSet::decode(bytes)?;
        let mut index = DescriptorIndex::default();
        for file in set.file {
            index.add(file);
        }
        for numbers in index.extension_numbers.values_mut() {
            numbers.sort_unstable();
            numbers.dedup();
        }
        Ok(index)
    }

    fn add(&mut self, file: FileDescriptorProto) {
        let name = file.name().to_string();
        let package = file.package();
        let prefix = if package.is_empty() {
            String::new()
        } else {
            format!("{package}.")
        };
        for m in &file.message_type {
            self.add_message(&prefix, m, &name);
        }
        for e in &file.enum_type {
            self.add_enum(&prefix, e, &name);
        }
        for s in &file.service {
            let service = format!("{prefix}{}", s.name());
            for m in &s.method {
                self.symbols
                    .insert(format!("{service}.{}", m.name()), name.clone());
            }
            self.symbols.insert(service, name.clone());
        }
        for x in &file.extension {
            self.add_extension(&prefix, x, &name);
        }
        let bytes = Bytes::from(file.encode_to_vec());
        self.files.insert(name, (bytes, file.dependency));
    }

    fn add_message(&mut self, prefix: &str, m: &DescriptorProto, file: &str) {
        let full = format!("{prefix}{}", m.name());
        let inner = format!("{full}.");
        for n in &m.nested_type {
            self.add_message(&inner, n, file);
        }
        for e in &m.enum_type {
            self.add_enum(&inner, e, file);
        }
        for x in &m.extension {
            self.add_extension(&inner, x, file);
        }
        self.symbols.insert(full, file.to_string());
    }

    fn add_enum(&mut self, prefix: &str, e: &EnumDescriptorProto, file: &str) {
        self.symbols
            .insert(format!("{prefix}{}", e.name()), file.to_string());
    }

    fn add_extension(&mut self, prefix: &str, x: &prost_types::FieldDescriptorProto, file: &str) {
        self.symbols
            .insert(format!("{prefix}{}", x.name()), file.to_string());
        let extended = x.extendee().trim_start_matches('.').to_string();
        self.extensions
            .insert((extended.clone(), x.number()), file.to_string());
        self.extension_numbers
            .entry(extended)
            .or_default()
            .push(x.number());
    }

    /// `file` and every file it imports, transitively, each once: what a
    /// reflection client needs to build the file's descriptors.
    pub fn file_with_imports(&self, file: &str) -> Option<Vec<Bytes>> {
        self.files.get(file)?;
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut todo = vec![file.to_string()];
        while let Some(f) = todo.pop() {
            if !seen.insert(f.clone()) {
                continue;
            }
            if let Some((bytes, deps)) = self.files.get(&f) {
                out.push(bytes.clone());
                todo.extend(deps.iter().rev().cloned());
            }
        }
        Some(out)
    }

    pub fn file_containing_symbol(&self, symbol: &str) -> Option<Vec<Bytes>> {
        self.file_with_imports(self.symbols.get(symbol)?)
    }

    pub fn file_containing_extension(&self, extended: &str, number: i32) -> Option<Vec<Bytes>> {
        self.file_with_imports(self.extensions.get(&(extended.to_string(), number))?)
    }

    /// Extension numbers of a message this set defines (empty if none).
    pub fn extension_numbers(&self, message: &str) -> Option<Vec<i32>> {
        if !self.symbols.contains_key(message) {
            return None;
        }
        Some(
            self.extension_numbers
                .get(message)
                .cloned()
                .unwrap_or_default(),
        )
    }

    /// Services defined in the set, sorted.
    pub fn services(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (bytes, _) in self.files.values() {
            if let Ok(f) = FileDescriptorProto::decode(bytes.clone()) {
                let package = f.package();
                for s in &f.service {
                    out.push(if package.is_empty() {
                        s.name().to_string()
                    } else {
                        format!("{package}.{}", s.name())
                    });
                }
            }
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_the_multiplexers_own_protos() {
        let index = DescriptorIndex::from_set(crate::proto::DESCRIPTORS).unwrap();
        assert_eq!(
            index.services(),
            [
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
                "slipway.mux.v1.Components",
            ]
        );
        for symbol in [
            "slipway.mux.v1.Components",
            "slipway.mux.v1.Components.List",
            "slipway.mux.v1.Component",
            "slipway.mux.v1.Component.State",
            "grpc.health.v1.HealthCheckResponse.ServingStatus",
        ] {
            let files = index.file_containing_symbol(symbol).unwrap();
            assert_eq!(files.len(), 1, "{symbol}");
        }
        assert!(
            index
                .file_containing_symbol("slipway.mux.v1.Nope")
                .is_none()
        );
        assert!(
            index
                .file_with_imports("grpc/health/v1/health.proto")
                .is_some()
        );
    }
}
