//! The whole configuration front end on arbitrary bytes: parse, decode,
//! merge, validate, print. It must never panic, and whatever loads must
//! print to YAML that loads to the same configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_config::print::{ToOut, to_yaml};
use slipway_config::{Input, load, load_str};

fuzz_target!(|data: &[u8]| {
    let input = Input {
        name: "fuzz.yml".into(),
        base_dir: "/fuzz".into(),
        bytes: data.to_vec(),
    };
    if let Ok(loaded) = load(vec![input]) {
        let printed = to_yaml(&loaded.config.to_out());
        match load_str("printed.yml", &printed) {
            Ok(again) => assert_eq!(again.config, loaded.config, "{printed}"),
            Err(e) => panic!("printed config does not load:\n{printed}\n{}", e.diagnostics.render_plain(&e.sources)),
        }
    }
});
