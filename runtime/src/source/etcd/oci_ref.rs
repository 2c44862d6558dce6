//! A fleet version that points at an OCI artifact instead of carrying its
//! files: the manifest names `REGISTRY/REPO@sha256:…` (a tag is resolved to
//! its digest when pushed), and every edge pulls that digest from the
//! registry, each blob checked against it (`docs/fleet.md`). etcd then
//! carries the rollout (versions, canary, ACK/NACK) and the registry the
//! bytes.

use super::fleet::{sha256, FileEntry, FleetError};
use crate::source::oci::{parse_ref, OciError, Registry};
use serde::{Deserialize, Serialize};

/// Where a version's files are.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OciPointer {
    /// `HOST[:PORT]/REPO@sha256:…`, always pinned.
    pub reference: String,
    /// Plain HTTP to the registry.
    #[serde(default)]
    pub insecure: bool,
}

fn fleet_err(e: OciError) -> FleetError {
    match e {
        // The registry may come back: not this version's fault.
        OciError::Registry(m) => FleetError::Source(format!("registry: {m}")),
        other => FleetError::Corrupt(other.to_string()),
    }
}

/// Pins `reference` (a tag is resolved to the digest it names now).
pub async fn pin(reference: &str, insecure: bool) -> Result<OciPointer, FleetError> {
    let r = parse_ref(reference).map_err(fleet_err)?;
    let digest = Registry::new(&r, insecure)
        .resolve(&r)
        .await
        .map_err(fleet_err)?;
    Ok(OciPointer {
        reference: format!("{}/{}@{digest}", r.registry(), r.repository()),
        insecure,
    })
}

/// The files `p` names, pulled and verified, with their entries (for the
/// persisted manifest, so a restart can check them offline).
pub async fn pull(p: &OciPointer) -> Result<(Vec<(String, Vec<u8>)>, Vec<FileEntry>), FleetError> {
    let r = parse_ref(&p.reference).map_err(fleet_err)?;
    if r.digest().is_none() {
        return Err(FleetError::Corrupt(format!(
            "{}: an OCI pointer must be pinned by digest",
            p.reference
        )));
    }
    let pulled = Registry::new(&r, p.insecure)
        .pull(&r)
        .await
        .map_err(fleet_err)?;
    let entries = pulled
        .files
        .iter()
        .map(|(name, data)| FileEntry {
            name: name.clone(),
            sha256: sha256(data),
            size: data.len() as u64,
            chunks: 0,
        })
        .collect();
    Ok((pulled.files, entries))
}
