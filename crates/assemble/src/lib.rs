//! Assembly: a resolved configuration becomes an ordered list of [`Unit`]s
//! (kernel, init images, volumes, onboot/onshutdown/service bundles, files),
//! each a deterministic stream of filesystem entries pushed into an
//! [`EntrySink`], with content streamed from a [`BlobSource`] (the image
//! cache implements it).
//!
//! [`write_root_initrd`] narrows the kernel and init units to the small
//! initrd of an image whose root is on a device.
//!
//! Nothing is unpacked to the host. Writers of output formats live in
//! `slipway-formats`; this crate writes none.

pub mod blobs;
pub mod bundle_json;
pub mod entry;
pub mod error;
pub mod flatten;
pub mod layer;
pub mod path;
pub mod root_initrd;
pub mod units;

pub use blobs::{Blob, BlobSource};
pub use entry::{Collect, DEFAULT_MTIME, EntrySink, Header, Kind, PAX_LOCATION, PAX_SOURCE};
pub use error::{AssembleError, EntryProblem};
pub use flatten::{Filters, Plan};
pub use layer::{DEFAULT_MAX_LAYER_SIZE, StoreLayers, TarSource};
pub use root_initrd::{RootInitrd, missing_root_modules, root_initrd_of, write_root_initrd};
pub use units::{FORMAT_VERSION, ImageInput, Inputs, KernelPart, Unit, plan_units};
