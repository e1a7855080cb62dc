//! Claims: which resources have an operation in flight in this process.
//! A claim is released when its guard is dropped, however the operation
//! ends (returned, failed, or its task dropped at runtime shutdown), so no
//! path can leave one held. The claim set is also the registry of live
//! operations: reconciliation acts only on records nobody claims.
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};

#[derive(Clone, Default, Debug)]
pub struct Claims(Arc<Mutex<HashSet<String>>>);

/// A held claim; dropping it releases the resource.
#[derive(Debug)]
#[must_use = "a claim is released as soon as it is dropped"]
pub struct Claim {
    claims: Claims,
    key: String,
}

impl Claims {
    fn set(&self) -> MutexGuard<'_, HashSet<String>> {
        // The set holds no invariant a panic could break halfway.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims `key`, or None when another operation holds it.
    pub fn try_take(&self, key: &str) -> Option<Claim> {
        self.set()
            .insert(key.to_string())
            .then(|| Claim { claims: self.clone(), key: key.to_string() })
    }

    /// Claims `key`, or says which resource is busy.
    pub fn take(&self, key: &str, what: &str) -> Result<Claim> {
        self.try_take(key).ok_or_else(|| {
            Error::Conflict(format!(
                "{what} {key} has another operation in progress; retry when it ends"
            ))
        })
    }

    pub fn is_held(&self, key: &str) -> bool {
        self.set().contains(key)
    }

    /// How many claims are held (tests assert none is left).
    pub fn count(&self) -> usize {
        self.set().len()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claims.set().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_exclusive_and_released_on_drop() {
        let c = Claims::default();
        let held = c.take("a", "sandbox").unwrap();
        assert!(c.try_take("a").is_none());
        assert!(c.take("a", "sandbox").unwrap_err().to_string().contains("another operation"));
        let other = c.take("b", "sandbox").unwrap();
        drop(held);
        assert!(!c.is_held("a") && c.is_held("b"));
        drop(other);
        assert_eq!(c.count(), 0);
    }
}
