//! A plugin set as one OCI artifact, and back.
//!
//! Format (version 1, `docs/oci.md`): an OCI image manifest whose config
//! has the media type [`CONFIG_MEDIA_TYPE`] and whose layers are the set's
//! files, one layer per file, in name order, with annotations
//! `org.opencontainers.image.title` (the file name), `dev.dnspolicy.kind`
//! (`dsl`, `lua`, `wasm`, `wat`, `metadata`), `dev.dnspolicy.priority` (from
//! the plugin's `NAME.yaml`, when it sets one) and
//! `dev.dnspolicy.metadata.digest` (the digest of that `NAME.yaml` layer).
//! A directory holding exactly one `.wasm` file and nothing else becomes a
//! CNCF Wasm artifact instead: config [`WASM_CONFIG_MEDIA_TYPE`], one
//! `application/wasm` layer, so other Wasm tooling recognises it.

use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// The config media type of a dnspolicy plugin set (format version 1).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.dnspolicy.set.config.v1+json";
/// The CNCF Wasm artifact's config media type.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The CNCF Wasm artifact's layer media type.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The OCI image manifest media type.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The annotation holding a layer's file name (the one ORAS uses too).
pub const TITLE: &str = "org.opencontainers.image.title";

/// A blob and its descriptor fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// The bytes.
    pub data: Vec<u8>,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Layer annotations (empty for the config).
    pub annotations: BTreeMap<String, String>,
}

impl Blob {
    fn new(data: Vec<u8>, media_type: &str, annotations: BTreeMap<String, String>) -> Blob {
        Blob {
            digest: digest_of(&data),
            data,
            media_type: media_type.into(),
            annotations,
        }
    }

    fn descriptor(&self) -> Json {
        let mut d = json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.data.len(),
        });
        if !self.annotations.is_empty() {
            d["annotations"] = json!(self.annotations);
        }
        d
    }
}

/// `sha256:<hex>` of `data`.
pub fn digest_of(data: &[u8]) -> String {
    let h = Sha256::digest(data);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in h {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A packed plugin set: config, layers and the manifest that names them.
#[derive(Clone, Debug)]
pub struct Artifact {
    /// The config blob.
    pub config: Blob,
    /// One layer per file.
    pub layers: Vec<Blob>,
    /// The manifest's bytes, exactly as pushed (its digest is the set's).
    pub manifest: Vec<u8>,
}

impl Artifact {
    /// The manifest digest: what `@sha256:…` pins.
    pub fn digest(&self) -> String {
        digest_of(&self.manifest)
    }
}

/// What a file is, by extension; `None` for files that are not part of a set.
pub fn kind_of(name: &str) -> Option<&'static str> {
    Some(match Path::new(name).extension()?.to_str()? {
        "dsl" => "dsl",
        "lua" => "lua",
        "wasm" => "wasm",
        "wat" => "wat",
        "yaml" => "metadata",
        // The data of a policy's file-backed sets (`set x = file("x.txt")`).
        "txt" => "data",
        _ => return None,
    })
}

fn media_type(kind: &str) -> &'static str {
    match kind {
        "dsl" => "application/vnd.dnspolicy.policy.v1+dsl",
        "lua" => "application/vnd.dnspolicy.plugin.v1+lua",
        "wasm" => WASM_LAYER_MEDIA_TYPE,
        "wat" => "application/vnd.dnspolicy.plugin.v1+wat",
        "data" => "application/vnd.dnspolicy.data.v1+text",
        _ => "application/vnd.dnspolicy.metadata.v1+yaml",
    }
}

/// A problem packing or unpacking a set.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The directory has no plugin file.
    #[error("{0} has no plugin file (*.dsl, *.lua, *.wasm, *.wat)")]
    Empty(String),
    /// The manifest or config is not what this format says.
    #[error("not a dnspolicy plugin set: {0}")]
    Format(String),
    /// A blob's bytes do not match its digest.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    Digest {
        /// Which blob.
        what: String,
        /// The digest the manifest names.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
}

/// Packs the plugin files of `dir` (and their `NAME.yaml`), in name order.
/// `created` is an RFC 3339 time for the config and manifest annotations.
pub fn pack(dir: &Path, created: &str) -> Result<Artifact, ArtifactError> {
    let shown = dir.display().to_string();
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(dir).map_err(|e| ArtifactError::Io(shown.clone(), e))? {
        let e = e.map_err(|e| ArtifactError::Io(shown.clone(), e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(kind) = kind_of(&name) else { continue };
        if name.starts_with('.') || !e.path().is_file() {
            continue;
        }
        let data = std::fs::read(e.path())
            .map_err(|err| ArtifactError::Io(e.path().display().to_string(), err))?;
        files.insert(name, (kind, data));
    }
    if !files
        .values()
        .any(|(k, _)| *k != "metadata" && *k != "data")
    {
        return Err(ArtifactError::Empty(shown));
    }
    let wasm_only = files.len() == 1 && files.values().all(|(k, _)| *k == "wasm");
    let mut layers = Vec::new();
    let mut metadata_digest = BTreeMap::new();
    for (name, (kind, data)) in &files {
        if *kind == "metadata" {
            let stem = name.trim_end_matches(".yaml").to_string();
            metadata_digest.insert(stem, digest_of(data));
        }
    }
    for (name, (kind, data)) in files {
        let mut ann = BTreeMap::new();
        ann.insert(TITLE.to_string(), name.clone());
        if !wasm_only {
            ann.insert("dev.dnspolicy.kind".into(), kind.to_string());
            let stem = Path::new(&name)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("");
            if kind != "metadata" && kind != "data" {
                if let Some(d) = metadata_digest.get(stem) {
                    ann.insert("dev.dnspolicy.metadata.digest".into(), d.clone());
                    let meta = dir.join(format!("{stem}.yaml"));
                    if let Ok(text) = std::fs::read_to_string(&meta) {
                        if let Ok(m) = crate::plugin::parse_metadata(&text) {
                            ann.insert("dev.dnspolicy.priority".into(), m.priority.to_string());
                        }
                    }
                }
            }
        }
        layers.push(Blob::new(data, media_type(kind), ann));
    }
    let digests: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let config = if wasm_only {
        // The CNCF "Wasm OCI Artifact" config (tag-group-runtime/wasm-oci).
        let c = json!({
            "created": created,
            "author": "dnspolicy",
            "architecture": "wasm",
            "os": "wasip1",
            "layerDigests": digests,
        });
        Blob::new(
            serde_json::to_vec(&c).unwrap_or_default(),
            WASM_CONFIG_MEDIA_TYPE,
            BTreeMap::new(),
        )
    } else {
        let c = json!({
            "formatVersion": 1,
            "created": created,
            "tool": concat!("dnspolicy ", env!("CARGO_PKG_VERSION")),
            "files": layers.iter().map(|l| json!({
                "name": l.annotations.get(TITLE),
                "kind": l.annotations.get("dev.dnspolicy.kind"),
                "digest": l.digest,
                "size": l.data.len(),
            })).collect::<Vec<_>>(),
        });
        Blob::new(
            serde_json::to_vec(&c).unwrap_or_default(),
            CONFIG_MEDIA_TYPE,
            BTreeMap::new(),
        )
    };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config.descriptor(),
        "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        "annotations": { "org.opencontainers.image.created": created },
    });
    Ok(Artifact {
        config,
        layers,
        manifest: serde_json::to_vec(&manifest).unwrap_or_default(),
    })
}

/// A layer as the manifest describes it.
#[derive(Clone, Debug)]
pub struct LayerRef {
    /// The file name (the title annotation).
    pub name: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Reads a manifest of either format: its config media type and its layers.
/// File names must be plain (no path separators, no `..`): a manifest
/// cannot write outside the directory it is unpacked into.
pub fn layers_of(manifest: &[u8]) -> Result<(String, Vec<LayerRef>), ArtifactError> {
    let m: Json = serde_json::from_slice(manifest)
        .map_err(|e| ArtifactError::Format(format!("manifest: {e}")))?;
    let config_type = m["config"]["mediaType"].as_str().unwrap_or("").to_string();
    if config_type != CONFIG_MEDIA_TYPE && config_type != WASM_CONFIG_MEDIA_TYPE {
        return Err(ArtifactError::Format(format!(
            "config media type `{config_type}`"
        )));
    }
    let mut out = Vec::new();
    for (i, l) in m["layers"].as_array().into_iter().flatten().enumerate() {
        let digest = l["digest"].as_str().unwrap_or("").to_string();
        let name = match l["annotations"][TITLE].as_str() {
            Some(n) => n.to_string(),
            // A CNCF Wasm artifact from other tooling may have no title.
            None if config_type == WASM_CONFIG_MEDIA_TYPE => format!("plugin{i}.wasm"),
            None => return Err(ArtifactError::Format(format!("layer {i} has no {TITLE}"))),
        };
        if name.is_empty()
            || name.contains('/')
            || name.contains('\\')
            || name.starts_with('.')
            || kind_of(&name).is_none()
        {
            return Err(ArtifactError::Format(format!("layer file name `{name}`")));
        }
        if !digest.starts_with("sha256:") || digest.len() != 71 {
            return Err(ArtifactError::Format(format!(
                "layer {name}: digest `{digest}`"
            )));
        }
        out.push(LayerRef {
            name,
            digest,
            size: l["size"].as_u64().unwrap_or(0),
        });
    }
    if out.is_empty() {
        return Err(ArtifactError::Format("no layers".into()));
    }
    Ok((config_type, out))
}

/// Checks that `data` is the blob `expected` names.
pub fn verify(what: &str, expected: &str, data: &[u8]) -> Result<(), ArtifactError> {
    let actual = digest_of(data);
    if actual == expected {
        Ok(())
    } else {
        Err(ArtifactError::Digest {
            what: what.to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
}
