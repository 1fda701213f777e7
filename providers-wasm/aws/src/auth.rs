//! Where a store's AWS credentials come from: static keys read through the host's
//! `credentials` import, a service-account token exchanged at STS
//! (AssumeRoleWithWebIdentity), then the `additionalRoles` and `role` chain (AssumeRole
//! with `externalID` and session tags). Temporary credentials are kept in the host's
//! per-store `cache` until shortly before they expire.

use airlock_provider_sdk::credentials::{self, CredentialError, KeySelector as WitKey};
use airlock_provider_sdk::{Error, cache};

use crate::api::{self, AwsError, Target};
use crate::config::{Config, KeySelector};
use crate::sigv4::{self, Credentials};

/// The cache key of the store's temporary credentials.
const CACHE_KEY: &str = "aws-sts-credentials";
/// Temporary credentials are dropped this long before they expire.
const EXPIRY_MARGIN_SECS: u64 = 300;
/// The audience STS expects in a web-identity token.
const STS_AUDIENCE: &str = "sts.amazonaws.com";

fn credential_error(what: &str, e: CredentialError) -> Error {
    match e {
        CredentialError::Denied(m) => Error::access_denied(format!("{what}: {m}")),
        CredentialError::NotFound(m) => Error::invalid_config(format!(
            "{what}: {m} (create it or fix spec.provider.aws.auth)"
        )),
        CredentialError::Unavailable(m) => Error::unavailable(format!("{what}: {m}")),
    }
}

fn secret_text(selector: &KeySelector, what: &str) -> Result<String, Error> {
    let bytes = credentials::secret_key(&WitKey {
        name: selector.name.clone(),
        key: selector.key.clone(),
        namespace: selector.namespace.clone(),
    })
    .map_err(|e| credential_error(what, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::invalid_config(format!("{what}: the value is not UTF-8")))?;
    Ok(text.trim().to_string())
}

/// The credentials to sign service calls with.
pub fn resolve(config: &Config) -> Result<Credentials, Error> {
    let chain = role_chain(config);
    if chain.is_empty()
        && let Some(keys) = &config.auth.secret_ref
    {
        return static_keys(keys);
    }
    if let Some(cached) = cache::get(CACHE_KEY).and_then(|b| decode(&b)) {
        return Ok(cached.0);
    }
    let (credentials, expires) = assume_chain(config, &chain)?;
    let ttl = expires.saturating_sub(api::now() + EXPIRY_MARGIN_SECS);
    if ttl > 0 {
        cache::set(CACHE_KEY, &encode(&credentials, expires), ttl * 1000);
    }
    Ok(credentials)
}

/// Drops cached temporary credentials (after AWS refused them).
pub fn forget() {
    cache::delete(CACHE_KEY);
}

fn static_keys(keys: &crate::config::SecretRefAuth) -> Result<Credentials, Error> {
    Ok(Credentials {
        access_key_id: secret_text(&keys.access_key_id, "auth.secretRef.accessKeyIDSecretRef")?,
        secret_access_key: secret_text(
            &keys.secret_access_key_secret_ref,
            "auth.secretRef.secretAccessKeySecretRef",
        )?,
        session_token: keys
            .session_token_secret_ref
            .as_ref()
            .map(|s| secret_text(s, "auth.secretRef.sessionTokenSecretRef"))
            .transpose()?,
    })
}

/// The ServiceAccount annotation EKS (and ESO) read for the web-identity role.
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// The roles to assume in order: `additionalRoles`, then `role`.
pub fn role_chain(config: &Config) -> Vec<String> {
    let mut chain = config.additional_roles.clone();
    chain.extend(config.role.clone());
    chain
}

fn session_name() -> String {
    format!("airlock-{}", api::now())
}

fn assume_chain(config: &Config, chain: &[String]) -> Result<(Credentials, u64), Error> {
    let endpoint = config.sts_endpoint();
    let sts = Target {
        endpoint: &endpoint,
        region: &config.region,
        service: "sts",
    };
    let last = chain.len().saturating_sub(1);
    let (mut current, mut expires, rest) = match (&config.auth.secret_ref, &config.auth.jwt) {
        (Some(keys), _) => (static_keys(keys)?, u64::MAX, chain),
        (None, Some(jwt)) => {
            let mut audiences = vec![STS_AUDIENCE.to_string()];
            audiences.extend(jwt.service_account_ref.audiences.iter().cloned());
            let token = credentials::service_account_token(&credentials::ServiceAccountSelector {
                name: jwt.service_account_ref.name.clone(),
                namespace: jwt.service_account_ref.namespace.clone(),
                audiences,
            })
            .map_err(|e| credential_error("auth.jwt.serviceAccountRef", e))?;
            // As ESO (and EKS IRSA): the role the token may assume is the ServiceAccount's
            // `eks.amazonaws.com/role-arn` annotation, then `additionalRoles` and `role`
            // are assumed from there. Without the annotation, the first role of the chain
            // is assumed with the token.
            let annotated = credentials::service_account_annotation(
                &credentials::ServiceAccountSelector {
                    name: jwt.service_account_ref.name.clone(),
                    namespace: jwt.service_account_ref.namespace.clone(),
                    audiences: Vec::new(),
                },
                ROLE_ARN_ANNOTATION,
            )
            .map_err(|e| credential_error("auth.jwt.serviceAccountRef", e))?;
            let (web_role, rest) = match (annotated, chain.split_first()) {
                (Some(role), _) => (role, chain),
                (None, Some((first, rest))) => (first.clone(), rest),
                (None, None) => {
                    return Err(Error::invalid_config(format!(
                        "spec.provider.aws.auth.jwt: the ServiceAccount {} has no {ROLE_ARN_ANNOTATION} annotation and spec.provider.aws.role is not set: annotate the ServiceAccount with the IAM role to assume, or set role",
                        jwt.service_account_ref.name
                    )));
                }
            };
            let params = vec![
                ("RoleArn".to_string(), web_role),
                ("RoleSessionName".to_string(), session_name()),
                ("WebIdentityToken".to_string(), token.token),
            ];
            let xml = api::call_query(sts, "AssumeRoleWithWebIdentity", &params, None)
                .map_err(AwsError::into_error)?;
            let (c, e) = parse_credentials(&xml, "AssumeRoleWithWebIdentity")?;
            (c, e, rest)
        }
        (None, None) => return Err(Error::invalid_config("spec.provider.aws.auth is empty")),
    };
    let offset = chain.len() - rest.len();
    for (i, role) in rest.iter().enumerate() {
        let is_final = offset + i == last && config.role.is_some();
        let params = assume_role_params(config, role, is_final);
        let xml = api::call_query(sts, "AssumeRole", &params, Some(&current))
            .map_err(AwsError::into_error)?;
        let (c, e) = parse_credentials(&xml, "AssumeRole")?;
        current = c;
        expires = expires.min(e);
    }
    Ok((current, expires))
}

/// AssumeRole's parameters; `externalID` and session tags go with the final `role`.
pub fn assume_role_params(config: &Config, role: &str, is_final: bool) -> Vec<(String, String)> {
    let mut params = vec![
        ("RoleArn".to_string(), role.to_string()),
        ("RoleSessionName".to_string(), session_name()),
    ];
    if !is_final {
        return params;
    }
    if let Some(id) = &config.external_id {
        params.push(("ExternalId".into(), id.clone()));
    }
    for (i, tag) in config.session_tags.iter().enumerate() {
        let n = i + 1;
        params.push((format!("Tags.member.{n}.Key"), tag.key.clone()));
        params.push((format!("Tags.member.{n}.Value"), tag.value.clone()));
    }
    for (i, key) in config.transitive_tag_keys.iter().enumerate() {
        params.push((format!("TransitiveTagKeys.member.{}", i + 1), key.clone()));
    }
    params
}

/// The credentials and their expiry (Unix seconds) in an STS answer.
pub fn parse_credentials(xml: &str, operation: &str) -> Result<(Credentials, u64), Error> {
    let field = |tag: &str| {
        api::xml_text(xml, tag)
            .ok_or_else(|| Error::other(format!("aws {operation}: the answer has no {tag}")))
    };
    let expiration = field("Expiration")?;
    let expires = sigv4::parse_iso8601(&expiration).ok_or_else(|| {
        Error::other(format!(
            "aws {operation}: cannot read Expiration {expiration:?}"
        ))
    })?;
    Ok((
        Credentials {
            access_key_id: field("AccessKeyId")?,
            secret_access_key: field("SecretAccessKey")?,
            session_token: Some(field("SessionToken")?),
        },
        expires,
    ))
}

fn encode(c: &Credentials, expires: u64) -> Vec<u8> {
    serde_json::json!({
        "a": c.access_key_id, "s": c.secret_access_key, "t": c.session_token, "e": expires
    })
    .to_string()
    .into_bytes()
}

fn decode(bytes: &[u8]) -> Option<(Credentials, u64)> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Some((
        Credentials {
            access_key_id: v["a"].as_str()?.to_string(),
            secret_access_key: v["s"].as_str()?.to_string(),
            session_token: v["t"].as_str().map(str::to_string),
        },
        v["e"].as_u64()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> Config {
        let mut base = serde_json::json!({
            "service": "SecretsManager", "region": "us-east-1",
            "auth": {"secretRef": {
                "accessKeyIDSecretRef": {"name": "a", "key": "id"},
                "secretAccessKeySecretRef": {"name": "a", "key": "secret"}}}
        });
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        Config::parse(&base.to_string()).unwrap()
    }

    #[test]
    fn additional_roles_come_before_the_role() {
        let c = config(serde_json::json!({"role": "arn:r", "additionalRoles": ["arn:a", "arn:b"]}));
        assert_eq!(role_chain(&c), ["arn:a", "arn:b", "arn:r"]);
        assert!(role_chain(&config(serde_json::json!({}))).is_empty());
    }

    #[test]
    fn the_final_role_carries_external_id_and_session_tags() {
        let c = config(serde_json::json!({
            "role": "arn:r", "externalID": "ext-1",
            "sessionTags": [{"key": "team", "value": "a"}], "transitiveTagKeys": ["team"]
        }));
        let p = assume_role_params(&c, "arn:r", true);
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("RoleArn"), Some("arn:r"));
        assert_eq!(get("ExternalId"), Some("ext-1"));
        assert_eq!(get("Tags.member.1.Key"), Some("team"));
        assert_eq!(get("Tags.member.1.Value"), Some("a"));
        assert_eq!(get("TransitiveTagKeys.member.1"), Some("team"));
        assert_eq!(assume_role_params(&c, "arn:a", false).len(), 2);
    }

    #[test]
    fn sts_answers_parse_into_credentials_with_expiry() {
        let xml = "<AssumeRoleResponse><AssumeRoleResult><Credentials>\
            <AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>s3cr3t</SecretAccessKey>\
            <SessionToken>tok</SessionToken><Expiration>2015-08-30T12:36:00Z</Expiration>\
            </Credentials></AssumeRoleResult></AssumeRoleResponse>";
        let (c, e) = parse_credentials(xml, "AssumeRole").unwrap();
        assert_eq!(c.access_key_id, "ASIA1");
        assert_eq!(c.session_token.as_deref(), Some("tok"));
        assert_eq!(e, 1_440_938_160);
        assert_eq!(decode(&encode(&c, e)), Some((c, e)));
        assert!(parse_credentials("<x/>", "AssumeRole").is_err());
    }
}
