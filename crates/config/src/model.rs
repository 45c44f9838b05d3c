//! The configuration model: LinuxKit's YAML, every key, with presence.
//!
//! Every field is `Option<Sp<T>>`: `None` when the key is absent, `Some` when
//! it is written, even as `[]` or `{}` (a present empty list overrides an image
//! label; an absent one does not). Each value keeps the place it was written.

use std::fmt;

use slipway_reference::Reference;

use crate::decode::{Ctx, Fields, FromNode, Id, PKG_PREFIX, PackageRef, StringMap};
use crate::print::{Out, ToOut};
use crate::schema::Schema;
use crate::source::{Sp, Span};
use crate::yaml::{Node, Value};

/// Declares a mapping type of the model from its keys: the struct, how it is
/// read, and how it is printed all come from this one list.
macro_rules! model {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $key:literal => $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: Option<Sp<$ty>>, )*
        }

        impl $name {
            /// The keys of this mapping, in the order they are printed.
            pub const KEYS: &'static [&'static str] = &[$($key),*];

            pub(crate) fn take_fields(fields: &mut Fields<'_>, cx: &mut Ctx<'_>) -> Self {
                Self { $( $field: fields.take::<$ty>($key, cx), )* }
            }

            pub(crate) fn out_fields(&self, out: &mut Vec<(String, Out)>) {
                $(
                    if let Some(v) = &self.$field {
                        out.push(($key.to_string(), v.to_out()));
                    }
                )*
            }
        }

        impl $name {
            /// Each key's schema, in order.
            pub(crate) fn schema_properties(
                defs: &mut crate::schema::Defs,
            ) -> Vec<(&'static str, serde_json::Value)> {
                vec![$( ($key, <$ty as crate::schema::Schema>::schema(defs)), )*]
            }
        }

        impl crate::schema::Schema for $name {
            fn schema(defs: &mut crate::schema::Defs) -> serde_json::Value {
                defs.object(stringify!($name), Self::schema_properties, &[])
            }
        }

        impl FromNode for $name {
            const EXPECTED: &'static str = "a mapping";
            fn from_node(node: &Node, path: &str, cx: &mut Ctx<'_>) -> Option<Self> {
                let mut fields = Fields::open(node, path, cx)?;
                let value = Self::take_fields(&mut fields, cx);
                fields.finish(cx);
                Some(value)
            }
        }

        impl ToOut for $name {
            fn to_out(&self) -> Out {
                let mut out = Vec::new();
                self.out_fields(&mut out);
                Out::Map(out)
            }
        }

        #[cfg(test)]
        impl crate::arbitrary::Gen for $name {
            fn generate(g: &mut crate::arbitrary::Generator<'_>) -> Self {
                Self { $( $field: g.maybe(), )* }
            }
        }
    };
}

pub type Strings = Vec<Sp<String>>;

/// An image named in the configuration: a registry reference or a package directory.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ImageName {
    Reference(Reference),
    /// `@pkg:PATH`; the package issue's resolver turns it into a tag.
    Package(PackageRef),
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageName::Reference(r) => r.fmt(f),
            ImageName::Package(p) => write!(f, "{PKG_PREFIX}{}", p.dir.display()),
        }
    }
}

impl FromNode for ImageName {
    const EXPECTED: &'static str = "an image reference";
    fn from_node(node: &Node, path: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        let Value::Str(text) = &node.value else {
            let s = String::from_node(node, path, cx)?;
            return Some(ImageName::Package(PackageRef {
                raw: s.clone(),
                dir: s.into(),
            }));
        };
        if text.starts_with(PKG_PREFIX) {
            return cx.package(text, node.span).map(ImageName::Package);
        }
        match Reference::parse(text) {
            Ok(r) => Some(ImageName::Reference(r)),
            Err(err) => {
                cx.push(
                    crate::diag::Diagnostic::error(
                        "image-reference",
                        node.span,
                        format!("{path}: {err}"),
                    )
                    .with_label("not a valid image reference"),
                );
                None
            }
        }
    }
}

impl ToOut for ImageName {
    fn to_out(&self) -> Out {
        Out::Str(self.to_string())
    }
}

model! {
    /// `kernel:`.
    pub struct Kernel {
        "image" => image: ImageName,
        "cmdline" => cmdline: String,
        "binary" => binary: String,
        "tar" => tar: String,
        "ucode" => ucode: String,
    }
}

model! {
    /// `trust:`, accepted for compatibility and ignored, as LinuxKit does.
    pub struct Trust {
        "image" => image: Strings,
        "org" => org: Strings,
    }
}

model! {
    /// An entry of `files:`.
    pub struct File {
        "path" => path: String,
        "directory" => directory: bool,
        "symlink" => symlink: String,
        "contents" => contents: String,
        "source" => source: String,
        "metadata" => metadata: String,
        "optional" => optional: bool,
        "mode" => mode: String,
        "uid" => uid: Id,
        "gid" => gid: Id,
    }
}

model! {
    /// An entry of `volumes:`.
    pub struct Volume {
        "name" => name: String,
        "image" => image: ImageName,
        "readonly" => readonly: bool,
        "format" => format: String,
        "platforms" => platforms: Strings,
    }
}

model! {
    /// A uid or gid mapping. LinuxKit silently drops `hostID` and `containerID`
    /// (its YAML decoder expects the lower-case Go names); slipway honours them.
    pub struct IdMapping {
        "hostID" => host_id: u32,
        "containerID" => container_id: u32,
        "size" => size: u32,
    }
}

model! {
    /// An entry of `mounts:` or `runtime.mounts:` (LinuxKit's schema spells the
    /// mapping keys in lower case here).
    pub struct Mount {
        "destination" => destination: String,
        "type" => kind: String,
        "source" => source: String,
        "options" => options: Strings,
        "uidmappings" => uid_mappings: Vec<IdMapping>,
        "gidmappings" => gid_mappings: Vec<IdMapping>,
    }
}

model! {
    /// An entry of `devices:`.
    pub struct Device {
        "path" => path: String,
        "type" => kind: String,
        "major" => major: i64,
        "minor" => minor: i64,
        "mode" => mode: String,
    }
}

model! {
    /// `resources.devices[]`: a device cgroup rule.
    pub struct DeviceCgroup {
        "allow" => allow: bool,
        "type" => kind: String,
        "major" => major: i64,
        "minor" => minor: i64,
        "access" => access: String,
    }
}

model! {
    pub struct Memory {
        "limit" => limit: i64,
        "reservation" => reservation: i64,
        "swap" => swap: i64,
        "kernel" => kernel: i64,
        "kernelTCP" => kernel_tcp: i64,
        "swappiness" => swappiness: u64,
        "disableOOMKiller" => disable_oom_killer: bool,
    }
}

model! {
    pub struct Cpu {
        "shares" => shares: u64,
        "quota" => quota: i64,
        "period" => period: u64,
        "realtimeRuntime" => realtime_runtime: i64,
        "realtimePeriod" => realtime_period: u64,
        "cpus" => cpus: String,
        "mems" => mems: String,
    }
}

model! {
    pub struct Pids {
        "limit" => limit: i64,
    }
}

model! {
    pub struct WeightDevice {
        "major" => major: i64,
        "minor" => minor: i64,
        "weight" => weight: u16,
        "leafWeight" => leaf_weight: u16,
    }
}

model! {
    pub struct ThrottleDevice {
        "major" => major: i64,
        "minor" => minor: i64,
        "rate" => rate: u64,
    }
}

model! {
    pub struct BlockIo {
        "weight" => weight: u16,
        "leafWeight" => leaf_weight: u16,
        "weightDevice" => weight_device: Vec<WeightDevice>,
        "throttleReadBpsDevice" => throttle_read_bps_device: Vec<ThrottleDevice>,
        "throttleWriteBpsDevice" => throttle_write_bps_device: Vec<ThrottleDevice>,
        "throttleReadIOPSDevice" => throttle_read_iops_device: Vec<ThrottleDevice>,
        "throttleWriteIOPSDevice" => throttle_write_iops_device: Vec<ThrottleDevice>,
    }
}

model! {
    /// `hugepageLimits[]`. `pageSize` is the OCI string form, such as `2MB`.
    pub struct HugepageLimit {
        "pageSize" => page_size: String,
        "limit" => limit: u64,
    }
}

model! {
    pub struct InterfacePriority {
        "name" => name: String,
        "priority" => priority: u32,
    }
}

model! {
    pub struct Network {
        "classID" => class_id: u32,
        "priorities" => priorities: Vec<InterfacePriority>,
    }
}

model! {
    /// `resources:`, the OCI `LinuxResources` subset LinuxKit's schema allows.
    pub struct Resources {
        "devices" => devices: Vec<DeviceCgroup>,
        "memory" => memory: Memory,
        "cpu" => cpu: Cpu,
        "pids" => pids: Pids,
        "blockio" => blockio: BlockIo,
        "hugepageLimits" => hugepage_limits: Vec<HugepageLimit>,
        "network" => network: Network,
    }
}

model! {
    /// `runtime.interfaces[]`.
    pub struct Interface {
        "name" => name: String,
        "add" => add: String,
        "peer" => peer: String,
        "createInRoot" => create_in_root: bool,
    }
}

model! {
    /// `runtime.bindNS`: where to bind-mount the container's namespaces.
    pub struct BindNs {
        "cgroup" => cgroup: String,
        "ipc" => ipc: String,
        "mnt" => mnt: String,
        "net" => net: String,
        "pid" => pid: String,
        "user" => user: String,
        "uts" => uts: String,
    }
}

model! {
    /// `runtime:`, what the guest's init does around the OCI runtime.
    pub struct Runtime {
        "cgroups" => cgroups: Strings,
        "mounts" => mounts: Vec<Mount>,
        "mkdir" => mkdir: Strings,
        "interfaces" => interfaces: Vec<Interface>,
        "bindNS" => bind_ns: BindNs,
        "namespace" => namespace: String,
    }
}

model! {
    /// Everything an image entry may say besides `name` and `image`: also what
    /// an `org.mobyproject.config` label may say.
    pub struct ImageSpec {
        "capabilities" => capabilities: Strings,
        "capabilities.add" => capabilities_add: Strings,
        "ambient" => ambient: Strings,
        "mounts" => mounts: Vec<Mount>,
        "binds" => binds: Strings,
        "binds.add" => binds_add: Strings,
        "devices" => devices: Vec<Device>,
        "tmpfs" => tmpfs: Strings,
        "command" => command: Strings,
        "env" => env: Strings,
        "cwd" => cwd: String,
        "net" => net: String,
        "pid" => pid: String,
        "ipc" => ipc: String,
        "uts" => uts: String,
        "userns" => userns: String,
        "readonly" => readonly: bool,
        "maskedPaths" => masked_paths: Strings,
        "readonlyPaths" => readonly_paths: Strings,
        "uid" => uid: Id,
        "gid" => gid: Id,
        "additionalGids" => additional_gids: Vec<Sp<Id>>,
        "noNewPrivileges" => no_new_privileges: bool,
        "hostname" => hostname: String,
        "oomScoreAdj" => oom_score_adj: i64,
        "rootfsPropagation" => rootfs_propagation: String,
        "cgroupsPath" => cgroups_path: String,
        "resources" => resources: Resources,
        "sysctl" => sysctl: StringMap,
        "rlimits" => rlimits: Strings,
        "uidMappings" => uid_mappings: Vec<IdMapping>,
        "gidMappings" => gid_mappings: Vec<IdMapping>,
        "annotations" => annotations: StringMap,
        "runtime" => runtime: Runtime,
    }
}

/// An entry of `onboot:`, `onshutdown:` or `services:`.
#[derive(Clone, Debug)]
pub struct Image {
    /// The whole entry, for errors about it as a whole.
    pub span: Span,
    pub name: Sp<String>,
    pub image: Sp<ImageName>,
    pub spec: ImageSpec,
}

/// Equal when they say the same, wherever they say it.
impl BindNs {
    /// Each namespace with its path, in the struct's order.
    pub fn namespaces(&self) -> [(&'static str, &Option<Sp<String>>); 7] {
        [
            ("cgroup", &self.cgroup),
            ("ipc", &self.ipc),
            ("mnt", &self.mnt),
            ("net", &self.net),
            ("pid", &self.pid),
            ("user", &self.user),
            ("uts", &self.uts),
        ]
    }
}

impl PartialEq for Image {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.image == other.image && self.spec == other.spec
    }
}

const STAND_IN_IMAGE: &str = "invalid.invalid/missing";

impl Image {
    pub const KEYS: &'static [&'static str] = &["name", "image"];
}

impl FromNode for Image {
    const EXPECTED: &'static str = "an image entry";
    fn from_node(node: &Node, path: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        let mut fields = Fields::open(node, path, cx)?;
        let name = fields.take::<String>("name", cx);
        let image = fields.take::<ImageName>("image", cx);
        fields.require("name", name.is_some(), cx);
        fields.require("image", image.is_some(), cx);
        let spec = ImageSpec::take_fields(&mut fields, cx);
        fields.finish(cx);
        // An entry whose image is missing or invalid (already reported) is
        // kept with a stand-in, so the rest of it is still checked; a config
        // with errors is never handed on, so the stand-in goes nowhere.
        let image = image.or_else(|| {
            Reference::parse(STAND_IN_IMAGE)
                .ok()
                .map(|r| Sp::new(ImageName::Reference(r), node.span))
        });
        Some(Image {
            span: node.span,
            name: name?,
            image: image?,
            spec,
        })
    }
}

impl Schema for Image {
    fn schema(defs: &mut crate::schema::Defs) -> serde_json::Value {
        defs.object(
            "Image",
            |defs| {
                let mut props = vec![
                    ("name", String::schema(defs)),
                    ("image", ImageName::schema(defs)),
                ];
                props.extend(ImageSpec::schema_properties(defs));
                props
            },
            Self::KEYS,
        )
    }
}

impl ToOut for Image {
    fn to_out(&self) -> Out {
        let mut out = vec![
            ("name".to_string(), self.name.to_out()),
            ("image".to_string(), self.image.to_out()),
        ];
        self.spec.out_fields(&mut out);
        Out::Map(out)
    }
}

model! {
    /// A whole configuration file, or several merged.
    pub struct Config {
        "kernel" => kernel: Kernel,
        "init" => init: Vec<Sp<ImageName>>,
        "onboot" => onboot: Vec<Image>,
        "onshutdown" => onshutdown: Vec<Image>,
        "services" => services: Vec<Image>,
        "files" => files: Vec<Sp<File>>,
        "volumes" => volumes: Vec<Sp<Volume>>,
        "trust" => trust: Trust,
    }
}

/// Which list of containers an image entry belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    Onboot,
    Onshutdown,
    Services,
}

impl Section {
    pub const ALL: [Section; 3] = [Section::Onboot, Section::Onshutdown, Section::Services];

    pub fn key(self) -> &'static str {
        match self {
            Section::Onboot => "onboot",
            Section::Onshutdown => "onshutdown",
            Section::Services => "services",
        }
    }
}

impl Config {
    pub fn section(&self, section: Section) -> &[Image] {
        let list = match section {
            Section::Onboot => &self.onboot,
            Section::Onshutdown => &self.onshutdown,
            Section::Services => &self.services,
        };
        list.as_ref().map_or(&[], |l| l.value.as_slice())
    }

    /// Every container entry with its section and index, in LinuxKit's order.
    pub fn containers(&self) -> impl Iterator<Item = (Section, usize, &Image)> {
        Section::ALL.into_iter().flat_map(move |s| {
            self.section(s)
                .iter()
                .enumerate()
                .map(move |(i, img)| (s, i, img))
        })
    }

    pub fn files(&self) -> &[Sp<File>] {
        self.files.as_ref().map_or(&[], |l| l.value.as_slice())
    }

    pub fn volumes(&self) -> &[Sp<Volume>] {
        self.volumes.as_ref().map_or(&[], |l| l.value.as_slice())
    }

    pub fn init(&self) -> &[Sp<ImageName>] {
        self.init.as_ref().map_or(&[], |l| l.value.as_slice())
    }
}
