//! A small blocking HTTP client for commands that talk to a running server.

use anyhow::Context;

pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(120)))
            .build();
        Client {
            agent: ureq::Agent::new_with_config(config),
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    /// POSTs an NDJSON body to `/v1/events` with an `Idempotency-Key`.
    /// `Err` when no answer came (worth resending with the same key); the
    /// inner `Err` is an answer other than 2xx: its status and message.
    pub fn post_events_keyed(
        &self,
        body: &[u8],
        key: &str,
    ) -> anyhow::Result<Result<serde_json::Value, (u16, String)>> {
        let mut response = self
            .agent
            .post(format!("{}/v1/events", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/x-ndjson")
            .header("Idempotency-Key", key)
            .send(body)
            .with_context(|| format!("sending events to {}", self.base))?;
        let status = response.status();
        let body: serde_json::Value = response.body_mut().read_json().context("reading the server's JSON response")?;
        if !status.is_success() {
            let message = body["message"].as_str().unwrap_or("(no message)").to_string();
            return Ok(Err((status.as_u16(), message)));
        }
        Ok(Ok(body))
    }

    /// POSTs a JSON body to a path and parses the JSON response.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let response = self
            .agent
            .post(format!("{}{}", self.base, path))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .with_context(|| format!("calling {}", self.base))?;
        Self::json(response)
    }

    /// GETs a path and parses the JSON response.
    pub fn get_json(&self, path_and_query: &str) -> anyhow::Result<serde_json::Value> {
        let response = self
            .agent
            .get(format!("{}{}", self.base, path_and_query))
            .header("Authorization", format!("Bearer {}", self.token))
            .call()
            .with_context(|| format!("querying {}", self.base))?;
        Self::json(response)
    }

    fn json(mut response: ureq::http::Response<ureq::Body>) -> anyhow::Result<serde_json::Value> {
        let status = response.status();
        let body: serde_json::Value = response.body_mut().read_json().context("reading the server's JSON response")?;
        if !status.is_success() {
            anyhow::bail!("server answered {status}: {}", body["message"].as_str().unwrap_or("(no message)"));
        }
        Ok(body)
    }
}
