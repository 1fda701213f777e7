//! [`CredentialSource`] over the Kubernetes API: Secret keys, ConfigMap keys and
//! TokenRequest tokens. The runtime asks only after the store's credential policy allowed
//! the request, so this module just fetches.

use std::path::PathBuf;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::Client;
use kube::api::{Api, PostParams};
use secrecy::{SecretSlice, SecretString};

use crate::runtime::credentials::{BoxFuture, CredentialError, CredentialSource, Token};

/// Where Kubernetes mounts a pod's service-account token.
pub const IN_CLUSTER_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Requested lifetime of TokenRequest tokens.
const TOKEN_SECONDS: i64 = 3600;

/// Credentials read from the cluster with the operator's own client.
#[derive(Clone)]
pub struct KubeCredentials {
    client: Client,
    operator_token_file: PathBuf,
}

impl std::fmt::Debug for KubeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeCredentials")
            .field("operator_token_file", &self.operator_token_file)
            .finish_non_exhaustive()
    }
}

impl KubeCredentials {
    /// Reads with `client`; the operator token comes from the in-cluster token file.
    pub fn new(client: Client) -> Self {
        KubeCredentials {
            client,
            operator_token_file: PathBuf::from(IN_CLUSTER_TOKEN),
        }
    }

    /// The same, reading the operator token from `path`.
    pub fn with_operator_token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.operator_token_file = path.into();
        self
    }
}

/// Maps an API error: 404 is absence, 401/403 a refusal, the rest unavailability.
fn api_error(e: kube::Error, what: &str) -> CredentialError {
    match &e {
        kube::Error::Api(s) if s.code == 404 => CredentialError::NotFound(what.to_string()),
        kube::Error::Api(s) if s.code == 401 || s.code == 403 => {
            CredentialError::Denied(format!("{what}: {}", s.message))
        }
        _ => CredentialError::Unavailable(format!("{what}: {e}")),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The `exp` claim of a JWT, in milliseconds; the token itself is not verified.
fn jwt_expiry_ms(token: &str) -> Option<u64> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_u64().map(|s| s.saturating_mul(1000))
}

impl CredentialSource for KubeCredentials {
    fn secret_key<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<SecretSlice<u8>, CredentialError>> {
        Box::pin(async move {
            let what = format!("secret {namespace}/{name} key {key}");
            let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
            let secret = api.get(name).await.map_err(|e| api_error(e, &what))?;
            secret
                .data
                .and_then(|mut d| d.remove(key))
                .map(|v| SecretSlice::from(v.0))
                .ok_or(CredentialError::NotFound(what))
        })
    }

    fn config_map_key<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<String, CredentialError>> {
        Box::pin(async move {
            let what = format!("configmap {namespace}/{name} key {key}");
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
            let map = api.get(name).await.map_err(|e| api_error(e, &what))?;
            if let Some(v) = map.data.as_ref().and_then(|d| d.get(key)) {
                return Ok(v.clone());
            }
            map.binary_data
                .and_then(|mut d| d.remove(key))
                .and_then(|v| String::from_utf8(v.0).ok())
                .ok_or(CredentialError::NotFound(what))
        })
    }

    fn service_account_token<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        audiences: &'a [String],
    ) -> BoxFuture<'a, Result<Token, CredentialError>> {
        Box::pin(async move {
            let what = format!("serviceaccount {namespace}/{name}");
            let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
            let request = TokenRequest {
                spec: TokenRequestSpec {
                    audiences: audiences.to_vec(),
                    expiration_seconds: Some(TOKEN_SECONDS),
                    ..TokenRequestSpec::default()
                },
                ..TokenRequest::default()
            };
            let answer = api
                .create_token_request(name, &PostParams::default(), &request)
                .await
                .map_err(|e| api_error(e, &what))?;
            let status = answer.status.ok_or_else(|| {
                CredentialError::Unavailable(format!("{what}: TokenRequest answered no token"))
            })?;
            let expires_at_ms = u64::try_from(status.expiration_timestamp.0.as_millisecond())
                .unwrap_or_else(|_| now_ms());
            Ok(Token {
                token: SecretString::from(status.token),
                expires_at_ms,
            })
        })
    }

    fn service_account_annotation<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        annotation: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, CredentialError>> {
        Box::pin(async move {
            let what = format!("serviceaccount {namespace}/{name}");
            let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
            let account = api.get(name).await.map_err(|e| api_error(e, &what))?;
            Ok(account
                .metadata
                .annotations
                .and_then(|mut a| a.remove(annotation)))
        })
    }

    fn operator_token<'a>(
        &'a self,
        _audiences: &'a [String],
    ) -> BoxFuture<'a, Result<Token, CredentialError>> {
        Box::pin(async move {
            let text = tokio::fs::read_to_string(&self.operator_token_file)
                .await
                .map_err(|e| {
                    CredentialError::NotFound(format!(
                        "operator token {}: {e}",
                        self.operator_token_file.display()
                    ))
                })?;
            let token = text.trim().to_string();
            let expires_at_ms =
                jwt_expiry_ms(&token).unwrap_or_else(|| now_ms().saturating_add(300_000));
            Ok(Token {
                token: SecretString::from(token),
                expires_at_ms,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_of_a_jwt_is_read_from_its_claims() {
        use base64::Engine as _;
        let claims =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"exp":1700000000}"#);
        let token = format!("e30.{claims}.sig");
        assert_eq!(jwt_expiry_ms(&token), Some(1_700_000_000_000));
        assert_eq!(jwt_expiry_ms("not-a-jwt"), None);
    }
}
