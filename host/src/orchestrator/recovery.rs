//! Choosing where a run starts: the newest complete, intact snapshot of the same pipeline
//! graph, skipping (loudly) any that is unreadable or corrupt.

use anyhow::{Context, Result, bail};

use crate::config::JobConfig;
use crate::runtime::GuestModule;
use crate::state::{Manifest, SnapshotStore};

/// Sets `config.resume` and `config.generation` for the next start of the job. With
/// `fresh_start`, first deletes every snapshot at the location (once).
pub fn prepare(config: &mut JobConfig, module: &GuestModule) -> Result<()> {
    config.generation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    config.resume = None;
    let Some(persistence) = config.persistence.as_mut() else {
        return Ok(());
    };
    let store = SnapshotStore::open(&persistence.url)?;
    let epochs = Manifest::list(&store)
        .with_context(|| format!("cannot reach the persistence location {}", persistence.url))?;
    if persistence.fresh_start {
        delete_all(&store)?;
        eprintln!(
            "spillway: --fresh-start: deleted the snapshots at {}",
            persistence.url
        );
        persistence.fresh_start = false;
        return Ok(());
    }
    let identity = module.identity();
    for epoch in epochs {
        let manifest = match Manifest::read(&store, epoch) {
            Ok(manifest) => manifest,
            Err(error) => {
                eprintln!(
                    "spillway: warning: snapshot {epoch} is unusable ({error:#}); trying the one before"
                );
                continue;
            }
        };
        if manifest.pipeline.graph_fingerprint != identity.graph_fingerprint {
            bail!(
                "the snapshots at {} were made by a different pipeline graph ({}, graph {}; this \
                 is {}, graph {}); pass --fresh-start to discard them, or use another --persistence",
                persistence.url,
                manifest.pipeline.module,
                manifest.pipeline.graph_fingerprint,
                identity.module,
                identity.graph_fingerprint
            );
        }
        if manifest.key_groups != config.key_groups {
            bail!(
                "the snapshots at {} use {} key groups, this job {}; pass --key-groups {}",
                persistence.url,
                manifest.key_groups,
                config.key_groups,
                manifest.key_groups
            );
        }
        let problems = manifest.verify(&store);
        if !problems.is_empty() {
            eprintln!(
                "spillway: warning: snapshot {epoch} is corrupt ({}); falling back to the one before",
                problems.join("; ")
            );
            continue;
        }
        eprintln!(
            "spillway: resuming from snapshot {epoch} at {} ({} bytes of state, made by {} process(es) × {} thread(s))",
            persistence.url,
            manifest.state_bytes(),
            manifest.processes,
            manifest.threads
        );
        config.resume = Some(epoch);
        return Ok(());
    }
    Ok(())
}

fn delete_all(store: &SnapshotStore) -> Result<()> {
    for dir in ["manifests", "state"] {
        for (path, _) in store.list(dir)? {
            store.delete(&path)?;
        }
    }
    Ok(())
}
