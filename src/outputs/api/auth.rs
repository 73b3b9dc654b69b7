//! Bearer-token authentication and role checks.
//!
//! Tokens are kept as BLAKE3 hashes, compared in constant time, and never
//! logged. Each handler names the roles it admits; `admin` is admitted
//! everywhere.

use std::collections::HashMap;

use axum::http::HeaderMap;

use super::error::{ApiError, Code};

pub use crate::config::Role;

/// The gate's name for the staff member a token stands for: reviewers,
/// analysts and the admin. Any other role is not staff (403), so a route
/// that admits one by mistake still releases nothing to it as staff.
pub(super) fn staff(role: Role) -> Result<crate::gate::Staff, ApiError> {
    match role {
        Role::Reviewer => Ok(crate::gate::Staff::Reviewer),
        Role::Analyst => Ok(crate::gate::Staff::Analyst),
        Role::Admin => Ok(crate::gate::Staff::Admin),
        Role::Ingest | Role::SubjectService | Role::Partner | Role::Advertiser => {
            Err(ApiError::new(Code::Forbidden, "this route is for proviso's own staff"))
        }
    }
}

/// Who is calling: a role, for partner tokens the partner's name, and for
/// tokens from the config the name they were given there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    pub partner: Option<String>,
    /// The token's configured name (`[[tokens]] name`, or the env variable's
    /// name in lower case); never the token.
    pub name: Option<String>,
}

impl Caller {
    /// Whose audience budget an answer is charged to: the token's configured
    /// name, so tokens sharing a name share a budget (rotating a token does
    /// not refill it); a token without a name (the generated admin token)
    /// is charged as its role.
    pub fn budget_holder(&self) -> &str {
        self.name.as_deref().unwrap_or(self.role.as_str())
    }
}

/// Token hashes to callers.
#[derive(Default)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Caller>,
}

impl Tokens {
    pub fn insert(&mut self, token: &str, role: Role) {
        self.by_hash.insert(*blake3::hash(token.as_bytes()).as_bytes(), Caller { role, partner: None, name: None });
    }

    /// A token from the config, with the name it was given there.
    pub fn insert_named(&mut self, token: &str, role: Role, name: &str) {
        self.by_hash.insert(
            *blake3::hash(token.as_bytes()).as_bytes(),
            Caller { role, partner: None, name: Some(name.to_string()) },
        );
    }

    /// A partner network's token.
    pub fn insert_partner(&mut self, token: &str, partner: &str) {
        self.by_hash.insert(
            *blake3::hash(token.as_bytes()).as_bytes(),
            Caller { role: Role::Partner, partner: Some(partner.to_string()), name: None },
        );
    }

    /// Checks the `Authorization: Bearer` header against `admitted` roles.
    pub fn require(&self, headers: &HeaderMap, admitted: &[Role]) -> Result<Role, ApiError> {
        self.caller(headers, admitted).map(|caller| caller.role)
    }

    /// Like [`Tokens::require`], returning the whole caller.
    pub fn caller(&self, headers: &HeaderMap, admitted: &[Role]) -> Result<Caller, ApiError> {
        let hash = token_hash(headers)?;
        // Compare against every known hash so timing does not reveal a prefix.
        let mut found = None;
        for (known, caller) in &self.by_hash {
            if blake3::Hash::from(*known) == blake3::Hash::from(hash) {
                found = Some(caller);
            }
        }
        let caller = found.ok_or_else(|| ApiError::new(Code::InvalidToken, "unknown token"))?;
        let role = caller.role;
        if role == Role::Admin || admitted.contains(&role) {
            Ok(caller.clone())
        } else {
            let names: Vec<&str> = admitted.iter().map(|r| r.as_str()).chain(["admin"]).collect();
            Err(ApiError::new(
                Code::Forbidden,
                format!("role `{}` may not use this endpoint; it needs one of: {}", role.as_str(), names.join(", ")),
            ))
        }
    }
}

/// The BLAKE3 hash of the bearer token in `headers`: what [`Tokens`] keys
/// callers by, and what per-token limits count by (never the token itself).
pub fn token_hash(headers: &HeaderMap) -> Result<[u8; 32], ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(ApiError::new(Code::MissingToken, "missing `Authorization: Bearer <token>` header"));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::new(Code::InvalidToken, "the Authorization header must be `Bearer <token>`"))?;
    Ok(*blake3::hash(token.trim().as_bytes()).as_bytes())
}
