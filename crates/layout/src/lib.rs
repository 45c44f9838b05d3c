//! The contract between the builder and the guest.
