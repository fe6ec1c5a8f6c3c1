//! Trusted time: the system clock, checked against a high-water mark of signed times seen.

use chrono::{DateTime, Duration, Utc};

use crate::error::{Result, TrustError};
use crate::finding::Finding;
use crate::rules;

/// How far the system clock may lag the high-water mark before it counts as rolled back.
pub const MAX_CLOCK_LAG: Duration = Duration::hours(24);

/// The high-water mark of every signed time seen (packages, recall lists, hub receipts, the
/// log). The caller persists it and passes the system clock in: this type reads no clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrustedTime {
    mark: Option<DateTime<Utc>>,
}

impl TrustedTime {
    /// A trusted time with the persisted mark, if any.
    pub fn new(mark: Option<DateTime<Utc>>) -> Self {
        Self { mark }
    }

    /// The mark, to persist.
    pub fn mark(&self) -> Option<DateTime<Utc>> {
        self.mark
    }

    /// Raises the mark to `signed` if it is later. A mark never goes down.
    pub fn observe(&mut self, signed: DateTime<Utc>) {
        if self.mark.is_none_or(|m| signed > m) {
            self.mark = Some(signed);
        }
    }

    /// Whether `system` is acceptable: not more than [`MAX_CLOCK_LAG`] behind the mark.
    pub fn check(&self, system: DateTime<Utc>) -> Finding {
        match self.mark {
            None => Finding::pass(
                rules::CLOCK,
                system.to_rfc3339(),
                "any time (no signed time seen yet)",
                "The system clock is used as is: no signed time has been seen to check it against.",
            ),
            Some(mark) => Finding::check(
                system >= mark - MAX_CLOCK_LAG,
                rules::CLOCK,
                system.to_rfc3339(),
                format!("no earlier than {}", (mark - MAX_CLOCK_LAG).to_rfc3339()),
                format!(
                    "The system clock must not be more than 24 hours behind the latest signed time seen ({}); otherwise the clock was set back and expiry dates cannot be trusted.",
                    mark.to_rfc3339()
                ),
            ),
        }
    }

    /// "Now" for time-dependent decisions: the later of `system` and the mark. Fails closed
    /// when the clock was set back.
    pub fn now(&self, system: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let f = self.check(system);
        if !f.passed {
            return Err(TrustError::from(f));
        }
        Ok(self.mark.map_or(system, |m| m.max(system)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn check(mark: Option<&str>, system: &str, expect: Result<&str, &str>) {
        let tt = TrustedTime::new(mark.map(t));
        match (tt.now(t(system)), expect) {
            (Ok(now), Ok(e)) => assert_eq!(now, t(e), "{mark:?} {system}"),
            (Err(e), Err(rule)) => assert_eq!(e.rule(), rule, "{mark:?} {system}"),
            (got, want) => panic!("{mark:?} {system}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn clock_rules() {
        check(None, "2025-01-01T00:00:00Z", Ok("2025-01-01T00:00:00Z"));
        check(
            Some("2025-01-01T00:00:00Z"),
            "2025-02-01T00:00:00Z",
            Ok("2025-02-01T00:00:00Z"),
        );
        // Behind the mark but within 24 h: now is the mark.
        check(
            Some("2025-01-02T00:00:00Z"),
            "2025-01-01T00:00:00Z",
            Ok("2025-01-02T00:00:00Z"),
        );
        check(
            Some("2025-01-02T00:00:01Z"),
            "2025-01-01T00:00:00Z",
            Err(rules::CLOCK),
        );
        check(
            Some("2026-01-01T00:00:00Z"),
            "2025-01-01T00:00:00Z",
            Err(rules::CLOCK),
        );
    }

    #[test]
    fn mark_never_goes_down() {
        let mut tt = TrustedTime::default();
        tt.observe(t("2025-03-01T00:00:00Z"));
        tt.observe(t("2025-01-01T00:00:00Z"));
        assert_eq!(tt.mark(), Some(t("2025-03-01T00:00:00Z")));
    }
}
