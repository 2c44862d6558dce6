//! Loading one plugin file: its metadata, its kind by extension, compile
//! or instantiate, then `init`.

use super::host::Limits;
use super::metadata::{parse_metadata, Metadata};
use super::wasm::WasmError;
use super::{DslPlugin, Plugin, PluginError};
use std::path::Path;

/// Whether `p` is a plugin file: a known extension, not hidden, not an
/// editor's temporary (`.swp`, `~`, `#...#`, `.tmp`).
pub fn is_plugin_file(p: &Path) -> bool {
    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name.starts_with('.') || name.starts_with('#') || name.ends_with('~') {
        return false;
    }
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("dsl" | "lua" | "wasm" | "wat")
    )
}

/// Loads one plugin file with its metadata, and runs `init`.
pub fn load_file(path: &Path) -> Result<(Box<dyn Plugin>, Metadata), PluginError> {
    let meta_path = path.with_extension("yaml");
    let meta: Metadata = match std::fs::read_to_string(&meta_path) {
        Ok(text) => parse_metadata(&text).map_err(|source| PluginError::Metadata {
            path: meta_path.clone(),
            source,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Metadata::default(),
        Err(e) => return Err(PluginError::Io(meta_path, e)),
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin");
    let name = meta.name.clone().unwrap_or_else(|| stem.to_string());
    let version = meta.version.clone().unwrap_or_default();
    let _span = tracing::info_span!("plugin.load", plugin = %name, version = %version).entered();
    let mut plugin: Box<dyn Plugin> = match path.extension().and_then(|e| e.to_str()) {
        Some("dsl") => {
            let src = std::fs::read_to_string(path)
                .map_err(|e| PluginError::Io(path.to_path_buf(), e))?;
            Box::new(DslPlugin::compile(&name, src, path)?)
        }
        Some("lua") => {
            let src = std::fs::read_to_string(path)
                .map_err(|e| PluginError::Io(path.to_path_buf(), e))?;
            let limits = Limits::from_metadata(&meta.limits)
                .and_then(|l| l.granting(meta.capabilities.as_deref()))
                .map_err(|source| PluginError::Metadata {
                    path: meta_path.clone(),
                    source,
                })?;
            Box::new(crate::plugin::lua::LuaPlugin::load(
                &name,
                &src,
                path,
                limits,
                &meta.config,
            )?)
        }
        _ => {
            let limits = Limits::from_metadata(&meta.limits)
                .and_then(|l| l.granting(meta.capabilities.as_deref()))
                .map_err(|source| PluginError::Metadata {
                    path: meta_path.clone(),
                    source,
                })?;
            let bytes = read_module(path, limits.module_bytes)?;
            Box::new(crate::plugin::wasm::WasmPlugin::load(
                &name,
                &bytes,
                path,
                limits,
                &meta.config,
            )?)
        }
    };
    {
        let _init = tracing::info_span!("plugin.init", plugin = %name).entered();
        plugin.init(&meta.config)?;
    }
    Ok((plugin, meta))
}

/// A hash of a plugin file and its metadata file (absent metadata counts
/// as empty), to tell an unchanged plugin on reload; `None` when the file
/// cannot be read (loading it will say why).
pub fn source_hash(path: &Path) -> Option<u64> {
    use std::hash::{BuildHasher, Hasher};
    let body = std::fs::read(path).ok()?;
    let meta = std::fs::read(path.with_extension("yaml")).unwrap_or_default();
    let mut h = rustc_hash::FxBuildHasher.build_hasher();
    h.write(&body);
    h.write_u8(0xff);
    h.write(&meta);
    // A policy with file-backed sets reads its data beside it: moved to
    // another directory (a new OCI set is pulled into its own), it is a
    // new plugin with new data, not the old one. In place, its set
    // watcher follows the files.
    if path.extension().is_some_and(|e| e == "dsl") && body.windows(5).any(|w| w == b"file(") {
        if let Some(dir) = path.parent().and_then(|d| d.canonicalize().ok()) {
            h.write(dir.as_os_str().as_encoded_bytes());
        }
    }
    // Never 0: 0 means "not from a file".
    Some(h.finish() | 1)
}

/// Reads a module file, refusing one over `max` bytes before reading it.
pub fn read_module(path: &Path, max: usize) -> Result<Vec<u8>, PluginError> {
    let io = |e| PluginError::Io(path.to_path_buf(), e);
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > max as u64 {
        return Err(PluginError::Wasm {
            path: path.to_path_buf(),
            source: WasmError::TooLarge { size, max },
        });
    }
    std::fs::read(path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_files() {
        for ok in ["a.dsl", "b.lua", "c.wasm", "d.wat"] {
            assert!(is_plugin_file(Path::new(ok)), "{ok}");
        }
        for no in [
            ".hidden.dsl",
            "a.dsl~",
            "#a.dsl#",
            "a.dsl.swp",
            "a.yaml",
            "a.tmp",
            "README",
        ] {
            assert!(!is_plugin_file(Path::new(no)), "{no}");
        }
    }
}
