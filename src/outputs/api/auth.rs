//! Bearer-token authentication and role checks.
//!
//! Tokens are kept as BLAKE3 hashes, compared in constant time, and never
//! logged. Each handler names the roles it admits; `admin` is admitted
//! everywhere.

use std::collections::HashMap;

use axum::http::HeaderMap;

use super::error::{ApiError, Code};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Ingest,
    Analyst,
    SubjectService,
}

impl Role {
    pub const ALL: &'static [Role] = &[Role::Admin, Role::Ingest, Role::Analyst, Role::SubjectService];

    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "admin" => Some(Role::Admin),
            "ingest" => Some(Role::Ingest),
            "analyst" => Some(Role::Analyst),
            "subject-service" => Some(Role::SubjectService),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Ingest => "ingest",
            Role::Analyst => "analyst",
            Role::SubjectService => "subject-service",
        }
    }
}

/// Token hashes to roles.
#[derive(Default)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Role>,
}

impl Tokens {
    pub fn insert(&mut self, token: &str, role: Role) {
        self.by_hash.insert(*blake3::hash(token.as_bytes()).as_bytes(), role);
    }

    /// Checks the `Authorization: Bearer` header against `admitted` roles.
    pub fn require(&self, headers: &HeaderMap, admitted: &[Role]) -> Result<Role, ApiError> {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(ApiError::new(Code::MissingToken, "missing `Authorization: Bearer <token>` header"));
        };
        let token =
            value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).ok_or_else(|| {
                ApiError::new(Code::InvalidToken, "the Authorization header must be `Bearer <token>`")
            })?;
        let hash = blake3::hash(token.trim().as_bytes());
        // Compare against every known hash so timing does not reveal a prefix.
        let mut found = None;
        for (known, role) in &self.by_hash {
            if blake3::Hash::from(*known) == hash {
                found = Some(*role);
            }
        }
        let role = found.ok_or_else(|| ApiError::new(Code::InvalidToken, "unknown token"))?;
        if role == Role::Admin || admitted.contains(&role) {
            Ok(role)
        } else {
            let names: Vec<&str> = admitted.iter().map(|r| r.as_str()).chain(["admin"]).collect();
            Err(ApiError::new(
                Code::Forbidden,
                format!("role `{}` may not use this endpoint; it needs one of: {}", role.as_str(), names.join(", ")),
            ))
        }
    }
}
