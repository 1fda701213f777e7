//! Access tokens for Key Vault: Entra ID's v2.0 client-credentials flow (client secret or
//! a federated ServiceAccount token) and the IMDS managed-identity endpoint. A token is
//! kept in the host's per-store cache until five minutes before it expires.

use airlock_provider_sdk::credentials::{self, KeySelector as WitKey, ServiceAccountSelector};
use airlock_provider_sdk::http::{self, Request, Response};
use airlock_provider_sdk::{Error, cache, credential_error};
use serde_json::Value as Json;

use crate::config::{AccountSelector, Auth, Config, KeySelector, TenantSource};

/// The IMDS token endpoint (plain HTTP on the link-local address, by design of Azure).
pub const IMDS_URL: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// The IMDS API version asked for.
pub const IMDS_API_VERSION: &str = "2018-02-01";
/// The audience Entra ID expects on a federated Kubernetes token.
pub const FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";
/// `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long before its expiry a cached token is given up.
pub const EXPIRY_MARGIN_SECS: u64 = 300;

const CACHE_KEY: &str = "access-token";

/// Where a store's tokens come from.
#[derive(Debug)]
pub struct Tokens<'a> {
    config: &'a Config,
}

impl<'a> Tokens<'a> {
    /// Tokens for `config`.
    pub fn new(config: &'a Config) -> Self {
        Tokens { config }
    }

    /// A token for the vault: the cached one, or a new one.
    pub fn get(&self) -> Result<String, Error> {
        if let Some(token) = cache::get(CACHE_KEY).and_then(|t| String::from_utf8(t).ok()) {
            return Ok(token);
        }
        let (token, expires_in) = self.fetch()?;
        if expires_in > EXPIRY_MARGIN_SECS {
            cache::set(
                CACHE_KEY,
                token.as_bytes(),
                (expires_in - EXPIRY_MARGIN_SECS) * 1000,
            );
        }
        Ok(token)
    }

    /// Forgets the cached token (the vault refused it).
    pub fn forget(&self) {
        cache::delete(CACHE_KEY);
    }

    fn fetch(&self) -> Result<(String, u64), Error> {
        match &self.config.auth {
            Auth::ServicePrincipal {
                tenant,
                client_id,
                client_secret,
                client_certificate,
            } => {
                let client_id = text(client_id, "authSecretRef.clientId")?;
                match (client_secret, client_certificate) {
                    (Some(secret), _) => {
                        let secret = text(secret, "authSecretRef.clientSecret")?;
                        self.client_credentials(tenant, &client_id, &[("client_secret", &secret)])
                    }
                    (None, Some(certificate)) => {
                        let pem = text(certificate, "authSecretRef.clientCertificate")?;
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs())
                            .unwrap_or(0);
                        let jwt = crate::certificate::assertion(
                            &pem,
                            &client_id,
                            &self.token_url(tenant)?,
                            now,
                        )?;
                        self.client_credentials(
                            tenant,
                            &client_id,
                            &[
                                ("client_assertion_type", JWT_BEARER),
                                ("client_assertion", &jwt),
                            ],
                        )
                    }
                    (None, None) => Err(Error::invalid_config(
                        "authSecretRef needs clientSecret or clientCertificate",
                    )),
                }
            }
            Auth::ManagedIdentity { identity } => imds(&self.config.resource, identity.as_deref()),
            Auth::WorkloadIdentity {
                account,
                tenant,
                client_id,
            } => {
                let tenant = match tenant {
                    Some(TenantSource::Literal(t)) => t.clone(),
                    Some(TenantSource::Secret(s)) => text(s, "authSecretRef.tenantId")?,
                    None => annotation(account, "azure.workload.identity/tenant-id")?,
                };
                let client_id = match client_id {
                    Some(s) => text(s, "authSecretRef.clientId")?,
                    None => annotation(account, "azure.workload.identity/client-id")?,
                };
                let audiences = if account.audiences.is_empty() {
                    vec![FEDERATED_AUDIENCE.to_string()]
                } else {
                    account.audiences.clone()
                };
                let jwt = credentials::service_account_token(&ServiceAccountSelector {
                    name: account.name.clone(),
                    namespace: account.namespace.clone(),
                    audiences,
                })
                .map_err(|e| credential_error("serviceAccountRef", e))?;
                self.client_credentials(
                    &tenant,
                    &client_id,
                    &[
                        ("client_assertion_type", JWT_BEARER),
                        ("client_assertion", &jwt.token),
                    ],
                )
            }
        }
    }

    /// `{authority}{tenant}/oauth2/v2.0/token`, the tenant checked.
    fn token_url(&self, tenant: &str) -> Result<String, Error> {
        if tenant.is_empty()
            || !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
        {
            return Err(Error::invalid_config(format!(
                "tenant ID {tenant:?} is not a directory ID or domain"
            )));
        }
        Ok(format!(
            "{}{tenant}/oauth2/v2.0/token",
            self.config.authority
        ))
    }

    fn client_credentials(
        &self,
        tenant: &str,
        client_id: &str,
        proof: &[(&str, &str)],
    ) -> Result<(String, u64), Error> {
        let url = self.token_url(tenant)?;
        let scope = format!("{}/.default", self.config.resource);
        let mut fields = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("scope", scope.as_str()),
        ];
        fields.extend_from_slice(proof);
        let request = Request::new("POST", &url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(form(&fields));
        let response = send(&request, "the Entra ID token endpoint")?;
        token_from(&response, "Entra ID", &url)
    }
}

fn imds(resource: &str, identity: Option<&str>) -> Result<(String, u64), Error> {
    let mut url = format!(
        "{IMDS_URL}?api-version={IMDS_API_VERSION}&resource={}",
        encode(resource)
    );
    // ESO's rule: an ARM resource ID starts with `/`, anything else is a client ID.
    match identity {
        Some(id) if id.starts_with('/') => url.push_str(&format!("&msi_res_id={}", encode(id))),
        Some(id) => url.push_str(&format!("&client_id={}", encode(id))),
        None => {}
    }
    let request = Request::new("GET", &url)
        .header("Metadata", "true")
        .header("Accept", "application/json");
    let response = send(&request, "the IMDS endpoint 169.254.169.254")?;
    token_from(&response, "IMDS", IMDS_URL)
}

fn send(request: &Request, what: &str) -> Result<Response, Error> {
    http::send(request).map_err(|e| match e {
        Error::Unavailable(m) if m.contains("denied") => Error::Unavailable(format!(
            "{m}; to reach {what}, add {} to spec.allowedOutboundHosts of the Provider \"azurekv\"",
            origin(&request.url)
        )),
        other => other,
    })
}

/// `scheme://host[:port]` of a URL.
pub fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{authority}")
}

fn token_from(response: &Response, vendor: &str, url: &str) -> Result<(String, u64), Error> {
    let body: Json = serde_json::from_slice(&response.body).unwrap_or(Json::Null);
    if !response.is_success() {
        // AADSTS descriptions end with trace and correlation IDs; the first sentence says it.
        let description = body["error_description"]
            .as_str()
            .map(|d| d.split(" Trace ID:").next().unwrap_or(d).trim().to_string())
            .unwrap_or_default();
        let code = body["error"].as_str().unwrap_or_default();
        let message = match (code, description.as_str()) {
            ("", "") => String::new(),
            (c, "") => c.to_string(),
            ("", d) => d.to_string(),
            (c, d) => format!("{c}: {d}"),
        };
        let text = response.describe(vendor, &format!("POST {}", origin(url)), &message);
        return Err(match response.status {
            400 | 401 | 403 => Error::access_denied(text),
            _ => response.status_error(text),
        });
    }
    let token = body["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::other(format!("{vendor}'s token answer has no access_token")))?;
    // Entra ID sends a number, IMDS a string.
    let expires_in = match &body["expires_in"] {
        Json::Number(n) => n.as_u64(),
        Json::String(s) => s.parse().ok(),
        _ => None,
    }
    .unwrap_or(0);
    Ok((token.to_string(), expires_in))
}

fn text(selector: &KeySelector, field: &str) -> Result<String, Error> {
    let bytes = credentials::secret_key(&WitKey {
        name: selector.name.clone(),
        key: selector.key.clone(),
        namespace: selector.namespace.clone(),
    })
    .map_err(|e| credential_error(field, e))?;
    let value = String::from_utf8(bytes)
        .map_err(|_| Error::invalid_config(format!("{field} is not UTF-8")))?
        .trim()
        .to_string();
    if value.is_empty() {
        return Err(Error::invalid_config(format!("{field} is empty")));
    }
    Ok(value)
}

fn annotation(account: &AccountSelector, name: &str) -> Result<String, Error> {
    let selector = ServiceAccountSelector {
        name: account.name.clone(),
        namespace: account.namespace.clone(),
        audiences: Vec::new(),
    };
    credentials::service_account_annotation(&selector, name)
        .map_err(|e| credential_error("serviceAccountRef", e))?
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            Error::invalid_config(format!(
                "ServiceAccount {:?} has no annotation {name} and the store does not name it",
                account.name
            ))
        })
}

/// Form bodies and URL components, encoded as every provider does.
pub use airlock_provider_sdk::http::{encode, form};

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn aadsts_errors_are_access_denied_with_their_first_sentence() {
        let e = token_from(
            &response(
                401,
                r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Trace ID: x Correlation ID: y"}"#,
            ),
            "Entra ID",
            "https://login.microsoftonline.com/t/oauth2/v2.0/token",
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::AccessDenied(m) if m == "Entra ID answered 401 to POST https://login.microsoftonline.com: invalid_client: AADSTS7000215: Invalid client secret provided."),
            "{e:?}"
        );
    }

    #[test]
    fn imds_sends_expires_in_as_a_string() {
        let (token, expires) = token_from(
            &response(200, r#"{"access_token":"t","expires_in":"3599"}"#),
            "IMDS",
            IMDS_URL,
        )
        .unwrap();
        assert_eq!((token.as_str(), expires), ("t", 3599));
    }

    #[test]
    fn forms_encode_reserved_characters() {
        assert_eq!(
            form(&[
                ("scope", "https://vault.azure.net/.default"),
                ("a b", "c&d")
            ]),
            "scope=https%3A%2F%2Fvault.azure.net%2F.default&a%20b=c%26d"
        );
    }
}
