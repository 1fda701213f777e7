//! Access tokens: for a service-account key the OAuth 2.0 JWT-bearer grant
//! (<https://developers.google.com/identity/protocols/oauth2/service-account>), for GKE
//! Workload Identity the exchange in [`crate::workload_identity`]. Either is kept in the
//! host's per-store cache until a minute before it expires.

use std::time::{SystemTime, UNIX_EPOCH};

use airlock_provider_sdk::http::{self, Request, Response};
use airlock_provider_sdk::{Error, cache, credential_error, credentials};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding, Signer};
use serde::Deserialize;

use crate::config::{Config, SecretRef};

/// Cache key of the access token (the host's cache is per store).
const TOKEN_KEY: &str = "gcpsm-access-token";
/// The scope ESO asks for.
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's token endpoint when a key file names none.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// How long before its expiry a token is fetched again.
const EARLY_MS: u64 = 60_000;

/// The fields of a service-account key file this provider uses.
#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

/// An access token and how long it lives.
pub struct Grant {
    /// The Bearer token.
    pub token: String,
    /// Its remaining lifetime in milliseconds.
    pub life_ms: u64,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("life_ms", &self.life_ms)
            .finish_non_exhaustive()
    }
}

/// The cached access token, or a new one from the store's auth.
pub fn access_token(config: &Config) -> Result<String, Error> {
    if let Some(token) = cache::get(TOKEN_KEY).and_then(|b| String::from_utf8(b).ok()) {
        return Ok(token);
    }
    // ESO's order: a key, then Workload Identity, then Federation.
    let auth = &config.auth;
    let grant = if let Some(secret_ref) = &auth.secret_ref {
        key_grant(secret_ref)?
    } else if let Some(wi) = &auth.workload_identity {
        crate::workload_identity::grant(wi)?
    } else if let Some(federation) = &auth.workload_identity_federation {
        crate::workload_identity::federated_grant(federation)?
    } else {
        return Err(Error::invalid_config(
            "spec.provider.gcpsm.auth needs secretRef.secretAccessKeySecretRef, workloadIdentity or workloadIdentityFederation",
        ));
    };
    if grant.life_ms > EARLY_MS {
        cache::set(TOKEN_KEY, grant.token.as_bytes(), grant.life_ms - EARLY_MS);
    }
    Ok(grant.token)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A token from the key file in `secret_ref`.
fn key_grant(secret_ref: &SecretRef) -> Result<Grant, Error> {
    let field = "auth.secretRef.secretAccessKeySecretRef";
    let selector = &secret_ref.secret_access_key_secret_ref;
    let bytes = credentials::secret_key(&credentials::KeySelector {
        name: selector.name.clone(),
        key: selector.key.clone(),
        namespace: selector.namespace.clone(),
    })
    .map_err(|e| credential_error(field, e))?;
    // The key's parse error could quote key material: say only what is wrong.
    let key: KeyFile = serde_json::from_slice(&bytes).map_err(|_| {
        Error::invalid_config(format!(
            "{field} is not a service-account key file (JSON with client_email and private_key)"
        ))
    })?;
    let token_uri = key.token_uri.as_deref().unwrap_or(DEFAULT_TOKEN_URI);
    let assertion = sign(&key, token_uri, now_secs())
        .map_err(|m| Error::invalid_config(format!("{field}: {m}")))?;
    let body = format!(
        "grant_type={}&assertion={}",
        http::encode("urn:ietf:params:oauth:grant-type:jwt-bearer"),
        http::encode(&assertion)
    );
    let request = Request::new("POST", token_uri)
        .header("Accept", "application/json")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    let what = "the token request";
    let response = http::send(&request).map_err(|e| crate::explain_refusal(token_uri, e, what))?;
    oauth_answer(&response, what)
}

/// The token of an OAuth 2.0 token answer (`access_token`, `expires_in`), or the error it
/// stands for: a refused grant (400 `invalid_grant`, 401, 403) is access denied.
pub fn oauth_answer(response: &Response, what: &str) -> Result<Grant, Error> {
    if !response.is_success() {
        let text = response.describe("gcpsm", what, &crate::message(response));
        return Err(match response.status {
            400 | 401 | 403 => Error::access_denied(text),
            _ => response.status_error(text),
        });
    }
    let answer = crate::parse(response, what)?;
    let Some(token) = answer["access_token"].as_str().filter(|t| !t.is_empty()) else {
        return Err(Error::other(format!(
            "gcpsm: the answer to {what} has no access_token"
        )));
    };
    Ok(Grant {
        token: token.to_string(),
        life_ms: answer["expires_in"].as_u64().unwrap_or(300) * 1000,
    })
}

/// Drops the cached token.
pub fn forget() {
    cache::delete(TOKEN_KEY);
}

/// The RS256-signed assertion for `key` at `now` (seconds).
fn sign(key: &KeyFile, audience: &str, now: u64) -> Result<String, String> {
    let private = RsaPrivateKey::from_pkcs8_pem(&key.private_key)
        .map_err(|_| "private_key is not a PKCS#8 RSA key".to_string())?;
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(id) = &key.private_key_id {
        header["kid"] = id.clone().into();
    }
    let claims = serde_json::json!({
        "iss": key.client_email,
        "scope": CLOUD_PLATFORM,
        "aud": audience,
        "iat": now,
        "exp": now + 3600,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = SigningKey::<Sha256>::new(private).sign(input.as_bytes());
    Ok(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assertion_is_three_parts_naming_the_account_and_audience() {
        let pem = include_str!("../../../tests/data/gcpsm/sa-key.pem");
        let key = KeyFile {
            client_email: "a@p.iam.gserviceaccount.com".into(),
            private_key: pem.into(),
            private_key_id: Some("k1".into()),
            token_uri: None,
        };
        let jwt = sign(&key, DEFAULT_TOKEN_URI, 1000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], DEFAULT_TOKEN_URI);
        assert_eq!(claims["exp"], 4600);
        let bad = KeyFile {
            private_key: "not a key".into(),
            ..key
        };
        assert!(sign(&bad, DEFAULT_TOKEN_URI, 0).is_err());
    }
}
