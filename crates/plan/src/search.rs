//! Choosing the target and the shortest path of packages to it.

use std::collections::{BTreeSet, VecDeque};

use fieldkit_trust::{Finding, VerifiedPackage};

use crate::rules::{self, ids::PATH};
use crate::{Inputs, RuleGroup, State, Step, StepPayload};

/// The longest chain of packages the planner will propose; real release trains need one or
/// two stepping stones, and a bound keeps the search trivially cheap.
const MAX_STEPS: usize = 4;

pub(crate) enum Outcome {
    UpToDate {
        newest: String,
    },
    Refused {
        target: Option<String>,
        target_findings: Vec<RuleGroup>,
        summary: String,
    },
    Path {
        target: String,
        steps: Vec<Step>,
        step_findings: Vec<RuleGroup>,
    },
}

/// Whether `pkg` moves some component forward and none backward.
fn advances(pkg: &VerifiedPackage, state: &State) -> bool {
    let mut forward = false;
    for p in &pkg.manifest.payloads {
        match state.get(&p.component) {
            Some(have) if p.version < *have => return false,
            Some(have) if p.version == *have => {}
            _ => forward = true,
        }
    }
    forward
}

fn all_pass(f: &[Finding]) -> bool {
    f.iter().all(|f| f.passed)
}

pub(crate) fn solve(inputs: &Inputs<'_>, start: &State) -> Outcome {
    let images: Vec<(String, u32)> = inputs
        .profile
        .components
        .iter()
        .map(|c| (c.name.get_ref().clone(), *c.image.get_ref()))
        .collect();
    let pkgs = inputs.packages;
    let statics: Vec<Vec<Finding>> = pkgs
        .iter()
        .map(|p| rules::package_rules(inputs, p))
        .collect();
    let usable = |i: usize| all_pass(&statics[i]);

    let candidates: Vec<usize> = if inputs.named.is_empty() {
        (0..pkgs.len())
            .filter(|&i| pkgs[i].manifest.product == inputs.profile.product())
            .collect()
    } else {
        inputs.named.to_vec()
    };
    let device = format!("{} {}", inputs.identity.model, inputs.identity.serial);
    if candidates.is_empty() {
        return Outcome::Refused {
            target: None,
            target_findings: vec![RuleGroup {
                scope: "device".into(),
                findings: vec![Finding::fail(
                    PATH,
                    "no package for this device",
                    format!("a package for {}", inputs.profile.product()),
                    "No update package for this device model is available: import the manufacturer's packages first.",
                )],
            }],
            summary: format!("No update package for {device} is available."),
        };
    }
    let newest = |list: &mut dyn Iterator<Item = usize>| {
        list.max_by(|&a, &b| pkgs[a].manifest.version.cmp(&pkgs[b].manifest.version))
    };
    let target = if inputs.named.is_empty() {
        let advancing: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| advances(&pkgs[i], start))
            .collect();
        if advancing.is_empty() {
            return Outcome::UpToDate {
                newest: format!(
                    "{device} already runs the newest release available; nothing to do."
                ),
            };
        }
        newest(&mut advancing.iter().copied().filter(|&i| usable(i)))
            .or_else(|| newest(&mut advancing.iter().copied()))
            .expect("advancing is not empty")
    } else {
        newest(&mut candidates.iter().copied()).expect("named is not empty")
    };
    let target_id = pkgs[target].manifest.id();
    let target_state = rules::state_rules(&pkgs[target], start, &images);
    if !usable(target)
        || (inputs.named.contains(&target)
            && !advances(&pkgs[target], start)
            && all_pass(&target_state))
    {
        let mut findings = statics[target].clone();
        findings.extend(target_state);
        if usable(target) {
            findings.push(Finding::fail(
                PATH,
                format!("{target_id} is already installed"),
                "a package that changes something",
                "The device already runs every part of this package.",
            ));
        }
        let first = findings
            .iter()
            .find(|f| !f.passed)
            .map_or(String::new(), |f| f.explanation.clone());
        return Outcome::Refused {
            target: Some(target_id.clone()),
            target_findings: vec![RuleGroup {
                scope: target_id.clone(),
                findings,
            }],
            summary: format!("{target_id} cannot be installed on {device}: {first}"),
        };
    }

    // Breadth-first over device states: the first path found is a shortest one.
    let mut queue: VecDeque<(State, Vec<usize>)> = VecDeque::from([(start.clone(), Vec::new())]);
    let mut seen: BTreeSet<Vec<(String, String)>> = BTreeSet::new();
    while let Some((state, path)) = queue.pop_front() {
        if advances(&pkgs[target], &state)
            && all_pass(&rules::state_rules(&pkgs[target], &state, &images))
        {
            return path_outcome(inputs, start, &images, &statics, path, target);
        }
        if path.len() + 1 >= MAX_STEPS {
            continue;
        }
        for (j, pkg) in pkgs.iter().enumerate() {
            if j == target
                || !usable(j)
                || pkg.manifest.product != inputs.profile.product()
                || !advances(pkg, &state)
            {
                continue;
            }
            if !all_pass(&rules::state_rules(pkg, &state, &images)) {
                continue;
            }
            let (_, next) = rules::apply(pkg, &state);
            let key: Vec<(String, String)> = next
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect();
            if seen.insert(key) {
                let mut p = path.clone();
                p.push(j);
                queue.push_back((next, p));
            }
        }
    }
    let mut findings = statics[target].clone();
    findings.extend(target_state);
    findings.push(Finding::fail(
        PATH,
        "no package or sequence of packages meets these requirements",
        format!("a way to install {target_id}"),
        "None of the available packages can bring the device to the versions this release needs: import the required intermediate release.",
    ));
    let first = findings
        .iter()
        .find(|f| !f.passed)
        .map_or(String::new(), |f| f.explanation.clone());
    Outcome::Refused {
        target: Some(target_id.clone()),
        target_findings: vec![RuleGroup {
            scope: target_id.clone(),
            findings,
        }],
        summary: format!("{target_id} cannot be installed on {device} yet: {first}"),
    }
}

fn path_outcome(
    inputs: &Inputs<'_>,
    start: &State,
    images: &[(String, u32)],
    statics: &[Vec<Finding>],
    mut path: Vec<usize>,
    target: usize,
) -> Outcome {
    let pkgs = inputs.packages;
    let target_id = pkgs[target].manifest.id();
    path.push(target);
    let mut state = start.clone();
    let mut steps = Vec::new();
    let mut groups = Vec::new();
    for &i in &path {
        let pkg = &pkgs[i];
        let mut findings = statics[i].clone();
        findings.extend(rules::state_rules(pkg, &state, images));
        groups.push(RuleGroup {
            scope: pkg.manifest.id(),
            findings,
        });
        let (changed, next) = rules::apply(pkg, &state);
        let mut payloads: Vec<StepPayload> = changed
            .iter()
            .map(|&k| {
                let p = &pkg.manifest.payloads[k];
                StepPayload {
                    component: p.component.clone(),
                    image: p.image,
                    from: state
                        .get(&p.component)
                        .map_or("none".into(), ToString::to_string),
                    to: p.version.to_string(),
                    file: p.file.clone(),
                    sha256: pkg
                        .payloads
                        .get(k)
                        .map_or_else(|| p.sha256.clone(), |v| v.sha256.clone()),
                    image_hash: p.image_hash.clone(),
                    size: p.size,
                }
            })
            .collect();
        // Images another payload of this step depends on go first.
        let deps: Vec<(u32, Vec<u32>)> = pkg
            .manifest
            .payloads
            .iter()
            .zip(&pkg.payloads)
            .map(|(p, v)| {
                (
                    p.image,
                    v.dependencies.iter().map(|d| u32::from(d.image)).collect(),
                )
            })
            .collect();
        payloads.sort_by_key(|p| {
            deps.iter()
                .find(|(img, _)| *img == p.image)
                .map_or(0, |(_, d)| d.len())
        });
        let reason = if i == target {
            "the newest release for this device".to_owned()
        } else {
            format!("needed first: {target_id} requires what this release installs")
        };
        steps.push(Step {
            package: pkg.manifest.id(),
            index: i,
            file_sha256: pkg.file_sha256.clone(),
            manifest_sha256: pkg.manifest_sha256.clone(),
            sbom_sha256: pkg.manifest.sbom.sha256.clone(),
            reason,
            payloads,
        });
        state = next;
    }
    Outcome::Path {
        target: target_id,
        steps,
        step_findings: groups,
    }
}
