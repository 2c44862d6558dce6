//! The metadata file beside a plugin (`NAME.yaml`), validated against the
//! JSON Schema the project ships (`runtime/schema/plugin.schema.json`).

use serde::Deserialize;

/// The metadata file beside a plugin (`NAME.yaml`). Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Display name (default: the file name without extension).
    pub name: Option<String>,
    /// Version string, shown in `/plugins`.
    pub version: Option<String>,
    /// `dsl`, `lua` or `wasm` (default: from the extension).
    pub kind: Option<String>,
    /// Higher runs first (default 0; ties by file name).
    #[serde(default)]
    pub priority: i64,
    /// Handed to `init`.
    #[serde(default)]
    pub config: serde_json::Value,
    /// Resource limits (used by the Lua and WASM hosts).
    #[serde(default)]
    pub limits: serde_json::Value,
    /// Host functions a Lua or WASM plugin may call (`forward`, `log`,
    /// `geo`); `None` grants the default (all but `forward`).
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    /// Other plugins this one needs.
    #[serde(default)]
    pub requires: Vec<String>,
}

/// The JSON Schema of plugin metadata (`runtime/schema/plugin.schema.json`).
pub const METADATA_SCHEMA: &str = include_str!("../../schema/plugin.schema.json");

fn metadata_validator() -> Option<&'static jsonschema::Validator> {
    static V: std::sync::OnceLock<Option<jsonschema::Validator>> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let schema: serde_json::Value = serde_json::from_str(METADATA_SCHEMA).ok()?;
        jsonschema::validator_for(&schema).ok()
    })
    .as_ref()
}

/// Parses a metadata file (YAML) and validates it against the shipped JSON
/// Schema. Errors name the offending field by its path, e.g.
/// `/limits/memory: 5 is less than the minimum of 1048576`.
pub fn parse_metadata(text: &str) -> Result<Metadata, MetadataError> {
    let value: serde_json::Value =
        serde_yaml_ng::from_str(text).map_err(|e| MetadataError::Yaml(e.to_string()))?;
    let value = if value.is_null() {
        serde_json::json!({})
    } else {
        value
    };
    let validator = metadata_validator().ok_or(MetadataError::SchemaUnavailable)?;
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| {
            let path = e.instance_path().to_string();
            format!("{}: {e}", if path.is_empty() { "/" } else { &path })
        })
        .collect();
    if !errors.is_empty() {
        return Err(MetadataError::Schema(errors));
    }
    serde_json::from_value(value).map_err(|e| MetadataError::Shape(e.to_string()))
}

/// A metadata file (or its `limits`) that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// Not YAML at all.
    #[error("not valid YAML: {0}")]
    Yaml(String),
    /// Fields the schema refuses, each with its path
    /// (`/limits/memory: 5 is less than the minimum of 1048576`).
    #[error("{}", .0.join("; "))]
    Schema(Vec<String>),
    /// Valid against the schema but not of the expected shape.
    #[error("{0}")]
    Shape(String),
    /// The shipped schema does not load (a build fault).
    #[error("the metadata schema does not load")]
    SchemaUnavailable,
    /// A `limits` value out of range or unknown (the text names it).
    #[error("{0}")]
    Limit(String),
}
