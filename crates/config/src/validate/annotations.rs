//! Checking slipway's `org.slipway.*` annotations, and that services do
//! not wait for each other in a circle.

use std::collections::{BTreeMap, BTreeSet};

use slipway_contract::annotations::{self as ann, KeyStatus};

use crate::decode::StringMap;
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{Config, Image, Section};
use crate::source::Span;

use super::Context;

pub(super) fn check_annotations(
    annotations: &StringMap,
    image: &Image,
    section: Section,
    path: &str,
    cx: &Context,
    diags: &mut Diagnostics,
) {
    for (k, v) in annotations.iter() {
        let key = k.value.as_str();
        match ann::check_key(key) {
            KeyStatus::Foreign => continue,
            KeyStatus::Unknown { suggestion } => {
                let mut d = Diagnostic::error(
                    "annotation",
                    k.span,
                    format!("{path}.annotations: unknown slipway annotation `{key}`"),
                );
                d = match suggestion {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help(format!("known: {}", ann::known_keys().join(", "))),
                };
                diags.push(d);
                continue;
            }
            KeyStatus::Known => {}
        }
        let result = match key {
            ann::RESTART => v.value.parse::<ann::Restart>().map(|_| ()),
            ann::READY => v.value.parse::<ann::Ready>().map(|_| ()),
            ann::CONSOLE => v.value.parse::<ann::Console>().map(|_| ()),
            ann::AFTER => match v.value.parse::<ann::After>() {
                Ok(after) => {
                    for name in after.names() {
                        if name == &image.name.value {
                            diags.push(Diagnostic::error(
                                "annotation",
                                v.span,
                                format!(
                                    "{path}.annotations.{key}: `{name}` cannot wait for itself"
                                ),
                            ));
                        } else if cx.complete && !cx.services.contains(name) {
                            let names: Vec<&str> = cx.services.iter().map(String::as_str).collect();
                            let mut d = Diagnostic::error(
                                "annotation",
                                v.span,
                                format!("{path}.annotations.{key}: no service is named `{name}`"),
                            );
                            if let Some(s) = crate::decode::closest(name, &names) {
                                d = d.with_help(format!("did you mean `{s}`?"));
                            }
                            diags.push(d);
                        }
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            },
            _ => Ok(()),
        };
        if let Err(err) = result {
            diags.push(Diagnostic::error(
                "annotation",
                v.span,
                format!("{path}.annotations: {err}"),
            ));
            continue;
        }
        if section != Section::Services && key != ann::CONSOLE {
            diags.push(Diagnostic::warning(
                "annotation",
                k.span,
                format!("{path}.annotations: `{key}` applies to services; {} containers run once, in order, and ignore it", section.key()),
            ));
        }
    }
}

/// `org.slipway.after` must not go round in a circle.
pub(super) fn check_after_cycles(config: &Config, diags: &mut Diagnostics) {
    let mut edges: BTreeMap<&str, (Vec<String>, Span)> = BTreeMap::new();
    for image in config.section(Section::Services) {
        let Some(a) = image
            .spec
            .annotations
            .as_ref()
            .and_then(|a| a.value.get(ann::AFTER))
        else {
            continue;
        };
        if let Ok(after) = a.value.parse::<ann::After>() {
            edges.insert(&image.name.value, (after.names().to_vec(), a.span));
        }
    }
    let mut reported: BTreeSet<String> = BTreeSet::new();
    for start in edges.keys() {
        // Depth-first search for a path back to `start`.
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start, vec![start])];
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        while let Some((node, trail)) = stack.pop() {
            let Some((next, _)) = edges.get(node) else {
                continue;
            };
            for n in next {
                if n == node {
                    // Waiting for itself is reported where the annotation is read.
                    continue;
                }
                if n == start {
                    let mut cycle: Vec<&str> = trail.clone();
                    cycle.push(start);
                    let mut members: Vec<&str> = cycle.clone();
                    members.sort_unstable();
                    members.dedup();
                    if reported.insert(members.join(",")) {
                        let span = edges.get(*start).map(|(_, s)| *s).unwrap_or_default();
                        diags.push(Diagnostic::error(
                            "after-cycle",
                            span,
                            format!(
                                "`org.slipway.after` goes round in a circle: {}",
                                cycle.join(" -> ")
                            ),
                        ));
                    }
                } else if seen.insert(n) {
                    let mut t = trail.clone();
                    t.push(n);
                    stack.push((n, t));
                }
            }
        }
    }
}
