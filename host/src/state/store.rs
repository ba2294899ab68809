//! Where snapshots live: a local folder or an S3 bucket, through object_store, behind a
//! small blocking interface with bounded retries.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};

/// How often a failed request is tried again, and how long each may take.
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A snapshot location: `file:///abs/path`, a plain path, or `s3://bucket/prefix`.
pub struct SnapshotStore {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for SnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStore")
            .field("url", &self.url)
            .finish()
    }
}

impl SnapshotStore {
    /// Opens the location named by `url`. S3 settings come from the usual `AWS_*` variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`);
    /// plain HTTP is allowed when the endpoint is `http://`.
    pub fn open(url: &str) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the storage runtime")?;
        let (store, prefix): (Arc<dyn ObjectStore>, ObjectPath) = if let Some(rest) =
            url.strip_prefix("s3://")
        {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("persistence URL {url} names no bucket (expected s3://BUCKET/PREFIX)");
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            let endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
            // allow_http is a client option: set it with the others, or they reset it.
            let allow_http = endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://"));
            if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err()
            {
                builder = builder.with_region("us-east-1");
            }
            let store = builder
                .with_retry(RetryConfig {
                    backoff: BackoffConfig::default(),
                    max_retries: 0,
                    retry_timeout: REQUEST_TIMEOUT,
                })
                .with_client_options(
                    ClientOptions::new()
                        .with_allow_http(allow_http)
                        .with_timeout(REQUEST_TIMEOUT)
                        .with_connect_timeout(Duration::from_secs(2)),
                )
                .build()
                .with_context(|| format!("cannot use S3 location {url}"))?;
            (Arc::new(store), ObjectPath::from(prefix))
        } else {
            let path = url.strip_prefix("file://").unwrap_or(url);
            if path.is_empty() {
                bail!("empty persistence path");
            }
            std::fs::create_dir_all(path)
                .with_context(|| format!("cannot create persistence folder {path}"))?;
            let store = LocalFileSystem::new_with_prefix(path)
                .with_context(|| format!("cannot use persistence folder {path}"))?;
            (Arc::new(store), ObjectPath::default())
        };
        Ok(Self {
            url: url.to_owned(),
            store,
            prefix,
            runtime,
        })
    }

    /// The URL this store was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, relative: &str) -> ObjectPath {
        relative
            .split('/')
            .fold(self.prefix.clone(), |path, part| path.join(part))
    }

    /// Runs `attempt` until it succeeds, up to [`ATTEMPTS`] times with doubling backoff.
    fn retry<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = object_store::Result<T>>,
    {
        let mut backoff = FIRST_BACKOFF;
        for tries in 1.. {
            match self.runtime.block_on(attempt()) {
                Ok(value) => return Ok(value),
                Err(error @ object_store::Error::NotFound { .. }) => {
                    return Err(error).with_context(|| format!("{what} in {}", self.url));
                }
                Err(error) if tries >= ATTEMPTS => {
                    return Err(error)
                        .with_context(|| format!("{what} in {} failed {tries} times", self.url));
                }
                Err(error) => {
                    tracing::debug!("{what} in {}: {error}; retrying in {backoff:?}", self.url);
                    std::thread::sleep(backoff);
                    backoff *= 2;
                }
            }
        }
        unreachable!("the loop returns")
    }

    /// Writes an object atomically.
    pub fn put(&self, relative: &str, bytes: Bytes) -> Result<()> {
        let path = self.path(relative);
        self.retry(&format!("writing {relative}"), || {
            self.store.put(&path, PutPayload::from_bytes(bytes.clone()))
        })?;
        Ok(())
    }

    /// Reads a whole object.
    pub fn get(&self, relative: &str) -> Result<Bytes> {
        let path = self.path(relative);
        self.retry(&format!("reading {relative}"), || async {
            self.store.get(&path).await?.bytes().await
        })
    }

    /// Reads a byte range of an object.
    pub fn get_range(&self, relative: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path(relative);
        self.retry(&format!("reading {relative}"), || {
            self.store.get_range(&path, range.clone())
        })
    }

    /// Deletes an object; a missing one is not an error.
    pub fn delete(&self, relative: &str) -> Result<()> {
        let path = self.path(relative);
        match self.retry(&format!("deleting {relative}"), || self.store.delete(&path)) {
            Err(e)
                if e.downcast_ref::<object_store::Error>()
                    .is_some_and(|e| matches!(e, object_store::Error::NotFound { .. })) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Every object under `relative_dir`, as (path relative to the store, size).
    pub fn list(&self, relative_dir: &str) -> Result<Vec<(String, u64)>> {
        let dir = self.path(relative_dir);
        let objects: Vec<object_store::ObjectMeta> = self
            .retry(&format!("listing {relative_dir}"), || {
                self.store.list(Some(&dir)).try_collect()
            })?;
        let prefix_parts = self.prefix.parts().count();
        Ok(objects
            .into_iter()
            .map(|meta| {
                let relative: Vec<String> = meta
                    .location
                    .parts()
                    .skip(prefix_parts)
                    .map(|p| p.as_ref().to_owned())
                    .collect();
                (relative.join("/"), meta.size)
            })
            .collect())
    }
}
