//! A cloneable shutdown signal shared by a service's server and background
//! tasks: tokio-util's `CancellationToken`, with a trigger that also fires
//! when dropped (a test that panics still stops what it started).

use std::future::Future;

use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug)]
pub struct Shutdown {
    token: CancellationToken,
}

/// Triggers a [`Shutdown`]; dropping it also triggers it.
#[derive(Debug)]
pub struct ShutdownTrigger {
    token: CancellationToken,
}

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let token = CancellationToken::new();
        (
            ShutdownTrigger {
                token: token.clone(),
            },
            Shutdown { token },
        )
    }

    /// A shutdown that follows `signal`: it fires when that future completes.
    pub fn from_future(signal: impl Future<Output = ()> + Send + 'static) -> Shutdown {
        let (trigger, shutdown) = Shutdown::new();
        tokio::spawn(async move {
            signal.await;
            trigger.trigger();
        });
        shutdown
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once shutdown has been triggered (or its trigger is gone).
    pub async fn wait(&self) {
        self.token.cancelled().await
    }
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.token.cancel();
    }
}

impl Drop for ShutdownTrigger {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Completes on Ctrl-C or SIGTERM: what a container runtime sends.
pub async fn os_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_a_trigger_and_a_dropped_trigger_counts_as_one() {
        let (trigger, shutdown) = Shutdown::new();
        let other = shutdown.clone();
        assert!(!other.is_triggered());
        trigger.trigger();
        other.wait().await;
        assert!(shutdown.is_triggered());

        let (trigger, shutdown) = Shutdown::new();
        drop(trigger);
        tokio::time::timeout(std::time::Duration::from_secs(1), shutdown.wait())
            .await
            .expect("a dropped trigger stops everything");
    }
}
