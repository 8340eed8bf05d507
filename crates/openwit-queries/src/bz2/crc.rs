//! bzip2's CRC-32: polynomial 0x04c11db7, most significant bit first (not the reflected CRC-32
//! of zip/gzip), computed eight bytes per step with eight tables ("slicing by 8").

const POLY: u32 = 0x04c1_1db7;

const fn tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut b = 0;
    while b < 256 {
        let mut c = (b as u32) << 24;
        let mut k = 0;
        while k < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ POLY
            } else {
                c << 1
            };
            k += 1;
        }
        t[0][b] = c;
        b += 1;
    }
    // t[k][b]: the CRC register after byte b followed by k zero bytes.
    let mut k = 1;
    while k < 8 {
        let mut b = 0;
        while b < 256 {
            let p = t[k - 1][b];
            t[k][b] = (p << 8) ^ t[0][(p >> 24) as usize];
            b += 1;
        }
        k += 1;
    }
    t
}

static T: [[u32; 256]; 8] = tables();

/// Updates a CRC register (start with `!0`, finish with `!`) with `data`.
pub(crate) fn update(mut crc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let x = crc ^ u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        crc = T[7][(x >> 24) as usize]
            ^ T[6][((x >> 16) & 0xff) as usize]
            ^ T[5][((x >> 8) & 0xff) as usize]
            ^ T[4][(x & 0xff) as usize]
            ^ T[3][c[4] as usize]
            ^ T[2][c[5] as usize]
            ^ T[1][c[6] as usize]
            ^ T[0][c[7] as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc << 8) ^ T[0][((crc >> 24) ^ u32::from(b)) as usize];
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitwise(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b) << 24;
            for _ in 0..8 {
                crc = if crc & 0x8000_0000 != 0 {
                    (crc << 1) ^ POLY
                } else {
                    crc << 1
                };
            }
        }
        !crc
    }

    #[test]
    fn matches_the_bitwise_definition() {
        // The check value of CRC-32/BZIP2.
        assert_eq!(!update(!0, b"123456789"), 0xfc89_1918);
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect();
        for n in [0, 1, 7, 8, 9, 15, 16, 17, 999, 1000] {
            assert_eq!(!update(!0, &data[..n]), bitwise(&data[..n]), "{n}");
        }
    }
}
