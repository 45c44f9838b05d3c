//! Choosing the packages to install: the listed ones and, transitively,
//! their `Depends` and `Pre-Depends`.
//!
//! Rules (documented in docs/packages.md):
//! * of `a | b`, the first alternative that exists (or is already chosen) wins;
//!   a virtual name goes to an already chosen provider, else the first
//!   provider by name;
//! * the candidate version of a name is the highest one from suites that are
//!   not `NotAutomatic` (backports); a `NotAutomatic` suite is used for a name
//!   written `name/suite`, or when nothing else has a version satisfying the
//!   dependency;
//! * dependencies on `Essential: yes` packages and on the tools only
//!   maintainer scripts use ([`SCRIPT_ONLY`]) are not followed: no scripts run,
//!   and an image wants only what it lists. List them to get them;
//! * a dependency on an `exclude`d name counts as satisfied;
//! * a version pinned by the lock is taken when the index still has it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use super::DebError;
use super::repo::{DebPackage, Repository};
use super::version;

/// Packages whose only use is in maintainer scripts, which slipway never runs.
pub const SCRIPT_ONLY: &[&str] = &[
    "debconf",
    "debconf-2.0",
    "cdebconf",
    "init-system-helpers",
    "adduser",
    "ucf",
    "install-info",
    "lsb-base",
    "sysvinit-utils",
    "dpkg",
];

/// One alternative of a dependency: `name [(op version)]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alternative {
    pub name: String,
    pub constraint: Option<(String, String)>,
}

/// `a (>= 1) | b, c:any` -> [[a >= 1, b], [c]].
pub fn parse_depends(text: &str) -> Vec<Vec<Alternative>> {
    text.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|group| {
            group
                .split('|')
                .filter_map(|alt| {
                    let alt = alt.trim();
                    // Drop `[arch]` and `<profile>` restrictions.
                    let alt = alt.split(['[', '<']).next().unwrap_or("").trim();
                    let (name, rest) = match alt.find('(') {
                        Some(i) => (alt[..i].trim(), Some(&alt[i + 1..])),
                        None => (alt, None),
                    };
                    let name = name.split(':').next().unwrap_or("").trim();
                    if name.is_empty() {
                        return None;
                    }
                    let constraint = rest.and_then(|r| {
                        let r = r.trim_end_matches(')').trim();
                        let op_len = r.find(|c: char| !"<>=".contains(c)).unwrap_or(r.len());
                        let (op, v) = r.split_at(op_len);
                        (!op.is_empty()).then(|| (op.to_string(), v.trim().to_string()))
                    });
                    Some(Alternative {
                        name: name.to_string(),
                        constraint,
                    })
                })
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect()
}

/// A lock's pin for a name.
#[derive(Clone, Debug)]
pub struct Pin {
    pub version: String,
    pub sha256: String,
}

#[derive(Debug, Default)]
pub struct Resolution {
    /// Sorted by name.
    pub packages: Vec<Arc<DebPackage>>,
    /// Pins that could not be honoured, as messages.
    pub repinned: Vec<String>,
}

fn satisfies(p: &DebPackage, alt: &Alternative) -> bool {
    alt.constraint
        .as_ref()
        .is_none_or(|(op, v)| version::satisfies(&p.version, op, v))
}

struct Resolver<'a> {
    repo: &'a Repository,
    exclude: BTreeSet<String>,
    pins: &'a BTreeMap<String, Pin>,
    chosen: BTreeMap<String, Arc<DebPackage>>,
    repinned: Vec<String>,
}

impl Resolver<'_> {
    /// The version of `name` to install, if any satisfies `alt`.
    fn candidate(
        &mut self,
        name: &str,
        alt: Option<&Alternative>,
        suite: Option<&str>,
    ) -> Option<Arc<DebPackage>> {
        let versions = self.repo.packages.get(name)?;
        let ok = |p: &&Arc<DebPackage>| alt.is_none_or(|a| satisfies(p, a));
        if let Some(pin) = self.pins.get(name)
            && let Some(p) = versions
                .iter()
                .filter(ok)
                .find(|p| p.version == pin.version && p.sha256 == pin.sha256)
        {
            return Some(p.clone());
        }
        let in_suite = |p: &&Arc<DebPackage>| match suite {
            Some(s) => self.repo.sources[p.source].suite == s,
            None => !self.repo.not_automatic[p.source],
        };
        let best = |it: &mut dyn Iterator<Item = &Arc<DebPackage>>| {
            it.max_by(|a, b| version::compare(&a.version, &b.version))
                .cloned()
        };
        let chosen = best(&mut versions.iter().filter(ok).filter(in_suite)).or_else(|| {
            if suite.is_none() {
                best(&mut versions.iter().filter(ok))
            } else {
                None
            }
        });
        if let (Some(p), Some(pin)) = (&chosen, self.pins.get(name)) {
            self.repinned.push(format!(
                "{name} {} (pinned in debs.lock) is no longer served; using {}",
                pin.version, p.version
            ));
        }
        chosen
    }

    fn choose(&mut self, p: Arc<DebPackage>, queue: &mut VecDeque<Arc<DebPackage>>) {
        if !self.chosen.contains_key(&p.name) {
            self.chosen.insert(p.name.clone(), p.clone());
            queue.push_back(p);
        }
    }

    fn satisfied(&self, alt: &Alternative) -> bool {
        if self.exclude.contains(&alt.name) {
            return true;
        }
        if let Some(p) = self.chosen.get(&alt.name) {
            return satisfies(p, alt);
        }
        alt.constraint.is_none()
            && self.repo.provides.get(&alt.name).is_some_and(|ps| {
                ps.iter().any(|p| {
                    self.chosen
                        .get(&p.name)
                        .is_some_and(|c| c.version == p.version)
                })
            })
    }

    fn skipped(&self, name: &str) -> bool {
        SCRIPT_ONLY.contains(&name)
            || self
                .repo
                .packages
                .get(name)
                .is_some_and(|v| v.iter().any(|p| p.essential))
    }
}

/// Resolves `requested` (`name` or `name/suite`) and their dependencies.
/// `installed` names count as present (earlier steps).
pub fn resolve(
    repo: &Repository,
    requested: &[String],
    exclude: &[String],
    installed: &BTreeSet<String>,
    pins: &BTreeMap<String, Pin>,
) -> Result<Resolution, DebError> {
    let mut r = Resolver {
        repo,
        exclude: exclude
            .iter()
            .cloned()
            .chain(installed.iter().cloned())
            .collect(),
        pins,
        chosen: BTreeMap::new(),
        repinned: Vec::new(),
    };
    let mut queue = VecDeque::new();
    let suites: Vec<String> = repo.sources.iter().map(|s| s.label()).collect();
    for request in requested {
        let (name, suite) = match request.split_once('/') {
            Some((n, s)) => (n, Some(s)),
            None => (request.as_str(), None),
        };
        let p = match r.candidate(name, None, suite) {
            Some(p) => p,
            None => {
                let provider = repo.provides.get(name).and_then(|ps| {
                    let mut ps: Vec<_> = ps.iter().collect();
                    ps.sort_by(|a, b| a.name.cmp(&b.name));
                    ps.first().map(|p| (*p).clone())
                });
                provider.ok_or_else(|| DebError::NoSuchPackage {
                    request: request.clone(),
                    suites: suites.join(", "),
                })?
            }
        };
        r.choose(p, &mut queue);
    }
    while let Some(p) = queue.pop_front() {
        let groups = parse_depends(&p.pre_depends)
            .into_iter()
            .chain(parse_depends(&p.depends));
        'group: for group in groups {
            if group.iter().any(|a| r.satisfied(a)) {
                continue;
            }
            if group.iter().any(|a| r.skipped(&a.name)) {
                continue;
            }
            for alt in &group {
                if let Some(c) = r.candidate(&alt.name, Some(alt), None) {
                    r.choose(c, &mut queue);
                    continue 'group;
                }
                if alt.constraint.is_none()
                    && let Some(providers) = repo.provides.get(&alt.name)
                {
                    let mut ps: Vec<_> = providers.iter().collect();
                    ps.sort_by(|a, b| {
                        a.name
                            .cmp(&b.name)
                            .then_with(|| version::compare(&b.version, &a.version))
                    });
                    if let Some(first) = ps.first() {
                        r.choose((*first).clone(), &mut queue);
                        continue 'group;
                    }
                }
            }
            let wanted: Vec<String> = group
                .iter()
                .map(|a| match &a.constraint {
                    Some((op, v)) => format!("{} ({op} {v})", a.name),
                    None => a.name.clone(),
                })
                .collect();
            return Err(DebError::Resolve {
                message: format!(
                    "{} {} depends on {}, which {} does not have",
                    p.name,
                    p.version,
                    wanted.join(" | "),
                    suites.join(", ")
                ),
            });
        }
    }
    Ok(Resolution {
        packages: r.chosen.into_values().collect(),
        repinned: r.repinned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_syntax() {
        let d = parse_depends("libc6 (>= 2.34), libseccomp2 (>= 2.5.0) | foo:any, bar [amd64]");
        assert_eq!(d.len(), 3);
        assert_eq!(d[0][0].constraint, Some((">=".into(), "2.34".into())));
        assert_eq!(d[1][1].name, "foo");
        assert_eq!(d[2][0].name, "bar");
    }
}
