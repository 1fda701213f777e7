//! Generators (`generators.external-secrets.io/v1alpha1`) as sources of values for
//! ExternalSecrets (`dataFrom[].sourceRef.generatorRef`) and PushSecrets
//! (`selector.generatorRef`).

use std::collections::BTreeMap;

use kube::ResourceExt;

use super::{Context, Error};
use crate::crd::PushSecret;
use crate::crd::external_secret::GeneratorRef;

/// The values a PushSecret's `selector.generatorRef` generates.
pub async fn generate_for_push<B>(
    _ctx: &Context<B>,
    ps: &PushSecret,
    generator: &GeneratorRef,
) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    Err(Error::Unsupported {
        reason: "GeneratorNotSupportedYet",
        message: format!(
            "PushSecret {}: spec.selector.generatorRef ({:?} {}): generators are not supported yet",
            ps.name_any(),
            generator.kind,
            generator.name
        ),
    })
}
