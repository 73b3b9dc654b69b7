"""Schemathesis hooks for proviso's API fuzzing (tests/schemathesis.rs).

Serializers: two request bodies are text in media types schemathesis has
no serializer for, NDJSON events (POST /v1/events) and a TOML rules file
(POST /v1/abuse/rules). Both go on the wire as UTF-8 text, like text/plain.

Check: three operations may refuse a request the document calls valid,
for the one reason no JSON Schema can say, and POST /v1/events may answer
422 `idempotency_key_reused` to a key reused with another body (the run's config lets their
positive cases answer 400); this check holds them to exactly that reason.
"""

import re

import schemathesis

schemathesis.serializer.alias(["application/x-ndjson", "application/toml"], "text/plain")

# (method, path) -> (the one error code, a pattern its message matches)
UNSCHEMABLE = {
    # `to` not before `from`, span under 3660 days: a relation of two values.
    ("GET", "/v1/metrics/active"): ("invalid_query", r"`to` is before `from`|at most \d+ days"),
    ("GET", "/v1/metrics/messages"): ("invalid_query", r"`to` is before `from`|at most \d+ days"),
    # Whether a string is a phone number is libphonenumber's to say.
    ("POST", "/v1/subjects/resolve"): ("invalid_phone", r"."),
    # Whether a text is a valid rules file is the rules parser's to say.
    ("POST", "/v1/abuse/rules"): ("invalid_rules", r"."),
}


@schemathesis.check
def schema_valid_refused_only_for_unschemable_reasons(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code == 422:
        # A used Idempotency-Key with another body: state, not schema.
        try:
            code = response.json().get("code")
        except Exception:
            code = None
        if (case.method.upper(), case.operation.path) != ("POST", "/v1/events") or code != "idempotency_key_reused":
            raise AssertionError(f"a schema-valid request was refused with 422 `{code}`")
        return None
    if response.status_code != 400:
        return None
    key = (case.method.upper(), case.operation.path)
    code, message = UNSCHEMABLE.get(key, (None, None))
    try:
        body = response.json()
    except Exception:
        body = {}
    if code is None or body.get("code") != code or not re.search(message, body.get("message", "")):
        raise AssertionError(
            f"a schema-valid request to {key[0]} {key[1]} was refused with 400 `{body.get('code')}`: "
            f"{body.get('message')!r}; only `{code}` is expected here"
        )
    return None
