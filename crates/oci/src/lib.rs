//! slipway's images: the content store (an OCI image layout shared with
//! LinuxKit's cache), the registry client, and pulling.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use slipway_oci::{ClientOptions, PullPolicy, Puller, RegistryClient, Store};
//! use slipway_reference::{Arch, Platform, Reference};
//!
//! let store = Store::open("/tmp/cache")?;
//! let client = RegistryClient::new(ClientOptions::default())?;
//! let image = Puller::new(&store, &client)
//!     .resolve(&Reference::parse("alpine:3.20")?, &Platform::linux(Arch::Amd64), PullPolicy::IfMissing)
//!     .await?;
//! println!("{} {}", image.reference, image.digest());
//! # Ok(()) }
//! ```

pub mod archive;
pub mod attestation;
pub mod descriptor;
pub mod error;
pub mod hash;
pub mod media;
pub mod progress;
pub mod pull;
pub mod push;
pub mod registry;
pub mod store;

pub use archive::{
    ArchiveError, ArchiveKind, ExportFormat, ExportReport, ImportReport, export, import,
};
pub use descriptor::{
    Descriptor, DescriptorPlatform, ImageIndex, ImageManifest, ManifestKind, REF_NAME_ANNOTATION,
};
pub use error::StoreError;
pub use progress::{NoProgress, Progress};
pub use pull::{PullPolicy, Puller, cache_name};
pub use push::{PushReport, push};
pub use registry::{ClientOptions, Credential, Credentials, Mirror, RegistryClient, RegistryError};
pub use store::{
    BlobWriter, CleanReport, Damaged, GcGuard, ResolvedImage, Store, VerifyReport, VerifyingReader,
};
