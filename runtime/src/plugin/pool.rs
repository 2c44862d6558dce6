//! Per-worker state of plugins (a Lua state, a WASM instance, the JIT's slot
//! buffers): each UDP worker has its own slot, claimed with one atomic swap
//! and never waited on, so the query path takes no lock; callers without a
//! slot of their own (TCP connections, `eval`) and a worker whose slot is
//! busy share a [`Pool`]. An item serves one query at a time; a caller that
//! finds nothing makes a new one.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// UDP worker slots a plugin keeps (workers beyond this use the pool).
pub const WORKER_SLOTS: usize = 64;

/// One worker's slot: the item and whether a caller holds it.
struct Slot<T> {
    busy: AtomicBool,
    item: UnsafeCell<Option<T>>,
}

// SAFETY: the item is only reached through a `Claim`, and a claim exists
// only while `busy` was swapped from false to true by its holder (acquire),
// until it stores false again (release): at most one thread touches the
// item at a time, so `T: Send` suffices for sharing the slot.
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for Slot<T> {}

/// Per-worker slots with a shared pool behind them.
pub struct WorkerSlots<T> {
    slots: Box<[Slot<T>]>,
    pool: Pool<T>,
}

impl<T> Default for WorkerSlots<T> {
    fn default() -> Self {
        WorkerSlots {
            slots: (0..WORKER_SLOTS)
                .map(|_| Slot {
                    busy: AtomicBool::new(false),
                    item: UnsafeCell::new(None),
                })
                .collect(),
            pool: Pool::new(),
        }
    }
}

/// An item held for one call: back to its slot (or the pool) when dropped,
/// unless [`Claim::discard`]ed.
pub struct Claim<'a, T> {
    slots: &'a WorkerSlots<T>,
    slot: Option<&'a Slot<T>>,
    item: Option<T>,
}

impl<T> WorkerSlots<T> {
    /// Slots for up to [`WORKER_SLOTS`] workers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Worker `worker`'s item when its slot is free, else one from the
    /// pool; either may be empty until [`Claim::get_or_try_init`].
    pub fn claim(&self, worker: Option<usize>) -> Claim<'_, T> {
        if let Some(slot) = worker.and_then(|w| self.slots.get(w)) {
            if !slot.busy.swap(true, Ordering::Acquire) {
                // SAFETY: `busy` was false and is now ours (see `Slot`).
                #[allow(unsafe_code)]
                let item = unsafe { (*slot.item.get()).take() };
                return Claim {
                    slots: self,
                    slot: Some(slot),
                    item,
                };
            }
        }
        Claim {
            slots: self,
            slot: None,
            item: self.pool.take(),
        }
    }

    /// Every item, from the slots and the pool, for a plugin no one else
    /// uses any more (on unload).
    pub fn drain_mut(&mut self) -> Vec<T> {
        let mut all = self.pool.drain_mut();
        for s in self.slots.iter_mut() {
            all.extend(s.item.get_mut().take());
        }
        all
    }

    /// Drops every idle item (they are rebuilt on demand).
    pub fn clear(&self) {
        drop(self.pool.drain());
        for s in self.slots.iter() {
            if !s.busy.swap(true, Ordering::Acquire) {
                // SAFETY: claimed as in `claim`.
                #[allow(unsafe_code)]
                let item = unsafe { (*s.item.get()).take() };
                s.busy.store(false, Ordering::Release);
                drop(item);
            }
        }
    }

    /// Items made and idle now (slots and pool), for tests and `/plugins`.
    pub fn idle(&self) -> usize {
        let mut n = self.pool.len();
        for s in self.slots.iter() {
            if !s.busy.swap(true, Ordering::Acquire) {
                // SAFETY: claimed as in `claim`.
                #[allow(unsafe_code)]
                let some = unsafe { (*s.item.get()).is_some() };
                s.busy.store(false, Ordering::Release);
                n += usize::from(some);
            }
        }
        n
    }
}

impl<T> Claim<'_, T> {
    /// The item, made by `make` if this claim has none.
    pub fn get_or_try_init<E>(&mut self, make: impl FnOnce() -> Result<T, E>) -> Result<&mut T, E> {
        if self.item.is_none() {
            self.item = Some(make()?);
        }
        match self.item.as_mut() {
            Some(t) => Ok(t),
            None => unreachable!("set just above"),
        }
    }

    /// Throws the item away (a failed call left it in an unknown state): the
    /// next caller makes a new one.
    pub fn discard(&mut self) {
        self.item = None;
    }

    /// Puts an item in (one made elsewhere, e.g. at load).
    pub fn set(&mut self, item: T) {
        self.item = Some(item);
    }
}

impl<T> Drop for Claim<'_, T> {
    fn drop(&mut self) {
        match self.slot {
            Some(slot) => {
                // SAFETY: we hold the slot (`busy` is ours) until the store below.
                #[allow(unsafe_code)]
                unsafe {
                    *slot.item.get() = self.item.take();
                }
                slot.busy.store(false, Ordering::Release);
            }
            None => {
                if let Some(item) = self.item.take() {
                    self.slots.pool.put(item);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_slots_are_reused_and_overflow_to_the_pool() {
        let s: WorkerSlots<u32> = WorkerSlots::new();
        {
            let mut c = s.claim(Some(3));
            assert_eq!(c.get_or_try_init(|| Ok::<_, ()>(7)), Ok(&mut 7));
            // The same worker again while its slot is held: the pool serves.
            let mut other = s.claim(Some(3));
            assert_eq!(other.get_or_try_init(|| Ok::<_, ()>(8)), Ok(&mut 8));
        }
        assert_eq!(s.idle(), 2, "one in the slot, one in the pool");
        let mut c = s.claim(Some(3));
        assert_eq!(
            c.get_or_try_init(|| Ok::<_, ()>(9)),
            Ok(&mut 7),
            "the slot kept its item"
        );
        c.discard();
        drop(c);
        assert_eq!(s.idle(), 1);
        let mut none = s.claim(None);
        assert_eq!(
            none.get_or_try_init(|| Ok::<_, ()>(1)),
            Ok(&mut 8),
            "no slot: the pool"
        );
    }

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
