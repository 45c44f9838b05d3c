//! Image references: parsing, normalisation, digests and platforms.
