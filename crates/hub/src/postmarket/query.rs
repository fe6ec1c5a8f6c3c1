//! The parameters of the post-market answers, as they arrive (query string or CLI), validated
//! into values with the rule a bad one breaks: a 400 that names the parameter, the value found
//! (cut short) and what is required, never a database error.

use fieldkit_vuln::vex::Scope;
use serde::{Deserialize, Serialize};

use super::answers::{DEFAULT_PAGE, MAX_PAGE, UpToDateFilter};
use crate::rules::{MAX_OFFSET, QueryRuleError, number, refuse, text};

/// A page: `limit` (1 to [`MAX_PAGE`]) and `offset`.
pub fn page(limit: &Option<String>, offset: &Option<String>) -> Result<(u32, u64), QueryRuleError> {
    Ok((
        number("limit", limit, 1, u64::from(MAX_PAGE))?.map_or(DEFAULT_PAGE, |n| n as u32),
        number("offset", offset, 0, MAX_OFFSET)?.unwrap_or(0),
    ))
}

/// An exposure question as it arrives: exactly one of `id`, `component`, `device`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExposureParams {
    /// A vulnerability id or alias.
    pub id: Option<String>,
    /// A purl, `purl@version` or `purl@vers:SCHEME/CONSTRAINTS`.
    pub component: Option<String>,
    /// A device serial.
    pub device: Option<String>,
    /// Page size.
    pub limit: Option<String>,
    /// Rows to skip.
    pub offset: Option<String>,
}

/// A validated exposure question.
#[derive(Debug, Clone)]
pub enum Exposure {
    /// By vulnerability.
    Id {
        /// The id.
        id: String,
        /// Page size.
        limit: u32,
        /// Rows to skip.
        offset: u64,
    },
    /// By component.
    Component {
        /// As asked.
        query: String,
        /// Parsed.
        scope: Box<Scope>,
        /// Page size.
        limit: u32,
        /// Rows to skip.
        offset: u64,
    },
    /// By device.
    Device {
        /// The serial.
        serial: String,
    },
}

/// A vulnerability id as the hub accepts it: letters, digits and `-_.:`, at most 128.
pub fn vuln_id(param: &'static str, s: &str) -> Result<String, QueryRuleError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(refuse(
            param,
            s,
            "a vulnerability id (letters, digits, - _ . :), at most 128 characters",
        ))
    }
}

impl ExposureParams {
    /// Validates the question.
    pub fn to_query(&self) -> Result<Exposure, QueryRuleError> {
        let id = text("id", &self.id)?;
        let component = text("component", &self.component)?;
        let device = text("device", &self.device)?;
        let (limit, offset) = page(&self.limit, &self.offset)?;
        match (id, component, device) {
            (Some(id), None, None) => Ok(Exposure::Id {
                id: vuln_id("id", &id)?,
                limit,
                offset,
            }),
            (None, Some(c), None) => {
                let scope = Scope::from_purl(&c).map_err(|e| refuse("component", &c, e))?;
                Ok(Exposure::Component {
                    query: c,
                    scope: Box::new(scope),
                    limit,
                    offset,
                })
            }
            (None, None, Some(serial)) => Ok(Exposure::Device { serial }),
            _ => Err(refuse("id", "", "exactly one of id, component or device")),
        }
    }
}

/// Up-to-date filters as they arrive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpToDateParams {
    /// Product.
    pub product: Option<String>,
    /// Customer.
    pub customer: Option<String>,
    /// Site.
    pub site: Option<String>,
    /// Page size.
    pub limit: Option<String>,
    /// Rows to skip.
    pub offset: Option<String>,
}

impl UpToDateParams {
    /// Validates the filters.
    pub fn to_query(&self) -> Result<(UpToDateFilter, u32, u64), QueryRuleError> {
        let (limit, offset) = page(&self.limit, &self.offset)?;
        Ok((
            UpToDateFilter {
                product: text("product", &self.product)?,
                customer: text("customer", &self.customer)?,
                site: text("site", &self.site)?,
            },
            limit,
            offset,
        ))
    }
}

/// Overview and series parameters as they arrive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListParams {
    /// One vulnerability (series only).
    pub id: Option<String>,
    /// Weeks of history (series only), 1 to 104.
    pub weeks: Option<String>,
    /// Page size.
    pub limit: Option<String>,
    /// Rows to skip.
    pub offset: Option<String>,
}

/// The longest history a series covers.
pub const MAX_WEEKS: u64 = 104;

impl ListParams {
    /// Validates: `(id, weeks, limit, offset)`.
    pub fn to_query(&self) -> Result<(Option<String>, u32, u32, u64), QueryRuleError> {
        let id = match text("id", &self.id)? {
            Some(s) => Some(vuln_id("id", &s)?),
            None => None,
        };
        let weeks = number("weeks", &self.weeks, 1, MAX_WEEKS)?.unwrap_or(26) as u32;
        let (limit, offset) = page(&self.limit, &self.offset)?;
        Ok((id, weeks, limit, offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposure(pairs: &[(&str, &str)]) -> Result<Exposure, QueryRuleError> {
        let v: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned())))
            .collect();
        serde_json::from_value::<ExposureParams>(serde_json::Value::Object(v))
            .unwrap()
            .to_query()
    }

    #[test]
    fn bad_parameters_name_their_rule() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "exactly one of id, component or device"),
            (
                &[("id", "CVE-1"), ("device", "P7-1")],
                "exactly one of id, component or device",
            ),
            (
                &[("id", "<script>")],
                "id=\"<script>\" is not accepted: required a vulnerability id",
            ),
            (
                &[("component", "lwip@2")],
                "component=\"lwip@2\" is not accepted",
            ),
            (
                &[("component", "pkg:generic/lwip@vers:cobol/>=1")],
                "SCHEME one of semver",
            ),
            (&[("device", "P7\u{1b}[2J")], "without control characters"),
            (&[("id", "CVE-1"), ("limit", "0")], "from 1 to 1000"),
            (
                &[("id", "CVE-1"), ("offset", "-3")],
                "a whole number from 0",
            ),
        ];
        for (pairs, says) in cases {
            let e = exposure(pairs).unwrap_err().to_string();
            assert!(e.contains(says), "{pairs:?}: {e}");
        }
        assert!(matches!(
            exposure(&[("component", "pkg:generic/acme/netcore@vers:semver/<1.5.0")]).unwrap(),
            Exposure::Component { .. }
        ));
        assert!(matches!(
            exposure(&[("id", "DEMO-ACME-INFUSION-P7-1"), ("limit", "5")]).unwrap(),
            Exposure::Id { limit: 5, .. }
        ));
    }
}
