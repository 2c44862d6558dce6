//! Plugin sets in an OCI registry: [`artifact`] (the format), the registry
//! client here (push, pull, resolve a tag; every byte pulled verified
//! against its digest), and [`watch`] (what `serve --source oci://…` runs:
//! a cache by digest, tag polling, the swap).
//!
//! Registry auth: `DNSPOLICY_REGISTRY_USER` / `DNSPOLICY_REGISTRY_PASSWORD`,
//! else the registry's entry in a docker `config.json` (`$DOCKER_CONFIG` or
//! `~/.docker/`), else anonymous; a registry that answers with a bearer
//! token challenge gets the token flow (oci-client's). Plain HTTP only when
//! asked (`--insecure`).

pub mod artifact;
pub mod watch;

use artifact::{layers_of, verify, Artifact, ArtifactError, MANIFEST_MEDIA_TYPE};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::path::Path;

/// A registry operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The reference does not parse.
    #[error("`{0}` is not a registry reference (HOST[:PORT]/REPO:TAG or HOST[:PORT]/REPO@sha256:…): {1}")]
    Reference(String, String),
    /// The registry refused or could not be reached.
    #[error("registry: {0}")]
    Registry(String),
    /// The artifact is malformed or a digest does not match.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// A local file could not be written.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

fn registry_err(e: impl std::fmt::Display) -> OciError {
    OciError::Registry(e.to_string())
}

/// Parses `HOST[:PORT]/REPO:TAG` or `HOST[:PORT]/REPO@sha256:…`.
pub fn parse_ref(s: &str) -> Result<Reference, OciError> {
    let s = s.strip_prefix("oci://").unwrap_or(s);
    s.parse::<Reference>()
        .map_err(|e| OciError::Reference(s.to_string(), e.to_string()))
}

/// A registry client with its credentials.
pub struct Registry {
    client: Client,
    auth: RegistryAuth,
}

impl Registry {
    /// A client for the registry of `r`; `insecure` allows plain HTTP.
    pub fn new(r: &Reference, insecure: bool) -> Registry {
        // One TLS stack, ring's: installed once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = ClientConfig {
            protocol: if insecure {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            ..Default::default()
        };
        Registry {
            client: Client::new(config),
            auth: credentials(r.registry()),
        }
    }

    /// Pushes `a` as `r` (blobs first, then the manifest); its digest.
    pub async fn push(&self, r: &Reference, a: &Artifact) -> Result<String, OciError> {
        self.client
            .auth(r, &self.auth, oci_client::RegistryOperation::Push)
            .await
            .map_err(registry_err)?;
        for b in a.layers.iter().chain(std::iter::once(&a.config)) {
            if !self.client.blob_exists(r, &b.digest).await.unwrap_or(false) {
                self.client
                    .push_blob(r, b.data.clone(), &b.digest)
                    .await
                    .map_err(registry_err)?;
            }
        }
        let ct = hyper::http::HeaderValue::from_static(MANIFEST_MEDIA_TYPE);
        self.client
            .push_manifest_raw(r, a.manifest.clone(), ct)
            .await
            .map_err(registry_err)?;
        Ok(a.digest())
    }

    /// The digest `r` names now (a tag's current manifest).
    pub async fn resolve(&self, r: &Reference) -> Result<String, OciError> {
        if let Some(d) = r.digest() {
            return Ok(d.to_string());
        }
        self.client
            .fetch_manifest_digest(r, &self.auth)
            .await
            .map_err(registry_err)
    }

    /// The manifest of `r`, verified: by its pinned digest, or, for a tag,
    /// against the digest the registry reports.
    pub async fn manifest(&self, r: &Reference) -> Result<(String, Vec<u8>), OciError> {
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(r, &self.auth, &[MANIFEST_MEDIA_TYPE])
            .await
            .map_err(registry_err)?;
        let want = r.digest().map_or(digest.clone(), str::to_string);
        verify("the manifest", &want, &bytes)?;
        Ok((want, bytes.to_vec()))
    }

    /// Pulls the set `r` names: its digest, manifest, and files (name,
    /// bytes), each verified against the manifest.
    pub async fn pull(&self, r: &Reference) -> Result<Pulled, OciError> {
        let (digest, manifest) = self.manifest(r).await?;
        let (config_type, layers) = layers_of(&manifest)?;
        let mut files = Vec::new();
        for l in layers {
            let mut data = Vec::with_capacity(l.size as usize);
            self.client
                .pull_blob(r, l.digest.as_str(), &mut data)
                .await
                .map_err(|e| match e {
                    oci_client::errors::OciDistributionError::DigestError(_) => {
                        OciError::Artifact(ArtifactError::Digest {
                            what: l.name.clone(),
                            expected: l.digest.clone(),
                            actual: e.to_string(),
                        })
                    }
                    other => registry_err(other),
                })?;
            verify(&l.name, &l.digest, &data)?;
            files.push((l.name, data));
        }
        Ok(Pulled {
            digest,
            manifest,
            config_type,
            files,
        })
    }
}

/// A pulled and verified set.
#[derive(Debug)]
pub struct Pulled {
    /// The manifest digest.
    pub digest: String,
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// The config media type (the set format, or CNCF Wasm).
    pub config_type: String,
    /// The files, by name.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Pulled {
    /// Writes the files into `dir` (created; files of the same names replaced).
    pub fn write_to(&self, dir: &Path) -> Result<(), OciError> {
        std::fs::create_dir_all(dir).map_err(|e| OciError::Io(dir.display().to_string(), e))?;
        for (name, data) in &self.files {
            let p = dir.join(name);
            std::fs::write(&p, data).map_err(|e| OciError::Io(p.display().to_string(), e))?;
        }
        Ok(())
    }
}

/// Credentials for `registry`: the environment, else docker's config.json,
/// else anonymous.
pub fn credentials(registry: &str) -> RegistryAuth {
    if let (Ok(u), Ok(p)) = (
        std::env::var("DNSPOLICY_REGISTRY_USER"),
        std::env::var("DNSPOLICY_REGISTRY_PASSWORD"),
    ) {
        return RegistryAuth::Basic(u, p);
    }
    let path = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))
        .map(|d| d.join("config.json"));
    let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else {
        return RegistryAuth::Anonymous;
    };
    docker_auth(&text, registry).unwrap_or(RegistryAuth::Anonymous)
}

/// The `auths` entry of a docker `config.json` for `registry`
/// (`{"auths": {"HOST:PORT": {"auth": base64("user:password")}}}`).
pub fn docker_auth(config_json: &str, registry: &str) -> Option<RegistryAuth> {
    use base64::Engine as _;
    let j: serde_json::Value = serde_json::from_str(config_json).ok()?;
    let auths = j.get("auths")?.as_object()?;
    let entry = auths.iter().find_map(|(k, v)| {
        let host = k
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let host = host.split('/').next().unwrap_or(host);
        (host == registry).then_some(v)
    })?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(entry.get("auth")?.as_str()?)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some(RegistryAuth::Basic(u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_auth_by_registry() {
        // base64("alice:s3cret")
        let cfg = r#"{"auths": {"https://127.0.0.1:5000/v2/": {"auth": "YWxpY2U6czNjcmV0"}, "other:1": {"auth": "eDp5"}}}"#;
        assert_eq!(
            docker_auth(cfg, "127.0.0.1:5000"),
            Some(RegistryAuth::Basic("alice".into(), "s3cret".into()))
        );
        assert_eq!(docker_auth(cfg, "127.0.0.1:5001"), None);
        assert_eq!(docker_auth("not json", "x"), None);
    }

    #[test]
    fn references() {
        let r = parse_ref("oci://127.0.0.1:5000/sets/edge@sha256:ad733e6061a4167da80264aa79b3e1f8498462d7024db94b008698d9875bb6b5")
            .expect("pinned");
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "sets/edge");
        assert!(r.digest().is_some());
        assert_eq!(
            parse_ref("127.0.0.1:5000/sets/edge:v1").expect("tag").tag(),
            Some("v1")
        );
        assert!(parse_ref("oci://UPPER/Case:x").is_err());
    }
}
