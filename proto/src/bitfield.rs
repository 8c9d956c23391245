//! A fixed-size set of piece indices, as sent on the wire (bit 7 of byte 0 is piece 0).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitfield {
    bits: Vec<u8>,
    len: usize,
    count: usize,
}

impl Bitfield {
    pub fn new(len: usize) -> Self {
        Self {
            bits: vec![0; len.div_ceil(8)],
            len,
            count: 0,
        }
    }

    pub fn full(len: usize) -> Self {
        let mut b = Self::new(len);
        for i in 0..len {
            b.set(i);
        }
        b
    }

    /// Reads a wire bitfield for `len` pieces; `None` if the size is wrong or a spare bit is set.
    pub fn from_bytes(bytes: &[u8], len: usize) -> Option<Self> {
        if bytes.len() != len.div_ceil(8) {
            return None;
        }
        let mut b = Self {
            bits: bytes.to_vec(),
            len,
            count: 0,
        };
        if (len..b.bits.len() * 8).any(|i| b.bits[i / 8] & (0x80 >> (i % 8)) != 0) {
            return None;
        }
        b.count = (0..len).filter(|i| b.get(*i)).count();
        Some(b)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many pieces are set.
    pub fn count(&self) -> usize {
        self.count
    }

    pub fn is_complete(&self) -> bool {
        self.count == self.len
    }

    pub fn get(&self, i: usize) -> bool {
        i < self.len && self.bits[i / 8] & (0x80 >> (i % 8)) != 0
    }

    /// Sets piece `i`; returns false when it was set already or is out of range.
    pub fn set(&mut self, i: usize) -> bool {
        if i >= self.len || self.get(i) {
            return false;
        }
        self.bits[i / 8] |= 0x80 >> (i % 8);
        self.count += 1;
        true
    }

    pub fn clear(&mut self, i: usize) {
        if self.get(i) {
            self.bits[i / 8] &= !(0x80 >> (i % 8));
            self.count -= 1;
        }
    }

    pub fn iter_set(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).filter(|i| self.get(*i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_count_and_wire_round_trip() {
        let mut b = Bitfield::new(10);
        assert!(b.set(0));
        assert!(b.set(9));
        assert!(!b.set(9));
        assert!(!b.set(10));
        assert_eq!(b.count(), 2);
        let back = Bitfield::from_bytes(b.as_bytes(), 10).unwrap();
        assert_eq!(back, b);
        assert!(Bitfield::from_bytes(&[0, 0, 0], 10).is_none(), "wrong size");
        assert!(
            Bitfield::from_bytes(&[0, 0x01], 10).is_none(),
            "spare bit set"
        );
        assert!(Bitfield::full(10).is_complete());
    }
}
