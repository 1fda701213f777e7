//! Getting a Vault token for a store, and keeping it.
//!
//! Every call runs in a fresh instance, so a login token lives in the host's per-store
//! `cache`: one login, then the same token until shortly before its TTL runs out. A
//! renewable token is renewed (`renew-self`) once two thirds of its lease have passed; a
//! token that cannot be renewed, or that the server no longer accepts, is replaced by a new
//! login. A static `tokenSecretRef` token is read from its Secret on every call and never
//! cached or revoked.

use std::time::{SystemTime, UNIX_EPOCH};

use airlock_provider_sdk::credentials::{self, CredentialError, KeySelector as WitKey};
use airlock_provider_sdk::{Error, cache, credential_error, log};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::api::{self, Api, Call};
use crate::config::{AccountSelector, Auth, Config, KeySelector, Method};

/// Cache key of the login token.
const TOKEN_KEY: &str = "vault-login-token";
/// How long a token without expiry (a root or periodic token) is trusted before it is
/// checked again by a new login.
const NO_EXPIRY_TTL_MS: u64 = 3600 * 1000;

/// A token to send as `X-Vault-Token`.
pub struct Token {
    /// The token. Secret.
    pub value: String,
    /// Whether it came from the cache (and may have been revoked since).
    pub cached: bool,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("cached", &self.cached)
            .finish_non_exhaustive()
    }
}

/// The cached login.
#[derive(Serialize, Deserialize)]
struct Cached {
    token: String,
    /// When it was issued or last renewed.
    issued_ms: u64,
    /// Its lease in seconds at that time; 0 for no expiry.
    lease_s: u64,
    renewable: bool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Time kept in hand before a token's expiry: a tenth of its lease, 1 s to 60 s.
fn margin_ms(lease_s: u64) -> u64 {
    (lease_s * 100).clamp(1000, 60_000)
}

impl Cached {
    fn expires_ms(&self) -> Option<u64> {
        (self.lease_s > 0).then(|| self.issued_ms + self.lease_s * 1000)
    }

    fn ttl_ms(&self) -> u64 {
        match self.expires_ms() {
            Some(exp) => exp
                .saturating_sub(margin_ms(self.lease_s))
                .saturating_sub(now_ms())
                .max(1),
            None => NO_EXPIRY_TTL_MS,
        }
    }

    fn store(&self) {
        if let Ok(bytes) = serde_json::to_vec(self) {
            cache::set(TOKEN_KEY, &bytes, self.ttl_ms());
        }
    }
}

/// Logs in (or not) and keeps tokens for one store.
#[derive(Debug)]
pub struct Authenticator<'a> {
    api: &'a Api,
    config: &'a Config,
}

impl<'a> Authenticator<'a> {
    /// For the store's configuration.
    pub fn new(api: &'a Api, config: &'a Config) -> Self {
        Authenticator { api, config }
    }

    fn auth(&self) -> &Auth {
        self.config.auth.as_ref().expect("checked by Config::parse")
    }

    /// A usable token: the static one, the cached login, a renewed one or a new login.
    pub fn token(&self) -> Result<Token, Error> {
        let auth = self.auth();
        if let Some(selector) = &auth.token_secret_ref {
            let bytes = secret(selector, "auth.tokenSecretRef")?;
            let value = String::from_utf8(bytes)
                .map_err(|_| Error::invalid_config("auth.tokenSecretRef: the token is not text"))?
                .trim()
                .to_string();
            return Ok(Token {
                value,
                cached: false,
            });
        }
        if let Some(cached) =
            cache::get(TOKEN_KEY).and_then(|b| serde_json::from_slice::<Cached>(&b).ok())
        {
            let now = now_ms();
            match cached.expires_ms() {
                None => return Ok(cached_token(cached)),
                Some(exp) if now + margin_ms(cached.lease_s) < exp => {
                    let renew_at = cached.issued_ms + cached.lease_s * 1000 * 2 / 3;
                    if cached.renewable && now >= renew_at {
                        match self.renew(&cached.token) {
                            Ok(renewed) => return Ok(cached_token(renewed)),
                            Err(e) => log::log(
                                log::Level::Info,
                                &format!(
                                    "renewing the vault token failed, logging in again: {}",
                                    describe(&e)
                                ),
                            ),
                        }
                    } else {
                        return Ok(cached_token(cached));
                    }
                }
                Some(_) => {}
            }
        }
        self.login()
    }

    /// Forgets the cached token (the server no longer accepts it).
    pub fn forget(&self) {
        cache::delete(TOKEN_KEY);
    }

    /// Whether `token` is still valid on the server (`lookup-self`).
    pub fn still_valid(&self, token: &str) -> Result<bool, Error> {
        let response = self
            .api
            .send(&Call::new("GET", "auth/token/lookup-self"), Some(token))?;
        match response.status {
            200..=299 => Ok(true),
            401 | 403 => Ok(false),
            _ => Err(api::error("GET auth/token/lookup-self", &response)),
        }
    }

    fn renew(&self, token: &str) -> Result<Cached, Error> {
        let what = "POST auth/token/renew-self";
        let response = self.api.send(
            &Call::new("POST", "auth/token/renew-self").json(json!({})),
            Some(token),
        )?;
        if !response.is_success() {
            return Err(api::error(what, &response));
        }
        let cached = parse_auth(what, &api::body(what, &response)?)?;
        cached.store();
        Ok(cached)
    }

    /// Logs in with the configured method and caches the token.
    pub fn login(&self) -> Result<Token, Error> {
        let auth = self.auth();
        let (path, body) = match auth.method()? {
            Method::Token => unreachable!("static tokens are handled before"),
            Method::AppRole => {
                let a = auth.app_role.as_ref().expect("method checked");
                let role_id = match (&a.role_id, &a.role_ref) {
                    (Some(id), _) if !id.is_empty() => id.clone(),
                    (_, Some(selector)) => text(secret(selector, "auth.appRole.roleRef")?),
                    _ => {
                        return Err(Error::invalid_config(
                            "auth.appRole needs roleId or roleRef",
                        ));
                    }
                };
                let secret_id = text(secret(&a.secret_ref, "auth.appRole.secretRef")?);
                (
                    format!("auth/{}/login", trim(&a.path)),
                    json!({"role_id": role_id, "secret_id": secret_id}),
                )
            }
            Method::Kubernetes => {
                let k = auth.kubernetes.as_ref().expect("method checked");
                let jwt = match (&k.service_account_ref, &k.secret_ref) {
                    (Some(account), _) => account_token(account, &account.audiences)?,
                    (None, Some(selector)) => text(secret(selector, "auth.kubernetes.secretRef")?),
                    (None, None) => operator_token()?,
                };
                (
                    format!("auth/{}/login", trim(&k.mount_path)),
                    json!({"role": k.role, "jwt": jwt}),
                )
            }
            Method::Jwt => {
                let j = auth.jwt.as_ref().expect("method checked");
                let jwt = match (&j.kubernetes_service_account_token, &j.secret_ref) {
                    (Some(sat), _) => {
                        let audiences = sat
                            .audiences
                            .clone()
                            .filter(|a| !a.is_empty())
                            .unwrap_or_else(|| vec!["vault".to_string()]);
                        let mut all = sat.service_account_ref.audiences.clone();
                        all.extend(audiences);
                        all.dedup();
                        account_token(&sat.service_account_ref, &all)?
                    }
                    (None, Some(selector)) => text(secret(selector, "auth.jwt.secretRef")?),
                    (None, None) => {
                        return Err(Error::invalid_config(
                            "auth.jwt needs secretRef or kubernetesServiceAccountToken",
                        ));
                    }
                };
                let mut body = json!({"jwt": jwt});
                if let Some(role) = &j.role {
                    body["role"] = json!(role);
                }
                (format!("auth/{}/login", trim(&j.path)), body)
            }
            Method::UserPass => {
                let u = auth.user_pass.as_ref().expect("method checked");
                let password = text(secret(&u.secret_ref, "auth.userPass.secretRef")?);
                (
                    format!(
                        "auth/{}/login/{}",
                        trim(&u.path),
                        airlock_provider_sdk::http::encode(&u.username)
                    ),
                    json!({"password": password}),
                )
            }
            Method::Cert => {
                let c = auth.cert.as_ref().expect("method checked");
                let mut body = json!({});
                if let Some(role) = c.vault_role.as_deref().filter(|r| !r.is_empty()) {
                    body["name"] = json!(role);
                }
                (format!("auth/{}/login", trim(&c.path)), body)
            }
        };
        let what = format!("POST {path} (login)");
        let namespace = auth.namespace.as_deref();
        let call = Call {
            method: "POST",
            path: &path,
            body: Some(body),
            namespace,
        };
        let response = self.api.send(&call, None)?;
        if !response.is_success() {
            return Err(match api::error(&what, &response) {
                // A failed login is a credentials problem whatever status Vault picked.
                Error::InvalidRequest(m) | Error::Other(m) => Error::AccessDenied(m),
                other => other,
            });
        }
        let cached = parse_auth(&what, &api::body(&what, &response)?)?;
        cached.store();
        log::log(
            log::Level::Info,
            &format!(
                "logged in to vault at {} ({path}), token lease {} s",
                self.api.server(),
                cached.lease_s
            ),
        );
        Ok(Token {
            value: cached.token,
            cached: false,
        })
    }
}

fn cached_token(cached: Cached) -> Token {
    Token {
        value: cached.token,
        cached: true,
    }
}

fn describe(e: &Error) -> String {
    match e {
        Error::InvalidConfig(m)
        | Error::InvalidRequest(m)
        | Error::AccessDenied(m)
        | Error::Unavailable(m)
        | Error::Unsupported(m)
        | Error::Other(m) => m.clone(),
        Error::RateLimited(r) => r.message.clone(),
    }
}

fn trim(path: &str) -> &str {
    path.trim_matches('/')
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// The `auth` block of a login or renewal answer.
fn parse_auth(what: &str, body: &Json) -> Result<Cached, Error> {
    let auth = body
        .get("auth")
        .filter(|a| !a.is_null())
        .ok_or_else(|| Error::other(format!("vault's answer to {what} has no auth block")))?;
    let token = auth
        .get("client_token")
        .and_then(Json::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::other(format!("vault's answer to {what} has no client_token")))?;
    Ok(Cached {
        token: token.to_string(),
        issued_ms: now_ms(),
        lease_s: auth
            .get("lease_duration")
            .and_then(Json::as_u64)
            .unwrap_or(0),
        renewable: auth
            .get("renewable")
            .and_then(Json::as_bool)
            .unwrap_or(false),
    })
}

/// Reads a Secret key through the host.
fn secret(selector: &KeySelector, field: &str) -> Result<Vec<u8>, Error> {
    credentials::secret_key(&WitKey {
        name: selector.name.clone(),
        key: selector.key.clone(),
        namespace: selector.namespace.clone(),
    })
    .map_err(|e| credential_error(field, e))
}

fn account_token(account: &AccountSelector, audiences: &[String]) -> Result<String, Error> {
    credentials::service_account_token(&credentials::ServiceAccountSelector {
        name: account.name.clone(),
        namespace: account.namespace.clone(),
        audiences: audiences.to_vec(),
    })
    .map(|t| t.token)
    .map_err(|e| credential_error("serviceAccountRef", e))
}

fn operator_token() -> Result<String, Error> {
    credentials::operator_token(&[])
        .map(|t| t.token)
        .map_err(|e| match e {
            CredentialError::Denied(m) => Error::access_denied(format!(
                "auth.kubernetes names neither serviceAccountRef nor secretRef, so it needs the operator's own service-account token: {m}"
            )),
            other => credential_error("the operator's service-account token", other),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_answer_gives_token_lease_and_renewability() {
        let body =
            json!({"auth": {"client_token": "s.x", "lease_duration": 3600, "renewable": true}});
        let c = parse_auth("login", &body).unwrap();
        assert_eq!((c.lease_s, c.renewable), (3600, true));
        assert_eq!(c.expires_ms(), Some(c.issued_ms + 3_600_000));
        // Cached until a minute before expiry.
        assert!(c.ttl_ms() <= 3_540_000 && c.ttl_ms() > 3_500_000);
        assert!(parse_auth("login", &json!({"auth": null})).is_err());
    }

    #[test]
    fn margins_stay_between_one_second_and_a_minute() {
        assert_eq!(margin_ms(1), 1000);
        assert_eq!(margin_ms(60), 6000);
        assert_eq!(margin_ms(86_400), 60_000);
    }
}
