//! `Blob`: one shared, immutable heap allocation holding a znode's name and data, and for
//! ephemeral, container and TTL nodes the ephemeralOwner field (it never changes after create).
//!
//! A single thin pointer (8 bytes in the node) to `[refcount u32][name_len u32][data_len u32]
//! [owner i64, only when the top bit of name_len is set][name][data]`. Sharing is what lets a snapshot keep reading old versions while writes go on:
//! a copy-on-write chunk copy bumps the counts instead of copying the bytes.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};

#[repr(C)]
struct Header {
    refs: AtomicU32,
    name_len: u32,
    data_len: u32,
}

const HDR: usize = std::mem::size_of::<Header>();
/// `data_len` value marking null data (ZooKeeper keeps null apart from empty).
const NULL_DATA: u32 = u32::MAX;
/// Set in `name_len` when an owner follows the header.
const OWNER_FLAG: u32 = 1 << 31;
const OWNER: usize = 8;

/// A reference-counted, immutable (name, data) pair.
pub struct Blob {
    ptr: NonNull<Header>,
}

// SAFETY: the contents are immutable after construction and the count is atomic.
unsafe impl Send for Blob {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for Blob {}

fn layout(len: usize) -> Layout {
    Layout::from_size_align(HDR + len, std::mem::align_of::<Header>()).expect("blob layout")
}

impl Blob {
    /// Allocates a blob holding `name` followed by `data`.
    pub fn new(name: &[u8], data: &[u8]) -> Blob {
        Blob::new_opt(name, Some(data))
    }

    /// Allocates a blob whose data may be null.
    pub fn new_opt(name: &[u8], data: Option<&[u8]>) -> Blob {
        Blob::with_owner(name, data, 0)
    }

    /// Allocates a blob with an ephemeralOwner value (stored only when it is not 0).
    pub fn with_owner(name: &[u8], data: Option<&[u8]>, owner: i64) -> Blob {
        let null = data.is_none();
        let data = data.unwrap_or(&[]);
        assert!(name.len() < OWNER_FLAG as usize && data.len() < u32::MAX as usize);
        let extra = if owner != 0 { OWNER } else { 0 };
        let lay = layout(extra + name.len() + data.len());
        // SAFETY: the layout has a non-zero size (the header).
        let raw = unsafe { alloc(lay) } as *mut Header;
        let Some(ptr) = NonNull::new(raw) else {
            handle_alloc_error(lay)
        };
        // SAFETY: `raw` points to a fresh allocation large enough for the header and both parts.
        unsafe {
            raw.write(Header {
                refs: AtomicU32::new(1),
                name_len: name.len() as u32 | if extra > 0 { OWNER_FLAG } else { 0 },
                data_len: if null { NULL_DATA } else { data.len() as u32 },
            });
            let mut body = (raw as *mut u8).add(HDR);
            if extra > 0 {
                std::ptr::copy_nonoverlapping(owner.to_ne_bytes().as_ptr(), body, OWNER);
                body = body.add(OWNER);
            }
            std::ptr::copy_nonoverlapping(name.as_ptr(), body, name.len());
            std::ptr::copy_nonoverlapping(data.as_ptr(), body.add(name.len()), data.len());
        }
        Blob { ptr }
    }

    fn header(&self) -> &Header {
        // SAFETY: the pointer stays valid while any Blob refers to it.
        unsafe { self.ptr.as_ref() }
    }

    fn extra(&self) -> usize {
        if self.header().name_len & OWNER_FLAG != 0 {
            OWNER
        } else {
            0
        }
    }

    fn name_len(&self) -> usize {
        (self.header().name_len & !OWNER_FLAG) as usize
    }

    fn body(&self) -> *const u8 {
        // SAFETY: the body follows the header (and owner) inside the same allocation.
        unsafe { (self.ptr.as_ptr() as *const u8).add(HDR + self.extra()) }
    }

    /// The ephemeralOwner field the node was created with (0 for a persistent node).
    pub fn owner(&self) -> i64 {
        if self.extra() == 0 {
            return 0;
        }
        let mut b = [0u8; OWNER];
        // SAFETY: the owner's 8 bytes follow the header when the flag is set.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (self.ptr.as_ptr() as *const u8).add(HDR),
                b.as_mut_ptr(),
                OWNER,
            )
        };
        i64::from_ne_bytes(b)
    }

    /// The node's name (the last path segment).
    pub fn name(&self) -> &str {
        // SAFETY: name bytes were copied from a &str (or validated UTF-8) at construction.
        unsafe {
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.body(), self.name_len()))
        }
    }

    /// Whether the data is null.
    pub fn is_null(&self) -> bool {
        self.header().data_len == NULL_DATA
    }

    /// The data, or `None` when it is null.
    pub fn data_opt(&self) -> Option<&[u8]> {
        (!self.is_null()).then(|| self.data())
    }

    fn data_len(&self) -> usize {
        match self.header().data_len {
            NULL_DATA => 0,
            n => n as usize,
        }
    }

    /// The node's data (empty when null).
    pub fn data(&self) -> &[u8] {
        // SAFETY: data bytes follow the name within the allocation.
        unsafe { std::slice::from_raw_parts(self.body().add(self.name_len()), self.data_len()) }
    }

    /// A new blob with the same name and owner and other (possibly null) data.
    pub fn with_data(&self, data: Option<&[u8]>) -> Blob {
        Blob::with_owner(self.name().as_bytes(), data, self.owner())
    }

    /// Heap bytes held by this blob (for accounting).
    pub fn heap_size(&self) -> usize {
        HDR + self.extra() + self.name_len() + self.data_len()
    }
}

impl Clone for Blob {
    fn clone(&self) -> Blob {
        let old = self.header().refs.fetch_add(1, Ordering::Relaxed);
        if old > i32::MAX as u32 {
            std::process::abort();
        }
        Blob { ptr: self.ptr }
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        if self.header().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        let lay = layout(self.extra() + self.name_len() + self.data_len());
        // SAFETY: this was the last reference; the allocation came from `alloc(lay)`.
        unsafe { dealloc(self.ptr.as_ptr() as *mut u8, lay) };
    }
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blob({:?}, {} bytes)", self.name(), self.data().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_name_and_data_and_shares() {
        let b = Blob::new(b"node", b"\x00\x01data");
        assert_eq!(b.name(), "node");
        assert_eq!(b.data(), b"\x00\x01data");
        let c = b.clone();
        drop(b);
        assert_eq!(c.name(), "node");
        let d = c.with_data(Some(b""));
        assert_eq!(d.name(), "node");
        assert_eq!(d.data_opt(), Some(&b""[..]));
        let n = c.with_data(None);
        assert!(n.is_null());
        assert_eq!(
            (n.data(), n.data_opt(), n.heap_size()),
            (&b""[..], None, HDR + 4)
        );
        let e = Blob::new(b"", b"");
        assert_eq!(e.name(), "");
        assert_eq!(e.heap_size(), HDR);
        let t = std::thread::spawn(move || c.data().len());
        assert_eq!(t.join().unwrap(), 6);
    }

    #[test]
    fn keeps_an_owner_through_a_data_change() {
        let b = Blob::with_owner(b"eph", Some(b"x"), -0x1234_5678_9abc);
        assert_eq!(
            (b.name(), b.data(), b.owner()),
            ("eph", &b"x"[..], -0x1234_5678_9abc)
        );
        assert_eq!(b.heap_size(), HDR + OWNER + 4);
        let c = b.with_data(None);
        assert_eq!(
            (c.name(), c.is_null(), c.owner()),
            ("eph", true, -0x1234_5678_9abc)
        );
        assert_eq!(Blob::new(b"p", b"").owner(), 0);
        assert_eq!(Blob::with_owner(b"p", None, 0).heap_size(), HDR + 1);
    }
}
