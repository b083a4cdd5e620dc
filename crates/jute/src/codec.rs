//! Primitive jute encoding: big-endian integers, length-prefixed buffers, strings and vectors.

use crate::DecodeError;

/// Largest element count accepted for a vector before its items are read; real clients stay far below.
pub const MAX_VECTOR_LEN: i32 = 1 << 20;

/// A cursor over one received packet body, reading jute primitives.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Offset of the next unread byte.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unread rest of the buffer.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads a jute `int` (4 bytes, big-endian).
    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a jute `long` (8 bytes, big-endian).
    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// Reads a jute `boolean` (one byte, non-zero is true).
    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.take(1)?[0] != 0)
    }

    /// Reads a jute `buffer`; a length of -1 (null) reads as an empty buffer.
    pub fn read_buffer(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.read_i32()?;
        if len == -1 {
            return Ok(&[]);
        }
        if len < 0 {
            return Err(DecodeError::BadLength(len));
        }
        self.take(len as usize)
    }

    /// Reads a jute `buffer`, keeping null (length -1) apart from empty.
    pub fn read_opt_buffer(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        let len = self.read_i32()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(DecodeError::BadLength(len));
        }
        Ok(Some(self.take(len as usize)?.to_vec()))
    }

    /// Reads a jute `buffer` into an owned vector.
    pub fn read_buffer_vec(&mut self) -> Result<Vec<u8>, DecodeError> {
        Ok(self.read_buffer()?.to_vec())
    }

    /// Reads a jute `ustring` that may be null (`None`).
    pub fn read_opt_string(&mut self) -> Result<Option<String>, DecodeError> {
        match self.read_opt_buffer()? {
            None => Ok(None),
            Some(b) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| DecodeError::InvalidUtf8),
        }
    }

    /// Reads a jute `ustring`; null reads as the empty string.
    pub fn read_string(&mut self) -> Result<String, DecodeError> {
        let b = self.read_buffer()?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(DecodeError::InvalidUtf8),
        }
    }

    /// Reads a vector length whose elements take at least `min_elem` bytes each; -1 (null)
    /// reads as 0.
    pub fn read_vec_len(&mut self, min_elem: usize) -> Result<usize, DecodeError> {
        let n = self.read_i32()?;
        if n == -1 {
            return Ok(0);
        }
        if !(0..=MAX_VECTOR_LEN).contains(&n) {
            return Err(DecodeError::BadLength(n));
        }
        // A count whose elements cannot fit in the bytes left is a lie; refusing it here also
        // keeps a hostile count from reserving far more memory than the frame holds.
        if (n as usize).saturating_mul(min_elem.max(1)) > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        Ok(n as usize)
    }

    /// Reads a `vector<ustring>`.
    pub fn read_string_vec(&mut self) -> Result<Vec<String>, DecodeError> {
        // A string is at least its 4-byte length.
        let n = self.read_vec_len(4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.read_string()?);
        }
        Ok(v)
    }
}

/// Appends a jute `int`.
#[inline]
pub fn write_i32(w: &mut Vec<u8>, v: i32) {
    w.extend_from_slice(&v.to_be_bytes());
}

/// Appends a jute `long`.
#[inline]
pub fn write_i64(w: &mut Vec<u8>, v: i64) {
    w.extend_from_slice(&v.to_be_bytes());
}

/// Appends a jute `boolean`.
#[inline]
pub fn write_bool(w: &mut Vec<u8>, v: bool) {
    w.push(v as u8);
}

/// Appends a jute `buffer`.
#[inline]
pub fn write_buffer(w: &mut Vec<u8>, v: &[u8]) {
    write_i32(w, v.len() as i32);
    w.extend_from_slice(v);
}

/// Appends a jute `buffer` that may be null (written as length -1).
#[inline]
pub fn write_opt_buffer(w: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        Some(b) => write_buffer(w, b),
        None => write_i32(w, -1),
    }
}

/// Appends a jute `ustring`.
#[inline]
pub fn write_string(w: &mut Vec<u8>, v: &str) {
    write_buffer(w, v.as_bytes());
}

/// Appends a `vector<ustring>`.
pub fn write_string_vec<S: AsRef<str>>(w: &mut Vec<u8>, v: &[S]) {
    write_i32(w, v.len() as i32);
    for s in v {
        write_string(w, s.as_ref());
    }
}

/// Starts a length-prefixed frame in `w`; returns the offset to pass to [`finish_frame`].
#[inline]
pub fn begin_frame(w: &mut Vec<u8>) -> usize {
    let at = w.len();
    w.extend_from_slice(&[0, 0, 0, 0]);
    at
}

/// Fills in the 4-byte length of the frame begun at `at`.
#[inline]
pub fn finish_frame(w: &mut [u8], at: usize) {
    let len = (w.len() - at - 4) as i32;
    w[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip() {
        let mut w = Vec::new();
        write_i32(&mut w, -5);
        write_i64(&mut w, 1 << 40);
        write_bool(&mut w, true);
        write_buffer(&mut w, b"abc");
        write_string(&mut w, "h\u{e9}");
        write_string_vec(&mut w, &["a", "bc"]);
        let mut r = Reader::new(&w);
        assert_eq!(r.read_i32().unwrap(), -5);
        assert_eq!(r.read_i64().unwrap(), 1 << 40);
        assert!(r.read_bool().unwrap());
        assert_eq!(r.read_buffer().unwrap(), b"abc");
        assert_eq!(r.read_string().unwrap(), "h\u{e9}");
        assert_eq!(r.read_string_vec().unwrap(), vec!["a", "bc"]);
        assert_eq!(r.remaining(), 0);
        assert_eq!(r.read_i32(), Err(DecodeError::Truncated));
    }

    #[test]
    fn vector_counts_must_fit_the_bytes_left() {
        // 1000 strings cannot fit in 3996 bytes (each is at least 4), so the count is refused
        // before anything is reserved.
        let mut w = Vec::new();
        write_i32(&mut w, 1000);
        w.extend(std::iter::repeat_n(0u8, 3996));
        assert_eq!(
            Reader::new(&w).read_string_vec(),
            Err(DecodeError::Truncated)
        );
        // 999 empty strings do fit.
        let mut w = Vec::new();
        write_i32(&mut w, 999);
        w.extend(std::iter::repeat_n(0u8, 3996));
        assert_eq!(Reader::new(&w).read_string_vec().unwrap().len(), 999);
    }

    #[test]
    fn null_and_bad_lengths() {
        let mut w = Vec::new();
        write_i32(&mut w, -1);
        write_i32(&mut w, -7);
        let mut r = Reader::new(&w);
        assert_eq!(r.read_buffer().unwrap(), b"");
        assert_eq!(r.read_buffer(), Err(DecodeError::BadLength(-7)));
        let mut r = Reader::new(&[0x7f, 0xff, 0xff, 0xff]);
        assert_eq!(r.read_string_vec(), Err(DecodeError::BadLength(i32::MAX)));
        let mut r = Reader::new(&[0, 0, 0, 9, 1]);
        assert_eq!(r.read_string_vec(), Err(DecodeError::Truncated));
    }
}
