//! Where Delta tables live: a local folder, a `file://` URL or an `s3://bucket/prefix` URL, and
//! the object store and async runtime that reach it.
//!
//! S3-compatible stores (AWS S3, MinIO, Aliyun OSS, Tencent COS) are configured the way
//! `object_store` reads them: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL` (`AWS_ENDPOINT`), `AWS_ALLOW_HTTP`, `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`, and
//! `AWS_SECRET_ACCESS_KEY_FILE` for a key kept in a file. None of them is ever logged: a target
//! shows only its URL.

use std::path::Path;
use std::sync::{Arc, Once};

use deltalake_core::logstore::{
    default_logstore, logstore_factories, LogStore, LogStoreFactory, StorageConfig,
};
use deltalake_core::DeltaResult;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;
use url::Url;

use super::DeltaError;

/// The root under which the `messages`, `dead_letters` and `findings` tables live.
pub struct DeltaTarget {
    root: Url,
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for DeltaTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL only: the store holds credentials.
        f.debug_struct("DeltaTarget")
            .field("root", &self.root.as_str())
            .finish_non_exhaustive()
    }
}

/// True when `out` names an object store rather than a local folder.
pub fn is_url(out: &str) -> bool {
    out.starts_with("s3://") || out.starts_with("s3a://") || out.starts_with("file://")
}

/// True when the output root `out` holds Delta tables: a URL, or a folder whose `messages`
/// table has a Delta log.
pub fn is_delta_tree(out: &Path) -> bool {
    is_url(&out.to_string_lossy())
        || crate::sink::layout::messages_root(out)
            .join("_delta_log")
            .is_dir()
}

impl DeltaTarget {
    /// Opens `out`: a local folder (created when missing), `file:///abs/path`, or
    /// `s3://bucket/prefix`, with S3 settings from the environment.
    pub fn open(out: &str) -> Result<Self, DeltaError> {
        Self::open_with(out, &[])
    }

    /// [`Self::open`] with S3 settings given as `(key, value)` pairs over the environment's (the
    /// keys of the environment variables, such as `AWS_ENDPOINT_URL`, in any case).
    pub fn open_with(out: &str, options: &[(String, String)]) -> Result<Self, DeltaError> {
        let bad = |why: String| DeltaError::Location {
            out: out.to_owned(),
            why,
        };
        let mut root = if is_url(out) {
            Url::parse(out).map_err(|e| bad(e.to_string()))?
        } else {
            let path = Path::new(out);
            std::fs::create_dir_all(path).map_err(|e| bad(e.to_string()))?;
            let abs = path.canonicalize().map_err(|e| bad(e.to_string()))?;
            Url::from_directory_path(&abs).map_err(|()| bad("not an absolute path".into()))?
        };
        if !root.path().ends_with('/') {
            let with_slash = format!("{}/", root.path());
            root.set_path(&with_slash);
        }
        let store: Arc<dyn ObjectStore> = match root.scheme() {
            "file" => Arc::new(LocalFileSystem::new()),
            "s3" | "s3a" => {
                register_s3_logstore();
                let bucket = root
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| bad("an s3:// URL needs a bucket: s3://BUCKET/prefix".into()))?;
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                for (key, value) in options {
                    let key: AmazonS3ConfigKey = key
                        .to_ascii_lowercase()
                        .parse()
                        .map_err(|_| bad(format!("unknown S3 setting {key}")))?;
                    builder = builder.with_config(key, value);
                }
                if let Ok(file) = std::env::var("AWS_SECRET_ACCESS_KEY_FILE") {
                    let key = std::fs::read_to_string(&file).map_err(|e| {
                        bad(format!("reading AWS_SECRET_ACCESS_KEY_FILE {file}: {e}"))
                    })?;
                    builder = builder.with_secret_access_key(key.trim());
                }
                Arc::new(builder.build().map_err(|e| bad(e.to_string()))?)
            }
            other => {
                return Err(bad(format!(
                    "unsupported scheme {other}:// (use a folder, file:// or s3://)"
                )))
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| bad(format!("starting the I/O runtime: {e}")))?;
        Ok(DeltaTarget {
            root,
            store,
            runtime,
        })
    }

    /// The root URL (ends with `/`).
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The URL of the table `name` under the root.
    pub fn table_url(&self, name: &str) -> Url {
        self.root
            .join(&format!("{name}/"))
            .expect("a table name is a plain path segment")
    }

    /// The store, rooted at the bucket (or at `/` for local files).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Makes a file the store has written durable, when the store is a local disk: its puts
    /// rename without an fsync, and after a power loss a log entry could then survive the data
    /// files it adds. A put to object storage is durable when it returns; nothing to do there.
    pub fn sync_local(&self, url: &Url) -> Result<(), DeltaError> {
        if url.scheme() != "file" {
            return Ok(());
        }
        let Ok(path) = url.to_file_path() else {
            return Ok(());
        };
        let fail = |source| DeltaError::Sync {
            path: path.display().to_string(),
            source,
        };
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(fail)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(fail)?;
        }
        Ok(())
    }

    /// Runs `f` to completion on the target's runtime (the pipeline's writer is a plain thread).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

/// delta-rs knows `file://` and `memory://` out of the box; `s3://` gets its default log store,
/// which commits with a conditional put (`If-None-Match: *`), so that two writers never replace
/// each other's commit on a store that honours it (AWS S3, MinIO, Tencent COS).
fn register_s3_logstore() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for scheme in ["s3://", "s3a://"] {
            logstore_factories().insert(
                Url::parse(scheme).expect("a valid scheme"),
                Arc::new(ConditionalPutLogStore),
            );
        }
    });
}

struct ConditionalPutLogStore;

impl LogStoreFactory for ConditionalPutLogStore {
    fn with_options(
        &self,
        prefixed_store: Arc<dyn ObjectStore>,
        root_store: Arc<dyn ObjectStore>,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}
