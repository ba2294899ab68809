//! The on-disk cache of compiled components: compiling a guest with Cranelift takes far longer
//! than loading it, so each (module, engine settings) pair is compiled once and the artifact
//! is kept in the cache directory.
//!
//! An entry is `<module hash>-<engine hash>.cwasm`: the bytes from
//! [`Engine::precompile_component`] followed by a 16-byte xxh3-128 checksum of those bytes. An
//! entry that is unreadable, truncated, corrupt (checksum mismatch) or built by another
//! engine (wasmtime's own compatibility check) is compiled again and overwritten; it is never
//! used.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::Path;

use wasmtime::Engine;
use wasmtime::component::Component;

const CHECKSUM_BYTES: usize = 16;

/// How a component was obtained, for `--log debug` and the start-up figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from the cache.
    Hit,
    /// Compiled and stored in the cache.
    Stored,
    /// Compiled; no cache, or the cache could not be written.
    Compiled,
}

/// Compiles `bytes`, or loads the compiled artifact from `cache_dir` when it holds a good one.
///
/// # Errors
/// The compiler's error when `bytes` is not a valid component. Cache failures are logged
/// and otherwise ignored.
pub fn compile(
    engine: &Engine,
    bytes: &[u8],
    cache_dir: Option<&Path>,
) -> wasmtime::Result<(Component, CacheOutcome)> {
    let Some(dir) = cache_dir else {
        return Ok((Component::new(engine, bytes)?, CacheOutcome::Compiled));
    };
    let entry = dir.join(entry_name(engine, bytes));
    if let Some(component) = load(engine, &entry) {
        return Ok((component, CacheOutcome::Hit));
    }
    let serialized = engine.precompile_component(bytes)?;
    // SAFETY: `serialized` was produced just now, in this process, by this engine's
    // `precompile_component`, which is exactly what `deserialize` requires.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(engine, &serialized)? };
    match store(dir, &entry, &serialized) {
        Ok(()) => Ok((component, CacheOutcome::Stored)),
        Err(error) => {
            tracing::warn!(
                "cannot write the compile cache entry {}: {error}",
                entry.display()
            );
            Ok((component, CacheOutcome::Compiled))
        }
    }
}

/// The file name of the entry for `bytes` compiled by `engine`.
fn entry_name(engine: &Engine, bytes: &[u8]) -> String {
    let module = xxhash_rust::xxh3::xxh3_128(bytes);
    let mut settings = xxhash_rust::xxh3::Xxh3::new();
    engine.precompile_compatibility_hash().hash(&mut settings);
    env!("CARGO_PKG_VERSION").hash(&mut settings);
    format!("{module:032x}-{:016x}.cwasm", settings.finish())
}

/// The component in `entry`, if the entry exists and is intact and compatible.
fn load(engine: &Engine, entry: &Path) -> Option<Component> {
    let data = std::fs::read(entry).ok()?;
    let Some(split) = data.len().checked_sub(CHECKSUM_BYTES) else {
        tracing::warn!(
            "compile cache entry {} is truncated; recompiling",
            entry.display()
        );
        return None;
    };
    let (artifact, checksum) = data.split_at(split);
    if checksum != xxhash_rust::xxh3::xxh3_128(artifact).to_le_bytes() {
        tracing::warn!(
            "compile cache entry {} is corrupt; recompiling",
            entry.display()
        );
        return None;
    }
    // SAFETY: `deserialize` trusts its input to be wasmtime's own output, since it maps the
    // machine code in it as executable. The entry was written by `store` below: in a
    // directory this user created with mode 0700, from `precompile_component`'s output, and
    // its checksum matches, so it is that output, unmodified (anyone who could forge it
    // could already run code as this user). Wasmtime itself checks that the artifact was
    // built by a compatible engine (version, target, settings) and rejects it otherwise.
    #[allow(unsafe_code)]
    match unsafe { Component::deserialize(engine, artifact) } {
        Ok(component) => Some(component),
        Err(error) => {
            tracing::warn!(
                "compile cache entry {} is not usable ({error}); recompiling",
                entry.display()
            );
            None
        }
    }
}

/// Writes `artifact` and its checksum to `entry`, atomically (a temporary file, then rename),
/// so that a concurrent reader sees the whole entry or none.
fn store(dir: &Path, entry: &Path, artifact: &[u8]) -> std::io::Result<()> {
    create_private_dir(dir)?;
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        entry.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(artifact)?;
    file.write_all(&xxhash_rust::xxh3::xxh3_128(artifact).to_le_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, entry).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid component: it exports nothing.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    #[test]
    fn stores_then_hits_and_recompiles_a_corrupt_entry() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let (_, outcome) = compile(&engine, EMPTY_COMPONENT, Some(dir.path())).unwrap();
        assert_eq!(outcome, CacheOutcome::Stored);
        let (_, outcome) = compile(&engine, EMPTY_COMPONENT, Some(dir.path())).unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);

        let entry = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = std::fs::read(&entry).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&entry, &bytes).unwrap();
        let (_, outcome) = compile(&engine, EMPTY_COMPONENT, Some(dir.path())).unwrap();
        assert_eq!(outcome, CacheOutcome::Stored, "a corrupt entry is not used");

        std::fs::write(&entry, b"short").unwrap();
        let (_, outcome) = compile(&engine, EMPTY_COMPONENT, Some(dir.path())).unwrap();
        assert_eq!(
            outcome,
            CacheOutcome::Stored,
            "a truncated entry is not used"
        );
        let (_, outcome) = compile(&engine, EMPTY_COMPONENT, Some(dir.path())).unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);
    }

    #[test]
    fn another_engine_uses_another_entry() {
        let dir = tempfile::tempdir().unwrap();
        let (_, outcome) = compile(&engine(), EMPTY_COMPONENT, Some(dir.path())).unwrap();
        assert_eq!(outcome, CacheOutcome::Stored);
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true).consume_fuel(true);
        let fuel = Engine::new(&config).unwrap();
        let (_, outcome) = compile(&fuel, EMPTY_COMPONENT, Some(dir.path())).unwrap();
        assert_eq!(outcome, CacheOutcome::Stored);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn an_entry_from_an_incompatible_engine_is_recompiled() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true).consume_fuel(true);
        let other = Engine::new(&config).unwrap();
        // Put the other engine's (checksummed, intact) artifact under this engine's name.
        let artifact = other.precompile_component(EMPTY_COMPONENT).unwrap();
        let entry = dir.path().join(entry_name(&engine, EMPTY_COMPONENT));
        store(dir.path(), &entry, &artifact).unwrap();
        let (_, outcome) = compile(&engine, EMPTY_COMPONENT, Some(dir.path())).unwrap();
        assert_eq!(outcome, CacheOutcome::Stored);
    }
}
