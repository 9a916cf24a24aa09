//! A cap on simultaneous connections from one client address.
//!
//! actix-web has a per-worker connection limit but none per client, so one address could
//! hold every slot (the slow-client and connection-flood attacks). Each accepted
//! connection takes a [`ConnectionSlot`] from the shared [`ConnectionLimiter`]; the slot is
//! kept in the connection's data and given back when the connection ends. A connection
//! over the cap is shut down before any request on it is read.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Counts open connections per client address.
#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_ip: usize,
}

/// One open connection's claim on its address's quota; released on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    limiter: ConnectionLimiter,
    ip: IpAddr,
}

/// Marks a connection that arrived while its address was at the cap.
#[derive(Debug, Clone, Copy)]
pub struct OverConnectionLimit;

impl ConnectionLimiter {
    /// A limiter allowing `max_per_ip` simultaneous connections per address.
    pub fn new(max_per_ip: usize) -> Self {
        Self {
            open: Arc::default(),
            max_per_ip,
        }
    }

    /// Takes a slot for `ip`, or `None` when the address already holds `max_per_ip`.
    pub fn try_acquire(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            limiter: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self
            .limiter
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_address_and_returned_on_drop() {
        let limiter = ConnectionLimiter::new(2);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let first = limiter.try_acquire(a);
        let second = limiter.try_acquire(a);
        assert!(first.is_some() && second.is_some());
        assert!(
            limiter.try_acquire(a).is_none(),
            "third connection from a is over the cap"
        );
        assert!(
            limiter.try_acquire(b).is_some(),
            "another address is unaffected"
        );
        drop(first);
        let third = limiter.try_acquire(a);
        assert!(third.is_some(), "a freed slot can be taken again");
        assert!(limiter.try_acquire(a).is_none(), "and the cap still holds");
    }
}
