//! slipway's images: the content store (an OCI image layout shared with
//! LinuxKit's cache) and, in later modules, the registry client.

pub mod descriptor;
pub mod error;
pub mod hash;
pub mod media;
pub mod store;

pub use descriptor::{
    Descriptor, DescriptorPlatform, ImageIndex, ImageManifest, ManifestKind, REF_NAME_ANNOTATION,
};
pub use error::StoreError;
pub use store::{BlobWriter, ResolvedImage, Store, VerifyingReader};
