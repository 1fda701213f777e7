//! Raw artifacts (manifests and component layers) cached by content digest, beside the
//! runtime's precompiled components: `<cache dir>/blobs/sha256/<hex>`, the OCI image-layout
//! naming. A module pinned by digest whose manifest and layer are cached loads without the
//! registry. Every read is re-hashed; a file that does not match its name is removed.

use std::path::{Path, PathBuf};

use super::RegistryError;
use crate::runtime::digest;

/// The blob cache in one directory.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    /// A cache under `cache_dir` (the runtime's `--cache-dir`).
    pub fn new(cache_dir: &Path) -> Self {
        ArtifactCache {
            dir: cache_dir.join("blobs").join("sha256"),
        }
    }

    fn path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| self.dir.join(hex))
    }

    /// The blob with `digest`, if cached and intact.
    pub fn get(&self, wanted: &str) -> Option<Vec<u8>> {
        let path = self.path(wanted)?;
        let bytes = std::fs::read(&path).ok()?;
        if digest(&bytes) == wanted {
            return Some(bytes);
        }
        tracing::warn!(path = %path.display(), "removing a cached blob that does not match its digest");
        let _ = std::fs::remove_file(&path);
        None
    }

    /// Stores `bytes` under its digest (written to a temporary file, then renamed).
    pub fn put(&self, bytes: &[u8]) -> Result<(), RegistryError> {
        let Some(path) = self.path(&digest(bytes)) else {
            return Ok(());
        };
        let cache_error = |source| RegistryError::Cache {
            path: self.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(cache_error)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(cache_error)?;
        std::fs::rename(&tmp, &path).map_err(cache_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_found_by_digest_and_corrupt_ones_are_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = ArtifactCache::new(dir.path());
        let d = digest(b"component");
        assert_eq!(cache.get(&d), None);
        cache.put(b"component").expect("put");
        assert_eq!(cache.get(&d).as_deref(), Some(&b"component"[..]));
        let file = cache.path(&d).expect("path");
        std::fs::write(&file, b"tampered").expect("write");
        assert_eq!(cache.get(&d), None);
        assert!(!file.exists());
        assert_eq!(cache.get("sha256:../../etc/passwd"), None);
    }
}
