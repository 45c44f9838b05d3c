//! The content store and registry client.
