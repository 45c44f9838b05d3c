//! Property tests of the annotation parsers through the public API.

use proptest::prelude::*;
use slipway_contract::annotations::{After, Ready, SlipwayAnnotations};

proptest! {
    #[test]
    fn parsers_never_panic(key in "org\\.slipway\\.\\PC{0,12}", value in "\\PC{0,40}") {
        let _ = value.parse::<Ready>();
        let _ = value.parse::<After>();
        let _ = SlipwayAnnotations::from_annotations([(key.as_str(), value.as_str())]);
    }

    #[test]
    fn ready_round_trips(value in prop_oneof!["file:\\PC{0,30}", "tcp:[0-9]{0,6}"]) {
        if let Ok(ready) = value.parse::<Ready>() {
            prop_assert_eq!(ready.to_string().parse::<Ready>().unwrap(), ready);
        }
    }

    #[test]
    fn after_round_trips(value in "[a-z ,.\\-]{0,30}") {
        if let Ok(after) = value.parse::<After>() {
            prop_assert_eq!(after.to_string().parse::<After>().unwrap(), after);
        }
    }

    #[test]
    fn accepted_port_is_in_range(port in 1u16..) {
        prop_assert_eq!(format!("tcp:{port}").parse::<Ready>().unwrap(), Ready::Tcp(port));
    }
}
