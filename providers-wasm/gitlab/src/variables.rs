//! ESO's GitLab semantics: where a variable is looked up (the project, then the groups,
//! the last group first), the environment scope with `*` as fallback, and `dataFrom.find`.

use std::cell::RefCell;
use std::collections::BTreeMap;

use airlock_provider_sdk::find::NameMatcher;
use airlock_provider_sdk::http::encode;
use airlock_provider_sdk::{Error, Find, MetadataPolicy, RemoteRef, SecretEntry, Value, json};
use serde_json::Value as Json;

use crate::api::{self, Api};
use crate::config::Config;

/// The only tag `find.tags` accepts.
pub const SCOPE_TAG: &str = "environment_scope";

/// Where variables live: a project (`projects/:id`) or a group (`groups/:id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner<'a> {
    Project(&'a str),
    Group(&'a str),
}

impl Owner<'_> {
    fn path(self) -> String {
        match self {
            Owner::Project(id) => format!("projects/{}", encode(id)),
            Owner::Group(id) => format!("groups/{}", encode(id)),
        }
    }
}

/// The variables one store can read.
#[derive(Debug)]
pub struct Variables<'a> {
    api: &'a Api,
    config: &'a Config,
    groups: RefCell<Option<Vec<String>>>,
}

impl<'a> Variables<'a> {
    /// The variables of `config`'s project and groups through `api`.
    pub fn new(api: &'a Api, config: &'a Config) -> Self {
        Variables {
            api,
            config,
            groups: RefCell::new(None),
        }
    }

    /// The groups to read, in ESO's order (the last one wins): `groupIDs`, or the
    /// project's ancestors with `inheritFromGroups`.
    fn groups(&self) -> Result<Vec<String>, Error> {
        if let Some(groups) = self.groups.borrow().as_ref() {
            return Ok(groups.clone());
        }
        let groups = match (&self.config.project_id, self.config.inherit_from_groups) {
            (Some(project), true) => self
                .api
                .list(&format!("{}/groups", Owner::Project(project).path()))?
                .iter()
                .map(|g| match &g["id"] {
                    Json::Number(n) => Ok(n.to_string()),
                    Json::String(s) => Ok(s.clone()),
                    _ => Err(Error::other("gitlab listed a project group without an id")),
                })
                .collect::<Result<_, _>>()?,
            _ => self.config.group_ids.clone(),
        };
        *self.groups.borrow_mut() = Some(groups.clone());
        Ok(groups)
    }

    /// Checks the token against every project and group the store reads.
    pub fn validate(&self) -> Result<(), Error> {
        let mut owners: Vec<String> = Vec::new();
        if let Some(project) = &self.config.project_id {
            owners.push(Owner::Project(project).path());
        }
        owners.extend(self.groups()?.iter().map(|g| Owner::Group(g).path()));
        for owner in owners {
            let what = format!("GET {owner}/variables");
            let response = self.api.get(&format!("{owner}/variables?per_page=1"))?;
            if !response.is_success() {
                return Err(api::error(&what, &response));
            }
        }
        Ok(())
    }

    /// One variable's value (or a `property` of it): the project's first, then each
    /// group's from the last to the first.
    pub fn get(&self, reference: &RemoteRef) -> Result<Value, Error> {
        if reference.key.is_empty() {
            return Err(Error::invalid_request("the remote key is empty"));
        }
        if reference.version.is_some() {
            return Err(Error::invalid_request(
                "GitLab variables have no versions: remove remoteRef.version",
            ));
        }
        if reference.metadata_policy == MetadataPolicy::Fetch {
            return Err(Error::unsupported(
                "the GitLab provider does not serve metadata (metadataPolicy: Fetch)",
            ));
        }
        // GitLab keys allow only letters, digits and `_`; ESO maps `-` for Kubernetes-style
        // names.
        let key = reference.key.replace('-', "_");
        let mut value = match &self.config.project_id {
            Some(project) => self.lookup(Owner::Project(project), &key)?,
            None => None,
        };
        if value.is_none() {
            for group in self.groups()?.iter().rev() {
                value = self.lookup(Owner::Group(group), &key)?;
                if value.is_some() {
                    break;
                }
            }
        }
        match (value, &reference.property) {
            (Some(value), Some(property)) => json::select(value.as_bytes(), property),
            (value, _) => Ok(value.map(String::into_bytes)),
        }
    }

    /// The value of `key` at `owner` for the store's environment, falling back to `*`.
    fn lookup(&self, owner: Owner<'_>, key: &str) -> Result<Option<String>, Error> {
        let scopes: Vec<Option<&str>> = match self.config.environment.as_deref() {
            None => vec![None],
            Some("*") => vec![Some("*")],
            Some(env) => vec![Some(env), Some("*")],
        };
        let path = format!("{}/variables/{}", owner.path(), encode(key));
        for scope in scopes {
            let query = scope
                .map(|s| format!("?filter%5Benvironment_scope%5D={}", encode(s)))
                .unwrap_or_default();
            let response = self.api.get(&format!("{path}{query}"))?;
            if api::is_missing_variable(&response) {
                continue;
            }
            if !response.is_success() {
                return Err(api::error(&format!("GET {path}"), &response));
            }
            let body = api::body(&format!("GET {path}"), &response)?;
            return match &body["value"] {
                Json::String(s) => Ok(Some(s.clone())),
                _ => Err(Error::other(format!("GET {path}: the answer has no value"))),
            };
        }
        Ok(None)
    }

    /// `dataFrom.find`: the variables whose key matches `name.regexp` and whose scope is
    /// the environment (`find.tags.environment_scope`, else the store's) or `*`. Groups
    /// are read first in order, then the project, each overriding what came before; within
    /// one of them a variable of the exact scope beats one for `*`.
    pub fn find(&self, criteria: &Find) -> Result<Vec<SecretEntry>, Error> {
        if criteria.path.is_some() {
            return Err(Error::unsupported(
                "find.path is not supported by the GitLab provider (variables have no paths): use find.name.regexp or find.tags.environment_scope",
            ));
        }
        let mut environment = self.config.environment.clone();
        for (tag, value) in &criteria.tags {
            if tag != SCOPE_TAG {
                return Err(Error::invalid_request(format!(
                    "find.tags: the GitLab provider filters only on {SCOPE_TAG}, not {tag:?}"
                )));
            }
            let constrained = environment
                .as_deref()
                .is_some_and(|e| e != "*" && e != value && value != "*");
            if constrained {
                return Err(Error::invalid_request(format!(
                    "find.tags.{SCOPE_TAG} {value:?} contradicts the store's environment {:?}",
                    environment.as_deref().unwrap_or_default()
                )));
            }
            if environment.as_deref().is_none_or(|e| e == "*") {
                environment = Some(value.clone());
            }
        }
        let matcher = NameMatcher::new(criteria)?;
        let mut owners: Vec<String> = self
            .groups()?
            .iter()
            .map(|g| Owner::Group(g).path())
            .collect();
        if let Some(project) = &self.config.project_id {
            owners.push(Owner::Project(project).path());
        }
        let mut found: BTreeMap<String, String> = BTreeMap::new();
        for owner in owners {
            let mut here: BTreeMap<String, (String, bool)> = BTreeMap::new();
            for variable in self.api.list(&format!("{owner}/variables"))? {
                let (Some(key), Some(value)) =
                    (variable["key"].as_str(), variable["value"].as_str())
                else {
                    continue;
                };
                let scope = variable["environment_scope"].as_str().unwrap_or("*");
                let wildcard = scope.is_empty() || scope == "*";
                let in_scope = wildcard
                    || environment
                        .as_deref()
                        .is_none_or(|e| e == "*" || e == scope);
                if !in_scope || !matcher.matches(key) {
                    continue;
                }
                let exact = !wildcard;
                if here.get(key).is_some_and(|(_, kept)| *kept && !exact) {
                    continue;
                }
                here.insert(key.to_string(), (value.to_string(), exact));
            }
            found.extend(here.into_iter().map(|(k, (v, _))| (k, v)));
        }
        Ok(found
            .into_iter()
            .map(|(key, value)| SecretEntry {
                key,
                value: value.into_bytes(),
            })
            .collect())
    }
}
