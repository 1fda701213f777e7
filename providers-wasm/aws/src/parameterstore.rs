//! Parameter Store: GetParameter(s) with decryption, `name:version`, GetParametersByPath
//! and DescribeParameters for find, ListTagsForResource for metadata and the managed
//! mark, PutParameter and DeleteParameter.

use airlock_provider_sdk::find::NameMatcher;
use airlock_provider_sdk::paging::for_each_page;
use airlock_provider_sdk::{
    Error, Find, MetadataPolicy, PushRef, PushRequest, RemoteRef, SecretEntry, Value, json,
};
use serde_json::{Value as Json, json};

use crate::api::AwsError;
use crate::{AwsClient, MANAGED_BY_KEY, MANAGED_BY_VALUE, metadata_json, select};

/// GetParameters takes at most this many names.
const BATCH: usize = 10;

fn call(client: &AwsClient, operation: &str, body: Json) -> Result<Json, AwsError> {
    client.call("AmazonSSM", operation, body)
}

fn is_absent(e: &AwsError) -> bool {
    e.is("ParameterNotFound") || e.is("ParameterVersionNotFound")
}

/// `name` or `name:version`.
pub fn selector(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) if !v.is_empty() => format!("{name}:{v}"),
        _ => name.to_string(),
    }
}

fn get_whole(client: &AwsClient, name: &str) -> Result<Value, Error> {
    match call(
        client,
        "GetParameter",
        json!({"Name": name, "WithDecryption": true}),
    ) {
        Ok(answer) => Ok(answer["Parameter"]["Value"]
            .as_str()
            .map(|v| v.as_bytes().to_vec())),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(e.into_error()),
    }
}

fn tags(client: &AwsClient, name: &str) -> Result<Option<Vec<(String, String)>>, Error> {
    let body = json!({"ResourceType": "Parameter", "ResourceId": name});
    match call(client, "ListTagsForResource", body) {
        Ok(answer) => Ok(Some(
            answer["TagList"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    Some((
                        t["Key"].as_str()?.to_string(),
                        t["Value"].as_str().unwrap_or("").to_string(),
                    ))
                })
                .collect(),
        )),
        Err(e) if is_absent(&e) || e.is("InvalidResourceId") => Ok(None),
        Err(e) => Err(e.into_error()),
    }
}

/// One ref.
pub fn get_secret(client: &AwsClient, reference: &RemoteRef) -> Result<Value, Error> {
    let name = client.config.key(&reference.key);
    let whole = if reference.metadata_policy == MetadataPolicy::Fetch {
        tags(client, &name)?.map(|t| metadata_json(&t))
    } else {
        get_whole(client, &selector(&name, reference.version.as_deref()))?
    };
    select(whole, reference.property.as_deref())
}

type Fetched = std::collections::HashMap<String, Value>;

fn batch_get(client: &AwsClient, names: &[String], out: &mut Fetched) -> Result<(), Error> {
    let answer = call(
        client,
        "GetParameters",
        json!({"Names": names, "WithDecryption": true}),
    )
    .map_err(AwsError::into_error)?;
    for p in answer["Parameters"].as_array().into_iter().flatten() {
        if let (Some(name), Some(value)) = (p["Name"].as_str(), p["Value"].as_str()) {
            out.insert(name.to_string(), Some(value.as_bytes().to_vec()));
        }
    }
    for name in answer["InvalidParameters"].as_array().into_iter().flatten() {
        if let Some(name) = name.as_str() {
            out.insert(name.to_string(), None);
        }
    }
    Ok(())
}

/// Many refs: current-version values through GetParameters (10 names a call), the rest
/// one by one.
pub fn get_secrets(client: &AwsClient, references: &[RemoteRef]) -> Vec<Result<Value, Error>> {
    let plain = |r: &RemoteRef| r.version.is_none() && r.metadata_policy == MetadataPolicy::None;
    let mut names: Vec<String> = references
        .iter()
        .filter(|r| plain(r))
        .map(|r| client.config.key(&r.key))
        .collect();
    names.sort();
    names.dedup();
    let mut fetched = Fetched::new();
    if names.len() > 1 {
        for chunk in names.chunks(BATCH) {
            if batch_get(client, chunk, &mut fetched).is_err() {
                break;
            }
        }
    }
    references
        .iter()
        .map(|r| match fetched.get(&client.config.key(&r.key)) {
            Some(whole) if plain(r) => select(whole.clone(), r.property.as_deref()),
            _ => get_secret(client, r),
        })
        .collect()
}

fn find_names(client: &AwsClient, criteria: &Find) -> Result<Vec<(String, Option<String>)>, Error> {
    let wanted = NameMatcher::new(criteria)?;
    let path = criteria.path.as_deref().map(|p| client.config.key(p));
    let mut found = Vec::new();
    // Without tags a path is listed with its values; with tags (or no path at all, so that
    // names without a leading `/` are found too) DescribeParameters filters first.
    let by_path = path.is_some() && criteria.tags.is_empty();
    for_each_page(|token| {
        let (operation, mut body) = if by_path {
            (
                "GetParametersByPath",
                json!({"Path": path, "Recursive": true, "WithDecryption": true, "MaxResults": 10}),
            )
        } else {
            let mut filters: Vec<Json> = criteria
                .tags
                .iter()
                .map(|(k, v)| json!({"Key": format!("tag:{k}"), "Option": "Equals", "Values": [v]}))
                .collect();
            if let Some(p) = &path {
                filters.push(json!({"Key": "Path", "Option": "Recursive", "Values": [p]}));
            } else if !client.config.prefix.is_empty() {
                filters.push(json!({"Key": "Name", "Option": "BeginsWith", "Values": [client.config.prefix]}));
            }
            let mut body = json!({"MaxResults": 50});
            if !filters.is_empty() {
                body["ParameterFilters"] = Json::Array(filters);
            }
            ("DescribeParameters", body)
        };
        if let Some(t) = token {
            body["NextToken"] = t.into();
        }
        let answer = call(client, operation, body).map_err(AwsError::into_error)?;
        for p in answer["Parameters"].as_array().into_iter().flatten() {
            let Some(name) = p["Name"].as_str() else {
                continue;
            };
            if wanted.matches(name) {
                found.push((name.to_string(), p["Value"].as_str().map(str::to_string)));
            }
        }
        Ok(answer["NextToken"].as_str().map(str::to_string))
    })?;
    Ok(found)
}

/// `dataFrom.find`.
pub fn get_all_secrets(client: &AwsClient, criteria: &Find) -> Result<Vec<SecretEntry>, Error> {
    let found = find_names(client, criteria)?;
    let missing: Vec<String> = found
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| n.clone())
        .collect();
    let mut fetched = Fetched::new();
    for chunk in missing.chunks(BATCH) {
        batch_get(client, chunk, &mut fetched)?;
    }
    let mut out = Vec::new();
    for (name, value) in found {
        let value = match value {
            Some(v) => Some(v.into_bytes()),
            None => fetched.remove(&name).flatten(),
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

/// PushSecret.
pub fn push_secret(client: &AwsClient, request: &PushRequest) -> Result<(), Error> {
    let name = client.config.key(&request.remote.remote_key);
    let metadata: Json = request
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or(Json::Null);
    let spec = metadata.get("spec").unwrap_or(&metadata);
    let current = get_whole(client, &name)?;
    if current.is_some() {
        let managed = tags(client, &name)?
            .unwrap_or_default()
            .iter()
            .any(|(k, v)| k == MANAGED_BY_KEY && v == MANAGED_BY_VALUE);
        if !managed {
            return Err(Error::access_denied(format!(
                "aws parameter {name:?} exists and is not tagged {MANAGED_BY_KEY}={MANAGED_BY_VALUE}: Airlock does not overwrite or delete parameters it did not create"
            )));
        }
    }
    let value = match &request.remote.property {
        Some(p) => json::set_property(current.as_deref(), p, &request.value)?,
        None => request.value.clone(),
    };
    if current.as_deref() == Some(value.as_slice()) {
        return Ok(());
    }
    let text = String::from_utf8(value)
        .map_err(|_| Error::invalid_request("aws Parameter Store values must be UTF-8 text"))?;
    let mut body = json!({
        "Name": name,
        "Value": text,
        "Type": spec["secretType"].as_str().unwrap_or("String"),
    });
    if let Some(k) = spec["kmsKeyID"].as_str() {
        body["KeyId"] = k.into();
    }
    if let Some(d) = spec["description"].as_str() {
        body["Description"] = d.into();
    }
    if let Some(t) = spec["tier"]["type"].as_str() {
        body["Tier"] = t.into();
    }
    // AWS refuses Tags together with Overwrite: tag on create only.
    if current.is_some() {
        body["Overwrite"] = true.into();
    } else {
        let mut tag_list = vec![json!({"Key": MANAGED_BY_KEY, "Value": MANAGED_BY_VALUE})];
        if let Some(extra) = spec["tags"].as_object() {
            for (k, v) in extra {
                tag_list.push(json!({"Key": k, "Value": v.as_str().unwrap_or_default()}));
            }
        }
        body["Tags"] = Json::Array(tag_list);
    }
    call(client, "PutParameter", body)
        .map(|_| ())
        .map_err(AwsError::into_error)
}

/// Deletes a pushed parameter.
pub fn delete_secret(client: &AwsClient, reference: &PushRef) -> Result<(), Error> {
    let name = client.config.key(&reference.remote_key);
    let Some(tags) = tags(client, &name)? else {
        return Ok(());
    };
    if get_whole(client, &name)?.is_none() {
        return Ok(());
    }
    if !tags
        .iter()
        .any(|(k, v)| k == MANAGED_BY_KEY && v == MANAGED_BY_VALUE)
    {
        return Err(Error::access_denied(format!(
            "aws parameter {name:?} is not tagged {MANAGED_BY_KEY}={MANAGED_BY_VALUE}: Airlock does not delete parameters it did not create"
        )));
    }
    match call(client, "DeleteParameter", json!({"Name": name})) {
        Ok(_) => Ok(()),
        Err(e) if is_absent(&e) => Ok(()),
        Err(e) => Err(e.into_error()),
    }
}

/// Whether the parameter (or its property) exists.
pub fn secret_exists(client: &AwsClient, reference: &PushRef) -> Result<bool, Error> {
    let name = client.config.key(&reference.remote_key);
    Ok(select(get_whole(client, &name)?, reference.property.as_deref())?.is_some())
}

/// Checks the credentials with the cheapest read.
pub fn validate(client: &AwsClient) -> Result<(), AwsError> {
    call(client, "DescribeParameters", json!({"MaxResults": 1})).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_become_name_selectors() {
        assert_eq!(selector("/app/db", Some("3")), "/app/db:3");
        assert_eq!(selector("/app/db", None), "/app/db");
    }
}
