//! The structured reason every decision carries.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One rule that was evaluated: whether it passed, the value found, the value required, and a
/// sentence a technician understands. Package verification, entitlement evaluation, the
/// planner, the CLI, the app and the audit log all speak in `Finding`s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable rule identifier, `area.rule` (e.g. `package.signature`, `entitlement.device`).
    pub rule: String,
    /// Whether the rule held.
    pub passed: bool,
    /// The value found.
    pub found: String,
    /// The value required.
    pub required: String,
    /// A plain-language sentence saying what was checked and what it means.
    pub explanation: String,
}

impl Finding {
    /// A rule that held.
    pub fn pass(
        rule: impl Into<String>,
        found: impl Into<String>,
        required: impl Into<String>,
        explanation: impl Into<String>,
    ) -> Self {
        Self {
            rule: rule.into(),
            passed: true,
            found: found.into(),
            required: required.into(),
            explanation: explanation.into(),
        }
    }

    /// A rule that failed.
    pub fn fail(
        rule: impl Into<String>,
        found: impl Into<String>,
        required: impl Into<String>,
        explanation: impl Into<String>,
    ) -> Self {
        Self {
            passed: false,
            ..Self::pass(rule, found, required, explanation)
        }
    }

    /// `pass` or `fail` depending on `passed`.
    pub fn check(
        passed: bool,
        rule: impl Into<String>,
        found: impl Into<String>,
        required: impl Into<String>,
        explanation: impl Into<String>,
    ) -> Self {
        Self {
            passed,
            ..Self::pass(rule, found, required, explanation)
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {} (found {}, required {})",
            if self.passed { "ok" } else { "FAILED" },
            self.rule,
            self.explanation,
            self.found,
            self.required
        )
    }
}

/// The outcome of a decision: allowed only if every finding passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Decision {
    /// Every rule that was evaluated, in order.
    pub findings: Vec<Finding>,
}

impl Decision {
    /// Whether every finding passed (and there is at least one).
    pub fn allowed(&self) -> bool {
        !self.findings.is_empty() && self.findings.iter().all(|f| f.passed)
    }

    /// The first failed finding, which is the one to show in a one-line refusal.
    pub fn first_failure(&self) -> Option<&Finding> {
        self.findings.iter().find(|f| !f.passed)
    }

    /// Appends a finding.
    pub fn push(&mut self, f: Finding) {
        self.findings.push(f);
    }
}
