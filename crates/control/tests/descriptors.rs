//! The shipped descriptor sets describe what they claim.

use prost::Message as _;
use prost_types::FileDescriptorSet;

fn services(set: &[u8]) -> Vec<String> {
    let set = FileDescriptorSet::decode(set).expect("a FileDescriptorSet");
    let mut out: Vec<String> = set
        .file
        .iter()
        .flat_map(|f| {
            f.service
                .iter()
                .map(move |s| format!("{}.{}", f.package(), s.name()))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn containerd_set_lists_every_service_it_describes() {
    let described = services(slipway_control::CONTAINERD_DESCRIPTORS);
    assert_eq!(described, slipway_control::CONTAINERD_SERVICES);
    for wanted in [
        "containerd.services.tasks.v1.Tasks",
        "containerd.services.containers.v1.Containers",
        "containerd.services.version.v1.Version",
    ] {
        assert!(described.iter().any(|s| s == wanted), "{wanted} missing");
    }
    assert!(!described.iter().any(|s| s.contains("ttrpc")));
}

#[test]
fn containerd_files_keep_containerd_names() {
    let set = FileDescriptorSet::decode(slipway_control::CONTAINERD_DESCRIPTORS).unwrap();
    let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
    assert!(names.contains(&"github.com/containerd/containerd/api/services/tasks/v1/tasks.proto"));
    assert!(names.contains(&"google/protobuf/empty.proto"));
}

#[test]
fn slipway_set_has_both_components() {
    assert_eq!(
        services(slipway_control::DESCRIPTORS),
        [
            "slipway.machine.v1.Info",
            "slipway.services.v1.Power",
            "slipway.services.v1.Services"
        ]
    );
}
