//! TCP connections per source address: one client must not take every
//! connection slot the server has.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections by source address.
#[derive(Debug)]
pub struct ConnLimit {
    per_source: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection counted against its source; released when dropped.
#[derive(Debug)]
pub struct ConnGuard {
    limit: Arc<ConnLimit>,
    ip: IpAddr,
}

impl ConnLimit {
    /// At most `per_source` connections from one address (0: no limit).
    pub fn new(per_source: usize) -> Arc<ConnLimit> {
        Arc::new(ConnLimit {
            per_source,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a new connection from `ip`, or `None` when it has too many.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ConnGuard> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if self.per_source > 0 && *n >= self.per_source {
            return None;
        }
        *n += 1;
        Some(ConnGuard {
            limit: self.clone(),
            ip,
        })
    }

    /// Connections open from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut open = self.limit.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                // Forgotten once closed: many past sources cost nothing.
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_releases() {
        let l = ConnLimit::new(2);
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let a = l.admit(ip).expect("first");
        let _b = l.admit(ip).expect("second");
        assert!(l.admit(ip).is_none(), "third refused");
        assert!(
            l.admit("127.0.0.2".parse().expect("ip")).is_some(),
            "other source"
        );
        drop(a);
        assert_eq!(l.open_from(ip), 1);
        assert!(l.admit(ip).is_some(), "room again");
    }
}
