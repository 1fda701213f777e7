//! In-process fakes of vendor APIs that cannot be installed locally. Each follows the
//! vendor's documented API (named at the top of its module) and records what it was asked,
//! and each is checked against the vendor's official SDK by a contract test.

/// Akeyless API v2 (the akeyless provider, issue 17).
pub mod akeyless;
/// Azure Key Vault, Entra ID tokens and IMDS (the azurekv provider).
pub mod azurekv;
pub mod doppler;
/// Google Cloud Secret Manager and Google's token services (the gcpsm provider).
pub mod gcpsm;
/// GitLab REST v4 variables (the gitlab provider).
pub mod gitlab;
/// 1Password Connect server API v1 (the onepassword provider).
pub mod onepassword;
