//! Printing a configuration and parsing the output gives the same
//! configuration, presence included, for any configuration.

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

use crate::arbitrary::{Gen, Generator};
use crate::model::Config;
use crate::print::{ToOut, to_yaml};

fn round_trip(config: &Config) -> Result<(), TestCaseError> {
    let text = to_yaml(&config.to_out());
    let parsed = crate::parse_unchecked("printed.yml", &text).map_err(|e| {
        TestCaseError::fail(format!(
            "printed YAML does not parse:\n{text}\n{}",
            e.diagnostics.render_plain(&e.sources)
        ))
    })?;
    if &parsed != config {
        // Show where the two differ as YAML, which is far easier to read.
        let again = to_yaml(&parsed.to_out());
        let at = text
            .lines()
            .zip(again.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| text.lines().count().min(again.lines().count()));
        let _ = std::fs::write(
            std::env::temp_dir().join("slipway-roundtrip-printed.yml"),
            &text,
        );
        let _ = std::fs::write(
            std::env::temp_dir().join("slipway-roundtrip-reparsed.yml"),
            &again,
        );
        let window = |t: &str| {
            t.lines()
                .skip(at.saturating_sub(3))
                .take(8)
                .collect::<Vec<_>>()
                .join("\n")
        };
        return Err(TestCaseError::fail(format!(
            "round trip changed the config near printed line {}:\n--- printed\n{}\n--- reparsed and printed\n{}",
            at + 1,
            window(&text),
            window(&again)
        )));
    }
    Ok(())
}

#[test]
fn print_then_parse_is_identity() {
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 256,
        ..RunnerConfig::default()
    });
    let strategy =
        any::<u64>().prop_perturb(|_, mut rng| Config::generate(&mut Generator::new(&mut rng)));
    // Report the reason only: the generated value is far too large to print.
    if let Err(proptest::test_runner::TestError::Fail(reason, _)) =
        runner.run(&strategy, |config| round_trip(&config))
    {
        panic!("{reason}");
    }
}

#[test]
fn empty_config_round_trips() {
    round_trip(&Config::default()).unwrap();
}
