//! The ledger: one verdict per claim of the chapter, from the contrasts that decide it.
//!
//! Each claim lists the experiments that test it (the suite's `fixtures/claims.toml`); each of
//! those experiments declares contrasts naming the claim ([`crate::contrast`]). The claim's
//! verdict combines their outcomes by one rule, [`COMBINE_RULE`]:
//!
//! - **incomplete** while an experiment of the claim has no results;
//! - **supported** when every deciding contrast is supported;
//! - **not supported** when every deciding contrast is contradicted or shows no effect worth
//!   having (and at least one is contradicted);
//! - **no effect worth having** when every deciding contrast shows none;
//! - **conflicting** when some are supported and some contradicted;
//! - **inconclusive** otherwise.
//!
//! A listed experiment that reports results but emits no contrast for the claim is an error
//! ([`build`]): the claims file and the experiment disagree.
//!
//! ```
//! use transferlab_report::contrast::Outcome;
//! use transferlab_report::ledger::{combine, ClaimStatus};
//! assert_eq!(combine(&[Outcome::Supported, Outcome::Supported], false), ClaimStatus::Supported);
//! assert_eq!(combine(&[Outcome::Supported, Outcome::Contradicted], false), ClaimStatus::Conflicting);
//! assert_eq!(combine(&[Outcome::Supported], true), ClaimStatus::Incomplete);
//! ```

use serde::{Deserialize, Serialize};

use crate::contrast::{ContrastResult, Outcome};
use crate::{Error, Result};

/// The rule that makes a claim's verdict from its contrasts, in words (shown in the report).
pub const COMBINE_RULE: &str = "a claim is supported when every contrast that decides it is \
     supported; not supported when every one is contradicted or shows no effect worth having \
     (at least one contradicted); no effect worth having when every one shows none; \
     conflicting when some are supported and some contradicted; inconclusive otherwise; \
     incomplete while an experiment of the claim has no results";

/// A claim's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    /// Every deciding contrast supported.
    Supported,
    /// Every deciding contrast contradicted or without an effect worth having.
    NotSupported,
    /// Every deciding contrast without an effect worth having.
    NoEffectWorthHaving,
    /// Some supported, some contradicted.
    Conflicting,
    /// Otherwise.
    Inconclusive,
    /// An experiment of the claim has no results yet.
    Incomplete,
    /// A definition, not a testable claim.
    Definition,
}

impl ClaimStatus {
    /// In words.
    pub fn word(self) -> &'static str {
        match self {
            ClaimStatus::Supported => "supported",
            ClaimStatus::NotSupported => "not supported",
            ClaimStatus::NoEffectWorthHaving => "no effect worth having",
            ClaimStatus::Conflicting => "conflicting",
            ClaimStatus::Inconclusive => "inconclusive",
            ClaimStatus::Incomplete => "incomplete",
            ClaimStatus::Definition => "definition",
        }
    }

    /// As a CSS class name.
    pub fn css_class(self) -> &'static str {
        match self {
            ClaimStatus::Supported => "supported",
            ClaimStatus::NotSupported => "not-supported",
            ClaimStatus::NoEffectWorthHaving => "no-effect",
            ClaimStatus::Conflicting => "mixed",
            ClaimStatus::Inconclusive | ClaimStatus::Definition => "inconclusive",
            ClaimStatus::Incomplete => "missing",
        }
    }
}

impl std::fmt::Display for ClaimStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// The claim's verdict from its deciding contrasts' outcomes ([`COMBINE_RULE`]).
pub fn combine(outcomes: &[Outcome], incomplete: bool) -> ClaimStatus {
    use Outcome::*;
    if incomplete || outcomes.is_empty() {
        return ClaimStatus::Incomplete;
    }
    let all = |f: &dyn Fn(Outcome) -> bool| outcomes.iter().all(|&o| f(o));
    let any = |o: Outcome| outcomes.contains(&o);
    if all(&|o| o == Supported) {
        ClaimStatus::Supported
    } else if all(&|o| o == NoEffectWorthHaving) {
        ClaimStatus::NoEffectWorthHaving
    } else if all(&|o| o == Contradicted || o == NoEffectWorthHaving) {
        ClaimStatus::NotSupported
    } else if any(Supported) && any(Contradicted) {
        ClaimStatus::Conflicting
    } else {
        ClaimStatus::Inconclusive
    }
}

/// A claim as the ledger needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimSpec {
    /// `T-1`, …
    pub id: String,
    /// The experiments that test it.
    pub experiments: Vec<String>,
    /// Set for a definition (no verdict).
    #[serde(default)]
    pub definition: Option<String>,
}

/// What one experiment brought: its contrasts, or `None` when it has no results.
#[derive(Debug, Clone)]
pub struct ExperimentContrasts<'a> {
    /// Experiment ID.
    pub id: &'a str,
    /// Its evaluated contrasts; `None` while it has no results.
    pub contrasts: Option<&'a [ContrastResult]>,
}

/// One row of the ledger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerRow {
    /// The claim.
    pub claim: String,
    /// Its verdict.
    pub status: ClaimStatus,
    /// The deciding contrasts as `(experiment, result)`.
    pub contrasts: Vec<(String, ContrastResult)>,
    /// Experiments of the claim without results.
    pub missing: Vec<String>,
}

/// Builds the ledger: one row per claim, in order.
///
/// Errors when an experiment listed for a claim has results but no contrast naming the claim,
/// or when a contrast names a claim whose entry does not list its experiment.
pub fn build(
    claims: &[ClaimSpec],
    experiments: &[ExperimentContrasts<'_>],
) -> Result<Vec<LedgerRow>> {
    // Every contrast's claim must list the experiment that emits it.
    for e in experiments {
        for c in e.contrasts.unwrap_or_default() {
            for claim in &c.contrast.claims {
                let listed = claims
                    .iter()
                    .find(|k| &k.id == claim)
                    .is_some_and(|k| k.experiments.iter().any(|x| x == e.id));
                if !listed {
                    return Err(Error::InvalidArgument(format!(
                        "{} emits contrast {} for claim {claim}, but the claims file does not \
                         list {} under {claim}: add it there or drop the claim from the contrast",
                        e.id, c.contrast.id, e.id
                    )));
                }
            }
        }
    }
    let mut rows = Vec::new();
    for k in claims {
        let mut contrasts = Vec::new();
        let mut missing = Vec::new();
        for x in &k.experiments {
            match experiments.iter().find(|e| e.id == x) {
                None
                | Some(ExperimentContrasts {
                    contrasts: None, ..
                }) => missing.push(x.clone()),
                Some(ExperimentContrasts {
                    contrasts: Some(cs),
                    ..
                }) => {
                    let mine: Vec<_> = cs
                        .iter()
                        .filter(|c| c.contrast.claims.contains(&k.id))
                        .collect();
                    if mine.is_empty() && k.definition.is_none() {
                        return Err(Error::InvalidArgument(format!(
                            "the claims file lists {x} under {}, but {x} emits no contrast for \
                             {}: declare one in {x} or remove {x} from the claim",
                            k.id, k.id
                        )));
                    }
                    contrasts.extend(mine.into_iter().map(|c| (x.clone(), c.clone())));
                }
            }
        }
        let status = if k.definition.is_some() {
            ClaimStatus::Definition
        } else {
            let outcomes: Vec<Outcome> = contrasts.iter().map(|(_, c)| c.outcome).collect();
            combine(&outcomes, !missing.is_empty())
        };
        rows.push(LedgerRow {
            claim: k.id.clone(),
            status,
            contrasts,
            missing,
        });
    }
    Ok(rows)
}

/// Contrasts that feed more than one claim, as `(experiment, contrast id, claims)`: the report
/// shows them as such.
pub fn shared_contrasts(rows: &[LedgerRow]) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
    for r in rows {
        for (e, c) in &r.contrasts {
            if c.contrast.claims.len() > 1
                && !out.iter().any(|(x, id, _)| x == e && id == &c.contrast.id)
            {
                out.push((e.clone(), c.contrast.id.clone(), c.contrast.claims.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contrast::{Contrast, Kind, Margin, Unit};
    use crate::stats::Results;
    use Outcome::*;

    #[test]
    fn the_combination_rule() {
        assert_eq!(combine(&[Supported; 3], false), ClaimStatus::Supported);
        assert_eq!(
            combine(&[Contradicted, Contradicted], false),
            ClaimStatus::NotSupported
        );
        assert_eq!(
            combine(&[Contradicted, NoEffectWorthHaving], false),
            ClaimStatus::NotSupported
        );
        assert_eq!(
            combine(&[NoEffectWorthHaving; 2], false),
            ClaimStatus::NoEffectWorthHaving
        );
        assert_eq!(
            combine(&[Supported, Contradicted], false),
            ClaimStatus::Conflicting
        );
        assert_eq!(
            combine(&[Supported, Contradicted, Inconclusive], false),
            ClaimStatus::Conflicting
        );
        assert_eq!(
            combine(&[Supported, Inconclusive], false),
            ClaimStatus::Inconclusive
        );
        assert_eq!(
            combine(&[Supported, NoEffectWorthHaving], false),
            ClaimStatus::Inconclusive
        );
        assert_eq!(combine(&[Supported], true), ClaimStatus::Incomplete);
        assert_eq!(combine(&[], false), ClaimStatus::Incomplete);
    }

    fn contrast(id: &str, claims: &[&str], a: &[f64]) -> ContrastResult {
        let mut r = Results::default();
        for &v in a {
            r.push("a", v);
            r.push("b", 0.0);
        }
        Contrast::paired(
            id,
            claims,
            "a − b",
            Unit::accuracy_points(),
            Kind::Superiority,
            "a",
            "b",
            Margin::new(0.01, "test"),
        )
        .evaluate(&r)
        .unwrap()
    }

    fn spec(id: &str, exps: &[&str]) -> ClaimSpec {
        ClaimSpec {
            id: id.into(),
            experiments: exps.iter().map(|s| s.to_string()).collect(),
            definition: None,
        }
    }

    #[test]
    fn missing_results_make_a_claim_incomplete() {
        let x1 = vec![contrast("g", &["T-1"], &[0.1, 0.11, 0.12])];
        let rows = build(
            &[spec("T-1", &["X1", "X3"])],
            &[
                ExperimentContrasts {
                    id: "X1",
                    contrasts: Some(&x1),
                },
                ExperimentContrasts {
                    id: "X3",
                    contrasts: None,
                },
            ],
        )
        .unwrap();
        assert_eq!(rows[0].status, ClaimStatus::Incomplete);
        assert_eq!(rows[0].missing, vec!["X3".to_string()]);
        // An experiment absent altogether is missing too.
        let rows = build(
            &[spec("T-1", &["X1", "X3"])],
            &[ExperimentContrasts {
                id: "X1",
                contrasts: Some(&x1),
            }],
        )
        .unwrap();
        assert_eq!(rows[0].status, ClaimStatus::Incomplete);
    }

    #[test]
    fn a_listed_experiment_without_a_contrast_for_the_claim_is_an_error() {
        let x3 = vec![contrast("g", &["T-1"], &[0.1, 0.11, 0.12])];
        let e = build(
            &[spec("T-1", &["X3"]), spec("T-3", &["X3"])],
            &[ExperimentContrasts {
                id: "X3",
                contrasts: Some(&x3),
            }],
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("X3 emits no contrast for T-3"),
            "{e}"
        );
    }

    #[test]
    fn a_contrast_for_an_unlisted_claim_is_an_error() {
        let p4 = vec![contrast("g", &["E-4"], &[0.1, 0.11, 0.12])];
        let e = build(
            &[spec("E-4", &["P1"])],
            &[ExperimentContrasts {
                id: "P4",
                contrasts: Some(&p4),
            }],
        )
        .unwrap_err();
        assert!(e.to_string().contains("does not list P4 under E-4"), "{e}");
    }

    #[test]
    fn a_contrast_feeding_two_claims_is_shown_as_such() {
        let m1 = vec![
            contrast("dm", &["M-1", "M-5"], &[0.1, 0.11, 0.12]),
            contrast("other", &["M-1"], &[-0.1, -0.11, -0.12]),
        ];
        let rows = build(
            &[spec("M-1", &["M1"]), spec("M-5", &["M1"])],
            &[ExperimentContrasts {
                id: "M1",
                contrasts: Some(&m1),
            }],
        )
        .unwrap();
        assert_eq!(rows[0].status, ClaimStatus::Conflicting);
        assert_eq!(rows[1].status, ClaimStatus::Supported);
        let shared = shared_contrasts(&rows);
        assert_eq!(shared.len(), 1);
        assert_eq!(shared[0].1, "dm");
    }
}
