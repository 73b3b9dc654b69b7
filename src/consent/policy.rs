//! The consent policy file: per refusable purpose, opt-in or opt-out by region.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::contract::Purpose;

/// The built-in policy, compiled into the binary (see the file for its rules).
pub const DEFAULT_POLICY_TOML: &str = include_str!("default_policy.toml");

/// The European Economic Area: EU-27 plus Iceland, Liechtenstein, Norway.
const EEA: &[&str] = &[
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT",
    "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Allowed after a notice period unless refused.
    OptOut,
    /// Denied until granted.
    OptIn,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default = "default_notice_period_days")]
    notice_period_days: u32,
    #[serde(default)]
    purpose: BTreeMap<String, PurposeFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurposeFile {
    default: Basis,
    #[serde(default)]
    opt_in: Vec<String>,
    #[serde(default)]
    opt_out: Vec<String>,
    notice_period_days: Option<u32>,
}

const fn default_notice_period_days() -> u32 {
    30
}

/// Resolved policy for one refusable purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposePolicy {
    pub default: Basis,
    pub regions: BTreeMap<String, Basis>,
    pub notice_period_days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub purposes: BTreeMap<Purpose, PurposePolicy>,
}

#[derive(Debug, thiserror::Error)]
#[error("consent policy is invalid:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct PolicyError {
    pub problems: Vec<String>,
}

impl Policy {
    pub fn default_policy() -> Policy {
        // The built-in file is checked by a unit test.
        Policy::from_toml(DEFAULT_POLICY_TOML).unwrap_or_else(|error| panic!("built-in policy: {error}"))
    }

    /// Parses a policy file, listing every problem found.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| PolicyError { problems: vec![e.to_string()] })?;
        let mut problems = Vec::new();
        let mut purposes = BTreeMap::new();
        for (name, entry) in &file.purpose {
            let Some(purpose) = Purpose::parse(name) else {
                problems.push(format!("[purpose.{name}]: unknown purpose; refusable purposes are product and ads"));
                continue;
            };
            if purpose.is_essential() {
                problems.push(format!("[purpose.{name}]: essential purposes are always allowed and take no policy"));
                continue;
            }
            let mut regions = BTreeMap::new();
            let mut seen = BTreeSet::new();
            for (list, basis) in [(&entry.opt_in, Basis::OptIn), (&entry.opt_out, Basis::OptOut)] {
                for code in list {
                    let expanded: Vec<&str> =
                        if code == "EEA" || code == "EU" { EEA.to_vec() } else { vec![code.as_str()] };
                    for region in expanded {
                        let valid = region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase());
                        if !valid {
                            problems
                                .push(format!("[purpose.{name}]: `{region}` is not an ISO 3166 alpha-2 code (or EEA)"));
                        } else if !seen.insert(region) {
                            problems.push(format!("[purpose.{name}]: region {region} is listed twice"));
                        } else {
                            regions.insert(region.to_string(), basis);
                        }
                    }
                }
            }
            purposes.insert(
                purpose,
                PurposePolicy {
                    default: entry.default,
                    regions,
                    notice_period_days: entry.notice_period_days.unwrap_or(file.notice_period_days),
                },
            );
        }
        for purpose in [Purpose::Product, Purpose::Ads] {
            if !purposes.contains_key(&purpose) && !file.purpose.contains_key(purpose.as_str()) {
                problems.push(format!("[purpose.{purpose}] is missing; every refusable purpose needs a policy"));
            }
        }
        if problems.is_empty() {
            Ok(Policy { purposes })
        } else {
            Err(PolicyError { problems })
        }
    }

    /// Basis and notice period for a refusable purpose in a region.
    pub fn basis_for(&self, purpose: Purpose, region: &str) -> (Basis, u32) {
        match self.purposes.get(&purpose) {
            Some(policy) => (policy.regions.get(region).copied().unwrap_or(policy.default), policy.notice_period_days),
            // Unreachable for a validated policy; the safe answer is opt-in.
            None => (Basis::OptIn, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_policy_is_opt_in_for_eea_and_gb_and_opt_out_elsewhere() {
        let policy = Policy::from_toml(DEFAULT_POLICY_TOML).expect("built-in policy parses");
        for purpose in [Purpose::Product, Purpose::Ads] {
            assert_eq!(policy.basis_for(purpose, "DE"), (Basis::OptIn, 30));
            assert_eq!(policy.basis_for(purpose, "GB"), (Basis::OptIn, 30));
            assert_eq!(policy.basis_for(purpose, "NO"), (Basis::OptIn, 30));
            assert_eq!(policy.basis_for(purpose, "IN"), (Basis::OptOut, 30));
            assert_eq!(policy.basis_for(purpose, "US"), (Basis::OptOut, 30));
        }
    }

    #[test]
    fn invalid_policy_lists_every_problem() {
        let error = Policy::from_toml(
            "[purpose.security]\ndefault = \"opt_in\"\n[purpose.ads]\ndefault = \"opt_out\"\nopt_in = [\"gb\", \"FR\", \"FR\"]\n",
        )
        .expect_err("invalid");
        let text = error.to_string();
        assert!(text.contains("[purpose.security]: essential"), "{text}");
        assert!(text.contains("`gb` is not an ISO"), "{text}");
        assert!(text.contains("FR is listed twice"), "{text}");
        assert!(text.contains("[purpose.product] is missing"), "{text}");
    }
}
