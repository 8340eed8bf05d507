//! A picture's EXIF orientation where the file declares it, as Pillow's `ImageOps.exif_transpose`
//! finds it: the EXIF block of JPEG, PNG (`eXIf`, ImageMagick's hex "Raw profile type exif",
//! XMP's `tiff:Orientation`) and WebP (the `EXIF` chunk, read in place). `download` applies it
//! to what it stores, and the overlap analysis to what it hashes.

use image::metadata::Orientation;
use image::{ImageDecoder, ImageFormat};

fn be32(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 4)
        .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
}

fn le32(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 4)
        .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
}

/// Reads the EXIF orientation (tag 0x0112 of IFD0) from a raw EXIF block (with or without the
/// `Exif\0\0` prefix).
pub fn exif_orientation(exif: &[u8]) -> Option<u8> {
    let t = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
    if t.len() < 8 {
        return None;
    }
    let le = match &t[0..2] {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u16_at = |i: usize| -> Option<u16> {
        let b = t.get(i..i + 2)?;
        Some(if le {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        })
    };
    let u32_at = |i: usize| -> Option<u32> {
        let b = t.get(i..i + 4)?;
        Some(if le {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        } else {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        })
    };
    let ifd = u32_at(4)? as usize;
    let n = u16_at(ifd)? as usize;
    for i in 0..n.min(512) {
        let e = ifd + 2 + i * 12;
        if u16_at(e)? == 0x0112 {
            let v = u16_at(e + 8)?;
            return (1..=8).contains(&v).then_some(v as u8);
        }
    }
    None
}

/// A PNG's orientation from its text metadata, for files without an eXIf chunk: ImageMagick's
/// hex "Raw profile type exif" (tEXt), else XMP's `tiff:Orientation` (iTXt `XML:com.adobe.xmp`,
/// uncompressed), as Pillow reads them.
pub fn png_text_orientation(b: &[u8]) -> Option<u8> {
    let mut i = 8;
    let mut xmp = None;
    while let Some(len) = be32(b, i) {
        let kind = b.get(i + 4..i + 8)?;
        let data = b.get(i + 8..(i + 8).checked_add(len as usize)?)?;
        match kind {
            b"tEXt" if data.starts_with(b"Raw profile type exif\0") => {
                // "\nexif\n<length>\n<hex digits, in lines>"
                let text = &data[22..];
                let mut lines = text.split(|&c| c == b'\n').filter(|l| !l.is_empty());
                let (_, _) = (lines.next()?, lines.next()?);
                let hex: Vec<u8> = lines
                    .flatten()
                    .copied()
                    .filter(|c| c.is_ascii_hexdigit())
                    .collect();
                let exif: Vec<u8> = hex
                    .chunks_exact(2)
                    .map(|p| {
                        let d = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                        d(p[0]) << 4 | d(p[1])
                    })
                    .collect();
                if let Some(o) = exif_orientation(&exif) {
                    return Some(o);
                }
            }
            b"iTXt" if data.starts_with(b"XML:com.adobe.xmp\0\0") => xmp = Some(data),
            b"IEND" => break,
            _ => {}
        }
        i += 12 + len as usize;
    }
    let xmp = xmp?;
    for key in [&b"tiff:Orientation=\""[..], b"<tiff:Orientation>"] {
        if let Some(at) = xmp.windows(key.len()).position(|w| w == key) {
            let v = *xmp.get(at + key.len())?;
            return (b'1'..=b'8').contains(&v).then_some(v - b'0');
        }
    }
    None
}

/// A WebP's orientation from its `EXIF` chunk (RIFF chunks after the 12-byte file header).
pub fn webp_exif_orientation(b: &[u8]) -> Option<u8> {
    let mut i = 12;
    while let Some(len) = le32(b, i + 4) {
        let data = b.get(i + 8..(i + 8).checked_add(len as usize)?)?;
        if b.get(i..i + 4)? == b"EXIF" {
            return exif_orientation(data);
        }
        i += 8 + len as usize + (len as usize & 1);
    }
    None
}

/// The orientation of a picture whose `format` the `image` decoder `dec` reads from `bytes`:
/// what the decoder finds, else the PNG text or WebP EXIF orientation it does not read. WebP's
/// is never asked of the decoder: image-webp allocates an `EXIF` chunk's declared size (up to
/// 4 GiB) before reading it, whatever the file's length (found by fuzzing `download`).
pub fn of_decoder(
    format: Option<ImageFormat>,
    dec: &mut impl ImageDecoder,
    bytes: &[u8],
) -> Orientation {
    let found = if format == Some(ImageFormat::WebP) {
        Orientation::NoTransforms
    } else {
        dec.orientation().unwrap_or(Orientation::NoTransforms)
    };
    if found != Orientation::NoTransforms {
        return found;
    }
    let extra = match format {
        Some(ImageFormat::Png) => png_text_orientation(bytes),
        Some(ImageFormat::WebP) => webp_exif_orientation(bytes),
        _ => None,
    };
    extra
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms)
}
