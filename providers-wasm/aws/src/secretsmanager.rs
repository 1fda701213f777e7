//! Secrets Manager: GetSecretValue, BatchGetSecretValue, ListSecrets, DescribeSecret,
//! CreateSecret, PutSecretValue, DeleteSecret.

use airlock_provider_sdk::find::NameMatcher;
use airlock_provider_sdk::paging::for_each_page;
use airlock_provider_sdk::{
    Error, Find, PushRef, PushRequest, RemoteRef, SecretEntry, Value, json,
};
use serde_json::{Value as Json, json};

use crate::api::AwsError;
use crate::{AwsClient, MANAGED_BY_KEY, MANAGED_BY_VALUE, metadata_json, select};

/// BatchGetSecretValue takes at most this many ids.
const BATCH: usize = 20;

fn call(client: &AwsClient, operation: &str, body: Json) -> Result<Json, AwsError> {
    client.call("secretsmanager", operation, body)
}

/// Whether an error means "there is no such secret (or version)".
fn is_absent(e: &AwsError) -> bool {
    e.is("ResourceNotFoundException")
        || (e.is("InvalidRequestException") && e.message.contains("marked for deletion"))
}

/// The request selecting `version`: `uuid/<id>` is a version id, anything else a stage.
pub fn version_fields(body: &mut Json, version: Option<&str>) {
    match version {
        Some(v) if v.starts_with("uuid/") => body["VersionId"] = v["uuid/".len()..].into(),
        Some(v) if !v.is_empty() => body["VersionStage"] = v.into(),
        _ => {}
    }
}

/// The value bytes of a GetSecretValue-shaped answer.
pub fn value_of(answer: &Json) -> Result<Option<Vec<u8>>, Error> {
    if let Some(s) = answer.get("SecretString").and_then(Json::as_str) {
        return Ok(Some(s.as_bytes().to_vec()));
    }
    if let Some(b) = answer.get("SecretBinary").and_then(Json::as_str) {
        return crate::base64_decode(b)
            .map(Some)
            .ok_or_else(|| Error::other("aws: SecretBinary is not base64"));
    }
    Ok(None)
}

fn get_whole(client: &AwsClient, key: &str, version: Option<&str>) -> Result<Value, Error> {
    let mut body = json!({"SecretId": key});
    version_fields(&mut body, version);
    match call(client, "GetSecretValue", body) {
        Ok(answer) => value_of(&answer),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(e.into_error()),
    }
}

fn describe(client: &AwsClient, key: &str) -> Result<Option<Json>, Error> {
    match call(client, "DescribeSecret", json!({"SecretId": key})) {
        Ok(answer) => Ok(Some(answer)),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(e.into_error()),
    }
}

fn tags(description: &Json) -> Vec<(String, String)> {
    description
        .get("Tags")
        .and_then(Json::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(|t| {
                    Some((
                        t.get("Key")?.as_str()?.to_string(),
                        t.get("Value")
                            .and_then(Json::as_str)
                            .unwrap_or("")
                            .to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn is_managed(description: &Json) -> bool {
    tags(description)
        .iter()
        .any(|(k, v)| k == MANAGED_BY_KEY && v == MANAGED_BY_VALUE)
}

/// One ref.
pub fn get_secret(client: &AwsClient, reference: &RemoteRef) -> Result<Value, Error> {
    let key = client.config.key(&reference.key);
    let whole = if reference.metadata_policy == airlock_provider_sdk::MetadataPolicy::Fetch {
        describe(client, &key)?.map(|d| metadata_json(&tags(&d)))
    } else {
        get_whole(client, &key, reference.version.as_deref())?
    };
    select(whole, reference.property.as_deref())
}

/// Many refs: plain current-version refs in BatchGetSecretValue calls of up to 20, the
/// rest one by one. A batch the caller may not use falls back to single gets.
pub fn get_secrets(client: &AwsClient, references: &[RemoteRef]) -> Vec<Result<Value, Error>> {
    let plain = |r: &RemoteRef| {
        r.version.is_none() && r.metadata_policy == airlock_provider_sdk::MetadataPolicy::None
    };
    let mut keys: Vec<String> = references
        .iter()
        .filter(|r| plain(r))
        .map(|r| client.config.key(&r.key))
        .collect();
    keys.sort();
    keys.dedup();
    let mut fetched = std::collections::HashMap::new();
    if keys.len() > 1 {
        for chunk in keys.chunks(BATCH) {
            if batch_get(client, chunk, &mut fetched).is_err() {
                break;
            }
        }
    }
    references
        .iter()
        .map(|r| match fetched.get(&client.config.key(&r.key)) {
            Some(Ok(whole)) if plain(r) => select(whole.clone(), r.property.as_deref()),
            Some(Err(message)) if plain(r) => Err(Error::other(message.clone())),
            _ => get_secret(client, r),
        })
        .collect()
}

type Fetched = std::collections::HashMap<String, Result<Value, String>>;

fn batch_get(client: &AwsClient, ids: &[String], out: &mut Fetched) -> Result<(), Error> {
    let answer = call(client, "BatchGetSecretValue", json!({"SecretIdList": ids}))
        .map_err(AwsError::into_error)?;
    for v in answer["SecretValues"].as_array().into_iter().flatten() {
        let Some(name) = v["Name"].as_str() else {
            continue;
        };
        out.insert(name.to_string(), Ok(value_of(v)?));
    }
    for e in answer["Errors"].as_array().into_iter().flatten() {
        let Some(id) = e["SecretId"].as_str() else {
            continue;
        };
        let code = e["ErrorCode"].as_str().unwrap_or("");
        let result = if code == "ResourceNotFoundException" {
            Ok(None)
        } else {
            Err(format!(
                "aws BatchGetSecretValue: {code}: {}",
                e["Message"].as_str().unwrap_or("")
            ))
        };
        out.insert(id.to_string(), result);
    }
    Ok(())
}

/// The names of all secrets matching `criteria`.
pub fn find_names(client: &AwsClient, criteria: &Find) -> Result<Vec<String>, Error> {
    let wanted = NameMatcher::new(criteria)?;
    let mut filters = Vec::new();
    let path = criteria
        .path
        .as_deref()
        .map(|p| client.config.key(p))
        .or_else(|| (!client.config.prefix.is_empty()).then(|| client.config.prefix.clone()));
    if let Some(path) = &path {
        filters.push(json!({"Key": "name", "Values": [path]}));
    }
    for (k, v) in &criteria.tags {
        filters.push(json!({"Key": "tag-key", "Values": [k]}));
        filters.push(json!({"Key": "tag-value", "Values": [v]}));
    }
    let mut names = Vec::new();
    for_each_page(|token| {
        let mut body = json!({"MaxResults": 100});
        if !filters.is_empty() {
            body["Filters"] = Json::Array(filters.clone());
        }
        if let Some(t) = token {
            body["NextToken"] = t.into();
        }
        let answer = call(client, "ListSecrets", body).map_err(AwsError::into_error)?;
        for s in answer["SecretList"].as_array().into_iter().flatten() {
            let Some(name) = s["Name"].as_str() else {
                continue;
            };
            if !s["DeletedDate"].is_null() {
                continue;
            }
            let secret_tags = tags(s);
            let tags_ok = criteria
                .tags
                .iter()
                .all(|(k, v)| secret_tags.iter().any(|(tk, tv)| tk == k && tv == v));
            let path_ok = path.as_deref().is_none_or(|p| name.starts_with(p));
            if tags_ok && path_ok && wanted.matches(name) {
                names.push(name.to_string());
            }
        }
        Ok(answer["NextToken"].as_str().map(str::to_string))
    })?;
    Ok(names)
}

/// `dataFrom.find`.
pub fn get_all_secrets(client: &AwsClient, criteria: &Find) -> Result<Vec<SecretEntry>, Error> {
    let names = find_names(client, criteria)?;
    let mut out = Vec::new();
    let mut fetched = Fetched::new();
    for chunk in names.chunks(BATCH) {
        if batch_get(client, chunk, &mut fetched).is_err() {
            break;
        }
    }
    for name in names {
        let value = match fetched.remove(&name) {
            Some(Ok(v)) => v,
            Some(Err(message)) => return Err(Error::other(message)),
            None => get_whole(client, &name, None)?,
        };
        if let Some(value) = value {
            let key = name.strip_prefix(&client.config.prefix).unwrap_or(&name);
            out.push(SecretEntry {
                key: key.to_string(),
                value,
            });
        }
    }
    Ok(out)
}

fn refuse_unmanaged(key: &str) -> Error {
    Error::access_denied(format!(
        "aws secret {key:?} exists and is not tagged {MANAGED_BY_KEY}={MANAGED_BY_VALUE}: Airlock does not overwrite or delete secrets it did not create"
    ))
}

fn value_fields(body: &mut Json, value: &[u8], binary: bool) {
    match std::str::from_utf8(value) {
        Ok(text) if !binary => body["SecretString"] = text.into(),
        _ => body["SecretBinary"] = crate::base64_encode(value).into(),
    }
}

/// PushSecret.
pub fn push_secret(client: &AwsClient, request: &PushRequest) -> Result<(), Error> {
    let key = client.config.key(&request.remote.remote_key);
    let metadata: Json = request
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or(Json::Null);
    let spec = metadata.get("spec").unwrap_or(&metadata);
    let binary = spec["secretPushFormat"].as_str() == Some("binary");
    let Some(description) = describe(client, &key)? else {
        let value = match &request.remote.property {
            Some(p) => json::set_property(None, p, &request.value)?,
            None => request.value.clone(),
        };
        let mut tag_list = vec![json!({"Key": MANAGED_BY_KEY, "Value": MANAGED_BY_VALUE})];
        if let Some(extra) = spec["tags"].as_object() {
            for (k, v) in extra {
                tag_list.push(json!({"Key": k, "Value": v.as_str().unwrap_or_default()}));
            }
        }
        let mut body = json!({"Name": key, "Tags": tag_list});
        if let Some(d) = spec["description"].as_str() {
            body["Description"] = d.into();
        }
        if let Some(k) = spec["kmsKeyId"].as_str() {
            body["KmsKeyId"] = k.into();
        }
        value_fields(&mut body, &value, binary);
        return call(client, "CreateSecret", body)
            .map(|_| ())
            .map_err(AwsError::into_error);
    };
    if !is_managed(&description) {
        return Err(refuse_unmanaged(&key));
    }
    let current = get_whole(client, &key, None)?;
    let value = match &request.remote.property {
        Some(p) => json::set_property(current.as_deref(), p, &request.value)?,
        None => request.value.clone(),
    };
    if current.as_deref() == Some(value.as_slice()) {
        return Ok(());
    }
    let mut body = json!({"SecretId": key});
    value_fields(&mut body, &value, binary);
    call(client, "PutSecretValue", body)
        .map(|_| ())
        .map_err(AwsError::into_error)
}

/// Deletes a pushed secret or one property of it.
pub fn delete_secret(client: &AwsClient, reference: &PushRef) -> Result<(), Error> {
    let key = client.config.key(&reference.remote_key);
    let Some(description) = describe(client, &key)? else {
        return Ok(());
    };
    if !is_managed(&description) {
        return Err(refuse_unmanaged(&key));
    }
    if let Some(property) = &reference.property
        && let Some(current) = get_whole(client, &key, None)?
    {
        let mut object: Json = serde_json::from_slice(&current).unwrap_or(Json::Null);
        if let Some(map) = object.as_object_mut() {
            map.remove(property);
            if !map.is_empty() {
                let mut body = json!({"SecretId": key});
                value_fields(&mut body, object.to_string().as_bytes(), false);
                return call(client, "PutSecretValue", body)
                    .map(|_| ())
                    .map_err(AwsError::into_error);
            }
        }
    }
    let options = &client.config.secrets_manager;
    let mut body = json!({"SecretId": key});
    if options.force_delete_without_recovery {
        body["ForceDeleteWithoutRecovery"] = true.into();
    } else if let Some(days) = options.recovery_window_in_days {
        body["RecoveryWindowInDays"] = days.into();
    }
    match call(client, "DeleteSecret", body) {
        Ok(_) => Ok(()),
        Err(e) if is_absent(&e) => Ok(()),
        Err(e) => Err(e.into_error()),
    }
}

/// Whether the secret (or its property) exists.
pub fn secret_exists(client: &AwsClient, reference: &PushRef) -> Result<bool, Error> {
    let key = client.config.key(&reference.remote_key);
    let whole = get_whole(client, &key, None)?;
    Ok(select(whole, reference.property.as_deref())?.is_some())
}

/// Checks the credentials with the cheapest read.
pub fn validate(client: &AwsClient) -> Result<(), AwsError> {
    call(client, "ListSecrets", json!({"MaxResults": 1})).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_stages_or_uuid_ids() {
        let mut b = json!({});
        version_fields(&mut b, Some("uuid/1234"));
        assert_eq!(b, json!({"VersionId": "1234"}));
        let mut b = json!({});
        version_fields(&mut b, Some("AWSPREVIOUS"));
        assert_eq!(b, json!({"VersionStage": "AWSPREVIOUS"}));
        let mut b = json!({});
        version_fields(&mut b, None);
        assert_eq!(b, json!({}));
    }

    #[test]
    fn values_come_from_the_string_or_the_binary() {
        assert_eq!(
            value_of(&json!({"SecretString": "s"})).unwrap(),
            Some(b"s".to_vec())
        );
        assert_eq!(
            value_of(&json!({"SecretBinary": "AAEC"})).unwrap(),
            Some(vec![0, 1, 2])
        );
        assert_eq!(value_of(&json!({})).unwrap(), None);
    }

    #[test]
    fn only_the_eso_tag_marks_a_secret_as_managed() {
        assert!(is_managed(
            &json!({"Tags": [{"Key": "managed-by", "Value": "external-secrets"}]})
        ));
        assert!(!is_managed(
            &json!({"Tags": [{"Key": "managed-by", "Value": "me"}]})
        ));
        assert!(!is_managed(&json!({})));
    }
}
