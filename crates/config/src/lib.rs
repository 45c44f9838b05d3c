//! The LinuxKit YAML language.
