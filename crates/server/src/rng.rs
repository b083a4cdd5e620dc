//! The server's sources of randomness and of wall-clock time.
//!
//! A real server draws from the operating system's entropy through `rand::thread_rng` and reads
//! the system clock. A deterministic simulation seeds this thread's generator with [`seed`] and
//! sets a simulated clock with [`set_clock`] instead, so every random choice — openraft's
//! election timeouts (through [`crate::raft::runtime::ConcordRuntime`]), session passwords,
//! the order hash maps iterate in ([`HashMap`]) — and every timestamp repeats exactly for the
//! same seed.

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::cell::RefCell;

thread_local! {
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
    static CLOCK: std::cell::Cell<Option<fn() -> i64>> = const { std::cell::Cell::new(None) };
}

/// Makes [`now_ms`] on this thread read `clock` (milliseconds since the epoch), and makes
/// [`blocking`] run its work inline (a simulation has no other threads); `None` undoes both.
pub fn set_clock(clock: Option<fn() -> i64>) {
    CLOCK.with(|c| c.set(clock));
}

/// Whether this thread runs a simulation (a simulated clock is set): file work then runs
/// inline, where another thread would finish at a time the simulation does not control.
pub fn simulated() -> bool {
    CLOCK.with(|c| c.get()).is_some()
}

/// Runs blocking work (file system calls) off the async threads with `spawn_blocking`, or
/// inline in a simulation (see [`set_clock`]), where another thread would finish at a time
/// the simulation does not control.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    if simulated() {
        return Ok(f());
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)
}

/// Wall-clock time in milliseconds since the epoch: the system clock, or the simulated one.
pub fn now_ms() -> i64 {
    if let Some(f) = CLOCK.with(|c| c.get()) {
        return f();
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The hasher of the server's hash maps: foldhash with a per-map seed drawn from
/// [`ServerRng`] (random in a real server, repeatable in a simulation).
#[derive(Clone, Copy, Debug)]
pub struct SeededState(foldhash::fast::FixedState);

impl Default for SeededState {
    fn default() -> Self {
        SeededState(foldhash::fast::FixedState::with_seed(random_u64()))
    }
}

impl std::hash::BuildHasher for SeededState {
    type Hasher = foldhash::fast::FoldHasher;

    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

/// A hash map that iterates in an order fixed by [`ServerRng`].
pub type HashMap<K, V> = std::collections::HashMap<K, V, SeededState>;
/// A hash set that iterates in an order fixed by [`ServerRng`].
pub type HashSet<K> = std::collections::HashSet<K, SeededState>;

/// Makes this thread's random choices come from a generator seeded with `seed`.
pub fn seed(seed: u64) {
    SEEDED.with(|s| *s.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
}

/// Returns this thread to the operating system's entropy.
pub fn unseed() {
    SEEDED.with(|s| *s.borrow_mut() = None);
}

/// A handle on this thread's generator: the seeded one if [`seed`] was called, else
/// `rand::thread_rng`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ServerRng;

impl ServerRng {
    fn with<T>(f: impl FnOnce(&mut dyn RngCore) -> T) -> T {
        SEEDED.with(|s| match s.borrow_mut().as_mut() {
            Some(r) => f(r),
            None => f(&mut rand::thread_rng()),
        })
    }
}

impl RngCore for ServerRng {
    fn next_u32(&mut self) -> u32 {
        Self::with(|r| r.next_u32())
    }

    fn next_u64(&mut self) -> u64 {
        Self::with(|r| r.next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        Self::with(|r| r.fill_bytes(dest))
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        Self::with(|r| r.try_fill_bytes(dest))
    }
}

/// A random u64 from this thread's generator.
pub fn random_u64() -> u64 {
    ServerRng.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_repeats_its_sequence() {
        seed(7);
        let a: Vec<u64> = (0..4).map(|_| random_u64()).collect();
        seed(7);
        let b: Vec<u64> = (0..4).map(|_| random_u64()).collect();
        seed(8);
        let c: Vec<u64> = (0..4).map(|_| random_u64()).collect();
        unseed();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
