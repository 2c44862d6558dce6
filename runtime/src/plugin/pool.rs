//! The instance pool Lua and WASM plugins share: a plugin keeps interpreter
//! states or module instances that serve one query at a time, taken from
//! here and given back after the call. There are about as many as queries
//! run at once (one per worker); a caller that finds the pool empty makes a
//! new one.

use std::sync::{Mutex, PoisonError};

/// A pool of `T`s (Lua states, WASM instances).
#[derive(Debug)]
pub struct Pool<T> {
    items: Mutex<Vec<T>>,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool {
            items: Mutex::new(Vec::new()),
        }
    }
}

impl<T> Pool<T> {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// One item, if the pool has any.
    pub fn take(&self) -> Option<T> {
        self.lock().pop()
    }

    /// One item from the pool, or a new one made by `make`.
    pub fn take_or<E>(&self, make: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        match self.take() {
            Some(t) => Ok(t),
            None => make(),
        }
    }

    /// Returns an item for the next caller.
    pub fn put(&self, item: T) {
        self.lock().push(item);
    }

    /// Takes every pooled item out (they are rebuilt on demand).
    pub fn drain(&self) -> Vec<T> {
        std::mem::take(&mut *self.lock())
    }

    /// Takes every pooled item out of a pool no one else uses (on unload).
    pub fn drain_mut(&mut self) -> Vec<T> {
        std::mem::take(self.items.get_mut().unwrap_or_else(PoisonError::into_inner))
    }

    /// Items pooled now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the pool holds nothing now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        // A panic while holding the lock cannot leave the Vec inconsistent.
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_put_drain() {
        let p = Pool::new();
        assert_eq!(p.take_or(|| Ok::<_, ()>(1)), Ok(1));
        p.put(2);
        p.put(3);
        assert_eq!(p.len(), 2);
        assert_eq!(p.take(), Some(3));
        assert_eq!(p.drain(), vec![2]);
        assert!(p.is_empty());
    }
}
