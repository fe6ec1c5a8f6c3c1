//! The release licence gate: a release whose SBOM has a component the licence policy denies is
//! not built. The policy itself (ids, categories, how expressions combine) is
//! `fieldkit-licence`'s; this module applies it to an SBOM and speaks in [`Finding`]s.

use fieldkit_licence::{Evaluation, Policy, Verdict};
use serde::Serialize;

use crate::error::{Result, TrustError};
use crate::rules;
use crate::sbom::SbomSummary;

/// The policy's verdict on one component of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentLicence {
    /// `name version`.
    pub component: String,
    /// Its purl.
    pub purl: String,
    /// The verdict and the terms behind it.
    pub evaluation: Evaluation,
}

impl ComponentLicence {
    /// One line: the component, its verdict, and the rule behind each deciding term.
    pub fn describe(&self) -> String {
        let terms: Vec<String> = self
            .evaluation
            .deciding()
            .map(|t| {
                let lic = if t.licence.is_empty() {
                    String::new()
                } else {
                    format!("{} ", t.licence)
                };
                format!("{lic}{} by rule {:?} ({})", t.verdict, t.rule, t.reason)
            })
            .collect();
        format!(
            "component {} ({}): {}",
            self.component,
            self.purl,
            if terms.is_empty() {
                self.evaluation.verdict.to_string()
            } else {
                terms.join("; ")
            }
        )
    }
}

/// Judges every component of `sbom` by `policy`. Refuses (rule `package.licence`) if any
/// component is denied, naming the first such component and the rule; otherwise returns every
/// component's verdict (the flagged ones are for a person to review).
pub fn check_licences(sbom: &SbomSummary, policy: &Policy) -> Result<Vec<ComponentLicence>> {
    let all: Vec<ComponentLicence> = sbom
        .components
        .iter()
        .map(|c| ComponentLicence {
            component: format!("{} {}", c.name, c.version),
            purl: c.purl.clone(),
            evaluation: policy.evaluate(&c.licenses),
        })
        .collect();
    let denied: Vec<&ComponentLicence> = all
        .iter()
        .filter(|c| c.evaluation.verdict == Verdict::Deny)
        .collect();
    if let Some(first) = denied.first() {
        return Err(TrustError::refused(
            rules::LICENCE,
            format!(
                "{}{}",
                first.describe(),
                if denied.len() > 1 {
                    format!(" (and {} more denied)", denied.len() - 1)
                } else {
                    String::new()
                }
            ),
            "every component's licence allowed or flagged by the release licence policy",
            "The release contains a component whose licence the manufacturer's release policy denies.",
        ));
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::validate_sbom;

    /// The SPDX list version, as the licence crate reports it in a reason.
    fn spdx_version() -> String {
        let e = Policy::release_default().evaluate(&["X-Unknown".into()]);
        e.terms[0]
            .reason
            .rsplit(' ')
            .next()
            .unwrap_or("")
            .to_owned()
    }

    fn sbom(licences: &[(&str, &str)]) -> SbomSummary {
        let components: Vec<String> = licences
            .iter()
            .map(|(name, lic)| {
                format!(
                    r#"{{"type":"library","name":"{name}","version":"1.0.0","purl":"pkg:generic/acme/{name}@1.0.0",
                    "licenses":[{lic}]}}"#
                )
            })
            .collect();
        let doc = format!(
            r#"{{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{}]}}"#,
            components.join(",")
        );
        validate_sbom(doc.as_bytes()).unwrap()
    }

    #[test]
    fn a_denied_component_refuses_the_release_naming_component_and_rule() {
        let policy = Policy::release_default();
        let s = sbom(&[
            ("zlib", r#"{"license":{"id":"Zlib"}}"#),
            ("readline", r#"{"expression":"GPL-3.0-only"}"#),
            ("busybox", r#"{"license":{"id":"GPL-2.0-only"}}"#),
        ]);
        let e = check_licences(&s, &policy).unwrap_err();
        assert_eq!(e.rule(), rules::LICENCE);
        let text = e.to_string();
        assert!(
            text.contains(
                "found component readline 1.0.0 (pkg:generic/acme/readline@1.0.0): GPL-3.0-only deny by rule \"category strong-copyleft\""
            ),
            "{text}"
        );
        assert!(text.contains("(and 1 more denied)"), "{text}");
    }

    #[test]
    fn flagged_components_pass_and_are_reported() {
        let policy = Policy::release_default();
        let s = sbom(&[
            ("zlib", r#"{"license":{"id":"Zlib"}}"#),
            ("vendor-blob", r#"{"license":{"name":"DEMO proprietary"}}"#),
            ("nss", r#"{"license":{"id":"MPL-2.0"}}"#),
        ]);
        let all = check_licences(&s, &policy).unwrap();
        let flagged: Vec<String> = all
            .iter()
            .filter(|c| c.evaluation.verdict == fieldkit_licence::Verdict::Flag)
            .map(ComponentLicence::describe)
            .collect();
        assert_eq!(
            flagged,
            [
                format!("component vendor-blob 1.0.0 (pkg:generic/acme/vendor-blob@1.0.0): DEMO proprietary flag by rule \"unknown licence\" (not a licence of the SPDX licence list {})", spdx_version()),
                "component nss 1.0.0 (pkg:generic/acme/nss@1.0.0): MPL-2.0 flag by rule \"category weak-copyleft\" (weak copyleft needs a review of how the component is linked)".to_string(),
            ]
        );
    }
}
