//! The compiled engines, built once and only when a check needs them: the
//! moderation lexicon alone holds ~11 MB and takes a few hundred ms to
//! build, which a gateway running with the checks off should not pay
//! (BENCHMARKS.md, memory). They are built at start when the settings or a
//! key's overrides use them, in the background when the settings switch
//! one on, and otherwise by the first request that needs them, on the
//! blocking pool, while other requests keep being served.

use std::sync::Arc;

use tokio::sync::OnceCell;

use super::injection::Detector;
use super::moderation::Moderator;
use crate::error::{ApiError, InternalError};

#[derive(Default)]
pub struct Safety {
    moderator: OnceCell<Arc<Moderator>>,
    detector: OnceCell<Arc<Detector>>,
}

impl Safety {
    /// Both engines, built now.
    pub fn built() -> Result<Safety, String> {
        Ok(Safety {
            moderator: OnceCell::new_with(Some(Arc::new(Moderator::new()?))),
            detector: OnceCell::new_with(Some(Arc::new(Detector::new()?))),
        })
    }

    /// Built now if `needed`, else on first use.
    pub fn new(needed: bool) -> Result<Safety, String> {
        if needed {
            Safety::built()
        } else {
            Ok(Safety::default())
        }
    }

    pub fn is_built(&self) -> bool {
        self.moderator.initialized() && self.detector.initialized()
    }

    pub async fn moderator(&self) -> Result<&Arc<Moderator>, ApiError> {
        self.moderator
            .get_or_try_init(|| build(Moderator::new))
            .await
    }

    pub async fn detector(&self) -> Result<&Arc<Detector>, ApiError> {
        self.detector.get_or_try_init(|| build(Detector::new)).await
    }

    /// Builds whatever is not built yet.
    pub async fn warm(&self) -> Result<(), ApiError> {
        self.moderator().await?;
        self.detector().await?;
        Ok(())
    }
}

/// The built-in rules are compiled in, so a failure here is a bug; the
/// request that met it gets a 500 and the next one tries again.
async fn build<T: Send + 'static>(f: fn() -> Result<T, String>) -> Result<Arc<T>, ApiError> {
    let failed = |e: String| {
        tracing::error!(error = %e, "building a safety engine failed");
        ApiError::from(InternalError::Other(e))
    };
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(engine)) => Ok(Arc::new(engine)),
        Ok(Err(e)) => Err(failed(e)),
        Err(e) => Err(failed(e.to_string())),
    }
}
