//! Syntax tree of the `when` expression language, and its evaluation.
//!
//! Owns: the features an expression can ask about, the operators, the two
//! tree types ([`Expr`] is always a condition, [`NumExpr`] always a number),
//! lazy evaluation, feature collection and fully parenthesised rendering.
//! Never: parses text or computes a feature's value; the engine answers the
//! [`Feature`]s an expression asks for.

use std::fmt;

use super::DomainList;

/// The features a `when` expression can ask about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeatureKind {
    AccountAge,
    MessagesSent,
    DistinctRecipients,
    NonContactRecipients,
    GroupsMessaged,
    DeviceRegistrations,
    ReportsReceived,
    DistinctReporters,
    BlocksReceived,
    ListLinks,
    PartnerFlags,
    StrangerLinkMessages,
    StrangerLinkShare,
    LinkDomains,
    ComplaintRate,
    DomainYoungSenders,
    DomainStrangerRecipients,
    NewestDomainAge,
}

impl FeatureKind {
    pub const ALL: [FeatureKind; 18] = [
        FeatureKind::AccountAge,
        FeatureKind::MessagesSent,
        FeatureKind::DistinctRecipients,
        FeatureKind::NonContactRecipients,
        FeatureKind::GroupsMessaged,
        FeatureKind::DeviceRegistrations,
        FeatureKind::ReportsReceived,
        FeatureKind::DistinctReporters,
        FeatureKind::BlocksReceived,
        FeatureKind::ListLinks,
        FeatureKind::PartnerFlags,
        FeatureKind::StrangerLinkMessages,
        FeatureKind::StrangerLinkShare,
        FeatureKind::LinkDomains,
        FeatureKind::ComplaintRate,
        FeatureKind::DomainYoungSenders,
        FeatureKind::DomainStrangerRecipients,
        FeatureKind::NewestDomainAge,
    ];

    /// The name used in `when` expressions.
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureKind::AccountAge => "account_age",
            FeatureKind::MessagesSent => "messages_sent",
            FeatureKind::DistinctRecipients => "distinct_recipients",
            FeatureKind::NonContactRecipients => "non_contact_recipients",
            FeatureKind::GroupsMessaged => "groups_messaged",
            FeatureKind::DeviceRegistrations => "device_registrations",
            FeatureKind::ReportsReceived => "reports_received",
            FeatureKind::DistinctReporters => "distinct_reporters",
            FeatureKind::BlocksReceived => "blocks_received",
            FeatureKind::ListLinks => "list_links",
            FeatureKind::PartnerFlags => "partner_flags",
            FeatureKind::StrangerLinkMessages => "stranger_link_messages",
            FeatureKind::StrangerLinkShare => "stranger_link_share",
            FeatureKind::LinkDomains => "link_domains",
            FeatureKind::ComplaintRate => "complaint_rate",
            FeatureKind::DomainYoungSenders => "domain_young_senders",
            FeatureKind::DomainStrangerRecipients => "domain_stranger_recipients",
            FeatureKind::NewestDomainAge => "newest_domain_age",
        }
    }

    pub fn parse(text: &str) -> Option<FeatureKind> {
        FeatureKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Everything but `account_age` counts events in a time window.
    pub fn is_windowed(self) -> bool {
        self != FeatureKind::AccountAge
    }

    /// Features read from the per-domain table (domain reputation state).
    pub fn reads_domains(self) -> bool {
        matches!(
            self,
            FeatureKind::DomainYoungSenders | FeatureKind::DomainStrangerRecipients | FeatureKind::NewestDomainAge
        )
    }
}

impl fmt::Display for FeatureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One value an expression needs: a kind, its window and (for `list_links`)
/// its list. Hashable so the engine can cache answers per evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Feature {
    pub kind: FeatureKind,
    /// The window in milliseconds; 0 for `account_age`.
    pub window_ms: i64,
    /// Index into [`RuleSet::lists`](super::RuleSet::lists); 0 unless `kind`
    /// is `ListLinks`; [`DERIVED_LIST`] for the derived `suspicious_domains`.
    pub list: u16,
}

/// Name of the list proviso derives itself (domain reputation): usable in
/// `list_links[suspicious_domains, W]` without a `[lists]` entry.
pub const DERIVED_LIST_NAME: &str = "suspicious_domains";
/// [`Feature::list`] of the derived list.
pub const DERIVED_LIST: u16 = u16::MAX;

impl Feature {
    /// The feature as written in a rule: `messages_sent[15s]`,
    /// `list_links[phishing, 1h]`, `account_age`.
    pub fn display(&self, lists: &[DomainList]) -> String {
        match self.kind {
            FeatureKind::AccountAge => self.kind.as_str().to_string(),
            FeatureKind::ListLinks => {
                let list_name = match lists.get(usize::from(self.list)) {
                    Some(list) => list.name.clone(),
                    None if self.list == DERIVED_LIST => DERIVED_LIST_NAME.to_string(),
                    None => format!("#{}", self.list),
                };
                format!("{}[{list_name}, {}]", self.kind, format_window(self.window_ms))
            }
            _ => format!("{}[{}]", self.kind, format_window(self.window_ms)),
        }
    }
}

/// A window in the largest unit that divides it exactly (`90s`, `2h`, `7d`).
fn format_window(window_ms: i64) -> String {
    if window_ms % 1000 != 0 {
        return format!("{window_ms}ms");
    }
    let seconds = window_ms / 1000;
    for (unit_seconds, unit) in [(86_400, "d"), (3_600, "h"), (60, "m")] {
        if seconds != 0 && seconds % unit_seconds == 0 {
            return format!("{}{unit}", seconds / unit_seconds);
        }
    }
    format!("{seconds}s")
}

/// A comparison between two numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
        }
    }

    fn apply(self, left: f64, right: f64) -> bool {
        match self {
            CompareOp::Lt => left < right,
            CompareOp::Le => left <= right,
            CompareOp::Gt => left > right,
            CompareOp::Ge => left >= right,
            CompareOp::Eq => left == right,
            CompareOp::Ne => left != right,
        }
    }
}

/// An arithmetic operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl ArithOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
        }
    }

    fn apply(self, left: f64, right: f64) -> f64 {
        match self {
            ArithOp::Add => left + right,
            ArithOp::Sub => left - right,
            ArithOp::Mul => left * right,
            // A ratio over an empty window is 0, not infinity or NaN, so
            // `a / b > 0.5` is simply false when nothing happened.
            ArithOp::Div if right == 0.0 => 0.0,
            ArithOp::Div => left / right,
        }
    }
}

/// A condition (true/false): the whole `when` of a rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Compare { op: CompareOp, left: NumExpr, right: NumExpr },
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// A number inside a condition.
#[derive(Clone, Debug, PartialEq)]
pub enum NumExpr {
    /// A literal; durations are already converted to seconds.
    Number(f64),
    Feature(Feature),
    Neg(Box<NumExpr>),
    Arith {
        op: ArithOp,
        left: Box<NumExpr>,
        right: Box<NumExpr>,
    },
}

impl Expr {
    /// Evaluates to bool, querying features lazily (short-circuit `and`/`or`,
    /// so a cheap first clause skips expensive features). `features` may be
    /// called more than once for the same feature; the caller caches.
    pub fn eval(&self, features: &mut dyn FnMut(Feature) -> f64) -> bool {
        match self {
            Expr::Compare { op, left, right } => {
                let left_value = left.eval(features);
                let right_value = right.eval(features);
                op.apply(left_value, right_value)
            }
            Expr::Not(inner) => !inner.eval(features),
            Expr::And(left, right) => left.eval(features) && right.eval(features),
            Expr::Or(left, right) => left.eval(features) || right.eval(features),
        }
    }

    /// Every feature the expression mentions (deduplicated, in order of
    /// first mention), for recording evidence.
    pub fn features(&self) -> Vec<Feature> {
        let mut found = Vec::new();
        self.collect_features(&mut found);
        found
    }

    fn collect_features(&self, found: &mut Vec<Feature>) {
        match self {
            Expr::Compare { left, right, .. } => {
                left.collect_features(found);
                right.collect_features(found);
            }
            Expr::Not(inner) => inner.collect_features(found),
            Expr::And(left, right) | Expr::Or(left, right) => {
                left.collect_features(found);
                right.collect_features(found);
            }
        }
    }

    /// The expression fully parenthesised, features written as in a rule:
    /// shows exactly how a `when` was grouped.
    pub fn render(&self, lists: &[DomainList]) -> String {
        match self {
            Expr::Compare { op, left, right } => {
                format!("({} {} {})", left.render(lists), op.as_str(), right.render(lists))
            }
            Expr::Not(inner) => format!("(not {})", inner.render(lists)),
            Expr::And(left, right) => format!("({} and {})", left.render(lists), right.render(lists)),
            Expr::Or(left, right) => format!("({} or {})", left.render(lists), right.render(lists)),
        }
    }
}

impl NumExpr {
    pub fn eval(&self, features: &mut dyn FnMut(Feature) -> f64) -> f64 {
        match self {
            NumExpr::Number(value) => *value,
            NumExpr::Feature(feature) => features(*feature),
            NumExpr::Neg(inner) => -inner.eval(features),
            NumExpr::Arith { op, left, right } => {
                let left_value = left.eval(features);
                let right_value = right.eval(features);
                op.apply(left_value, right_value)
            }
        }
    }

    fn collect_features(&self, found: &mut Vec<Feature>) {
        match self {
            NumExpr::Number(_) => {}
            NumExpr::Feature(feature) => {
                if !found.contains(feature) {
                    found.push(*feature);
                }
            }
            NumExpr::Neg(inner) => inner.collect_features(found),
            NumExpr::Arith { left, right, .. } => {
                left.collect_features(found);
                right.collect_features(found);
            }
        }
    }

    pub fn render(&self, lists: &[DomainList]) -> String {
        match self {
            NumExpr::Number(value) => format!("{value}"),
            NumExpr::Feature(feature) => feature.display(lists),
            NumExpr::Neg(inner) => format!("(-{})", inner.render(lists)),
            NumExpr::Arith { op, left, right } => {
                format!("({} {} {})", left.render(lists), op.as_str(), right.render(lists))
            }
        }
    }
}
