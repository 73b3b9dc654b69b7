//! The roles an API token can carry: the vocabulary of `[[tokens]] role`,
//! checked when the configuration is resolved and enforced by the API.
//!
//! Owns: the role names and their spelling in config files and errors.
//! Never: decides what a role may do; each API handler names the roles it admits.

/// What a bearer token may do; `admin` may do everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Ingest,
    Analyst,
    SubjectService,
    /// A partner network: sends partner events, reads its own feeds.
    Partner,
    /// Abuse reviewers: the action queue, subject evidence, decisions.
    Reviewer,
    /// Advertisers: audience sizes only, never identifiers.
    Advertiser,
}

impl Role {
    pub const ALL: &'static [Role] = &[
        Role::Admin,
        Role::Ingest,
        Role::Analyst,
        Role::SubjectService,
        Role::Partner,
        Role::Reviewer,
        Role::Advertiser,
    ];

    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "admin" => Some(Role::Admin),
            "ingest" => Some(Role::Ingest),
            "analyst" => Some(Role::Analyst),
            "subject-service" => Some(Role::SubjectService),
            "partner" => Some(Role::Partner),
            "reviewer" => Some(Role::Reviewer),
            "advertiser" => Some(Role::Advertiser),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Ingest => "ingest",
            Role::Analyst => "analyst",
            Role::SubjectService => "subject-service",
            Role::Partner => "partner",
            Role::Reviewer => "reviewer",
            Role::Advertiser => "advertiser",
        }
    }
}
