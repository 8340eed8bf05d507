//! Decoding, validation, resizing and encoding of one downloaded image.
//!
//! - The format is sniffed from the bytes (never trusted from the URL or Content-Type).
//! - Dimensions come from the header and are checked against the bomb limits before any pixel is
//!   decoded.
//! - JPEGs are decoded by libjpeg-turbo (SIMD IDCT and colour conversion) scaled in the DCT
//!   domain (libjpeg's `scale_num/scale_denom`) to the smallest m/8 of the stored size that still
//!   covers the resize target, which skips most of the inverse DCT and colour conversion work.
//!   Streams libjpeg-turbo declines (CMYK, lossless, corrupt data it only warns about) fall back
//!   to `jpeg-decoder` (scaling by 1/2, 1/4 or 1/8), which keeps the drop reasons as before.
//!   Large non-interlaced PNGs are decoded row by row (`png`) and reduced on the fly by the
//!   largest integer box factor that still covers the resize target, so a 9,400 x 9,400 16-bit
//!   PNG never exists whole in memory. Other formats use `image`. JPEG output is encoded by
//!   libjpeg-turbo (4:2:0).
//! - [`probe`] reads format, size, channels and sample size from the header alone;
//!   [`decode_cost`] turns that into the memory a decode will take, which the stage admits
//!   against its budget (`crate::budget`).
//! - EXIF orientation is applied; grayscale, CMYK, palette and 16-bit images become RGB8; alpha is
//!   composited on white.
//! - Resizing uses `fast_image_resize` (SIMD): box (area) filter when shrinking, as img2dataset's
//!   INTER_AREA, Lanczos3 when enlarging, as its INTER_LANCZOS4.

use std::io::Cursor;

use fast_image_resize as fr;
use image::{DynamicImage, ImageDecoder, RgbImage, metadata::Orientation};

use crate::config::{Config, EncodeFormat, ResizeMode};

/// The image formats recognised from their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Jpeg,
    Png,
    Gif,
    Webp,
    Bmp,
    Tiff,
    /// An HTML (or XML) document, typically an error page served with an image URL.
    Html,
    Unknown,
}

/// Sniffs the real format of `b`.
pub fn sniff(b: &[u8]) -> Sniffed {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Sniffed::Jpeg;
    }
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Sniffed::Png;
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        return Sniffed::Gif;
    }
    if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        return Sniffed::Webp;
    }
    if b.starts_with(b"BM") && b.len() >= 26 {
        return Sniffed::Bmp;
    }
    if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
        return Sniffed::Tiff;
    }
    let mut s = b;
    if s.starts_with(&[0xEF, 0xBB, 0xBF]) {
        s = &s[3..];
    }
    let start = s
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(s.len());
    let head: Vec<u8> = s[start..s.len().min(start + 64)]
        .iter()
        .map(|c| c.to_ascii_lowercase())
        .collect();
    for tag in [
        &b"<!doctype"[..],
        b"<html",
        b"<head",
        b"<body",
        b"<?xml",
        b"<!--",
        b"<svg",
        b"<title",
        b"<script",
    ] {
        if head.starts_with(tag) {
            return Sniffed::Html;
        }
    }
    Sniffed::Unknown
}

/// What an image's header says, read from its first bytes without decoding any pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub format: Sniffed,
    /// Stored size (before any EXIF orientation); GIF: the logical screen or the first frame's
    /// extent if larger, WebP: the canvas.
    pub width: u32,
    pub height: u32,
    /// Channels of the pixels the decoder hands back: JPEG its components (1, 3, 4), PNG 1 to 4
    /// (a palette expands to RGB, a tRNS chunk adds alpha), GIF 4 (RGBA), WebP 3 or 4, BMP 3 or
    /// 4, TIFF its samples per pixel.
    pub channels: u8,
    /// Bytes per sample of those pixels: 2 for 16-bit PNG, TIFF and 12/16-bit JPEG, else 1.
    pub bytes_per_sample: u8,
}

impl Header {
    /// Bytes of the decoder's output at full size: width x height x channels x bytes per sample.
    pub fn decoded_bytes(&self) -> u64 {
        self.width as u64 * self.height as u64 * self.channels as u64 * self.bytes_per_sample as u64
    }
}

fn be16(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]) as u32)
}

fn le16(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]) as u32)
}

fn be32(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn le32(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le24(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 3)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], 0]))
}

/// The JPEG frame header (SOFn): walks the marker segments before the first scan, skipping fill
/// bytes and, as libjpeg does, junk between segments.
fn jpeg_header(b: &[u8]) -> Option<Header> {
    let mut i = 2;
    loop {
        // Find the next marker: 0xFF followed by a byte that is not 0xFF or 0x00.
        while *b.get(i)? != 0xFF {
            i += 1;
        }
        while *b.get(i + 1)? == 0xFF {
            i += 1;
        }
        let m = *b.get(i + 1)?;
        match m {
            0x00 | 0x01 | 0xD0..=0xD8 => {
                i += 2;
                continue;
            }
            0xD9 | 0xDA => return None,
            _ => {}
        }
        let len = be16(b, i + 2)? as usize;
        if len < 2 {
            return None;
        }
        if matches!(m, 0xC0..=0xCF) && !matches!(m, 0xC4 | 0xC8 | 0xCC) {
            let p = *b.get(i + 4)?;
            let height = be16(b, i + 5)?;
            let width = be16(b, i + 7)?;
            let comps = *b.get(i + 9)?;
            return Some(Header {
                format: Sniffed::Jpeg,
                width,
                height,
                channels: comps,
                bytes_per_sample: if p > 8 { 2 } else { 1 },
            });
        }
        i += 2 + len;
    }
}

fn png_header(b: &[u8]) -> Option<Header> {
    if b.get(12..16)? != b"IHDR" {
        return None;
    }
    let (width, height) = (be32(b, 16)?, be32(b, 20)?);
    let depth = *b.get(24)?;
    // The chunks up to the first IDAT belong to the header: a tRNS among them adds alpha.
    let mut i = 33;
    let mut trns = false;
    loop {
        let len = be32(b, i)? as usize;
        match b.get(i + 4..i + 8)? {
            b"IDAT" => break,
            b"tRNS" => trns = true,
            b"IEND" => return None,
            _ => {}
        }
        i = i.checked_add(12)?.checked_add(len)?;
    }
    let channels = match *b.get(25)? {
        0 => 1,
        2 | 3 => 3, // palette: expanded to RGB
        4 => 2,
        6 => 4,
        _ => return None,
    } + u8::from(trns);
    Some(Header {
        format: Sniffed::Png,
        width,
        height,
        channels,
        bytes_per_sample: if depth == 16 { 2 } else { 1 },
    })
}

/// The logical screen, grown to the first frame's extent when that frame lies outside it (as
/// Pillow does): a tiny screen may announce a gigapixel frame.
fn gif_header(b: &[u8]) -> Option<Header> {
    let (sw, sh) = (le16(b, 6)?, le16(b, 8)?);
    let flags = *b.get(10)?;
    let mut i = 13;
    if flags & 0x80 != 0 {
        i += 3 << ((flags & 7) + 1);
    }
    // Extensions (0x21, label, sub-blocks ending with a 0 length) up to the first image
    // descriptor (0x2C: left, top, width, height).
    loop {
        match *b.get(i)? {
            0x21 => {
                i += 2;
                loop {
                    let n = *b.get(i)? as usize;
                    i += 1 + n;
                    if n == 0 {
                        break;
                    }
                }
            }
            0x2C => break,
            _ => return None,
        }
    }
    let (left, top) = (le16(b, i + 1)?, le16(b, i + 3)?);
    let (fw, fh) = (le16(b, i + 5)?, le16(b, i + 7)?);
    Some(Header {
        format: Sniffed::Gif,
        width: sw.max(left + fw),
        height: sh.max(top + fh),
        channels: 4,
        bytes_per_sample: 1,
    })
}

fn webp_header(b: &[u8]) -> Option<Header> {
    let (width, height, alpha) = match b.get(12..16)? {
        b"VP8 " => {
            // Frame tag (3 bytes), start code 9D 01 2A, then 14-bit width and height.
            if b.get(23..26)? != [0x9D, 0x01, 0x2A] {
                return None;
            }
            (le16(b, 26)? & 0x3FFF, le16(b, 28)? & 0x3FFF, false)
        }
        b"VP8L" => {
            if *b.get(20)? != 0x2F {
                return None;
            }
            let v = le32(b, 21)?;
            (
                (v & 0x3FFF) + 1,
                ((v >> 14) & 0x3FFF) + 1,
                (v >> 28) & 1 == 1,
            )
        }
        b"VP8X" => (le24(b, 24)? + 1, le24(b, 27)? + 1, *b.get(20)? & 0x10 != 0),
        _ => return None,
    };
    Some(Header {
        format: Sniffed::Webp,
        width,
        height,
        channels: if alpha { 4 } else { 3 },
        bytes_per_sample: 1,
    })
}

fn bmp_header(b: &[u8]) -> Option<Header> {
    let (width, height, bpp) = if le32(b, 14)? == 12 {
        (le16(b, 18)?, le16(b, 20)?, le16(b, 24)?)
    } else {
        let w = le32(b, 18)? as i32;
        let h = le32(b, 22)? as i32;
        (w.unsigned_abs(), h.unsigned_abs(), le16(b, 28)?)
    };
    Some(Header {
        format: Sniffed::Bmp,
        width,
        height,
        channels: if bpp == 32 { 4 } else { 3 },
        bytes_per_sample: 1,
    })
}

fn tiff_header(b: &[u8]) -> Option<Header> {
    let le = b.starts_with(b"II");
    let u16_at = |i| if le { le16(b, i) } else { be16(b, i) };
    let u32_at = |i| if le { le32(b, i) } else { be32(b, i) };
    let ifd = u32_at(4)? as usize;
    let n = u16_at(ifd)? as usize;
    let (mut w, mut h, mut bits, mut spp) = (None, None, 8, 1);
    for k in 0..n.min(1024) {
        let e = ifd + 2 + k * 12;
        let (tag, kind) = (u16_at(e)?, u16_at(e + 2)?);
        // A SHORT value sits in the first two bytes of the value field, a LONG in all four.
        let value = match kind {
            3 => u16_at(e + 8)?,
            4 => u32_at(e + 8)?,
            _ => continue,
        };
        match tag {
            256 => w = Some(value),
            257 => h = Some(value),
            // BitsPerSample with several samples points elsewhere; 8 or 16 bits is what matters.
            258 if u32_at(e + 4)? == 1 => bits = value,
            258 => bits = u16_at(value as usize).unwrap_or(8),
            277 => spp = value,
            _ => {}
        }
    }
    Some(Header {
        format: Sniffed::Tiff,
        width: w?,
        height: h?,
        channels: spp.clamp(1, 8) as u8,
        bytes_per_sample: if bits > 8 { 2 } else { 1 },
    })
}

/// Reads the format and size of an image from its first bytes (the whole header must be there:
/// a JPEG's frame header may follow large EXIF or ICC segments, a PNG's header runs up to its
/// first IDAT chunk, a GIF's up to its first image descriptor). `None` for anything that is
/// not a recognised image or whose header is cut short or malformed.
pub fn probe(b: &[u8]) -> Option<Header> {
    match sniff(b) {
        Sniffed::Jpeg => jpeg_header(b),
        Sniffed::Png => png_header(b),
        Sniffed::Gif => gif_header(b),
        Sniffed::Webp => webp_header(b),
        Sniffed::Bmp => bmp_header(b),
        Sniffed::Tiff => tiff_header(b),
        Sniffed::Html | Sniffed::Unknown => None,
    }
}

/// Bytes of memory [`process`] is expected to hold at its peak for these image bytes, from the
/// header alone: the decoder's output at the size it will decode to (JPEGs are decoded scaled
/// in the DCT, to the smallest eighth covering the resize target) plus the RGB8 working copies
/// (conversion, then orientation or resizing: 2 x 3 bytes a pixel). Images over the bomb limits
/// or without a readable header cost nothing: they fail before any pixel is decoded, or the
/// decoder finds them corrupt.
pub fn decode_cost(b: &[u8], o: &ImageOptions) -> u64 {
    let Some(h) = probe(b) else { return 0 };
    if check_bomb(h.width, h.height, o).is_err() {
        return 0;
    }
    let (mut w, mut ht) = (h.width as u64, h.height as u64);
    if h.format == Sniffed::Jpeg && o.jpeg_dct_scaling && !o.jpeg_zune {
        // The orientation is not known from the frame header: take the larger of the two.
        let (a, b2) = (
            jpeg_scale(h.width, h.height, false, o),
            jpeg_scale(h.width, h.height, true, o),
        );
        let mut num = a.max(b2) as u64;
        if h.channels == 4 || h.bytes_per_sample == 2 {
            // CMYK and 12/16-bit JPEGs go to jpeg-decoder, which scales by 1/8, 1/4 or 1/2 only.
            num = num.next_power_of_two();
        }
        w = (w * num).div_ceil(8);
        ht = (ht * num).div_ceil(8);
    }
    // IHDR's interlace method is its last byte (offset 28): 0 none, 1 Adam7.
    if h.format == Sniffed::Png && o.png_box_scaling && b.get(28) == Some(&0) {
        let k = png_factor(h.width, h.height, false, o).min(png_factor(h.width, h.height, true, o));
        if k >= 2 {
            // Row by row: one row of 16-bit RGBA, the column-to-cell map, and the reduced RGB8
            // image with its two working copies.
            let row = w * 8;
            let px = (w / k as u64) * (ht / k as u64);
            return row + w * 4 + px * 9;
        }
    }
    let px = w * ht;
    px * h.channels as u64 * h.bytes_per_sample as u64 + px * 6
}

/// The eighths (1 to 8) a JPEG of stored size `w` x `h` is decoded at: the smallest whose scaled
/// size still covers the resize target in both directions (`rotated`: EXIF swaps the sides).
fn jpeg_scale(w: u32, h: u32, rotated: bool, o: &ImageOptions) -> usize {
    let (ow, oh) = if rotated { (h, w) } else { (w, h) };
    let Some((rw, rh)) = plan(ow, oh, o).resize else {
        return 8;
    };
    let (rw, rh) = if rotated { (rh, rw) } else { (rw, rh) };
    (1..8usize)
        .find(|&num| {
            let f = turbojpeg::ScalingFactor::new(num, 8);
            f.scale(w as usize) >= rw as usize && f.scale(h as usize) >= rh as usize
        })
        .unwrap_or(8)
}

/// Why an image was dropped: a stable reason token and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFail {
    pub reason: &'static str,
    pub message: String,
}

fn fail(reason: &'static str, message: impl Into<String>) -> ImageFail {
    ImageFail {
        reason,
        message: message.into(),
    }
}

/// What decoding and resizing needs from the configuration.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    pub image_size: u32,
    pub resize_mode: ResizeMode,
    pub resize_only_if_bigger: bool,
    pub encode_format: EncodeFormat,
    pub encode_quality: u8,
    pub skip_reencode: bool,
    pub min_image_size: u32,
    pub max_aspect_ratio: Option<f64>,
    pub max_pixels: u64,
    pub max_dimension: u32,
    /// Use DCT-domain scaled JPEG decoding (on by default; off only for comparisons).
    pub jpeg_dct_scaling: bool,
    /// Decode JPEGs with `image` (zune-jpeg, full size) instead; for comparisons only.
    pub jpeg_zune: bool,
    /// Decode large non-interlaced PNGs row by row, reduced by an integer box factor that still
    /// covers the resize target (on by default; off only for comparisons).
    pub png_box_scaling: bool,
    /// Decode and encode JPEGs with libjpeg-turbo (SIMD, scaled decoding at any m/8); off:
    /// `jpeg-decoder` (1/2, 1/4, 1/8 only) and `jpeg-encoder`, for comparisons only.
    pub jpeg_turbo: bool,
}

impl ImageOptions {
    pub fn from_config(c: &Config) -> Self {
        ImageOptions {
            image_size: c.image_size,
            resize_mode: c.resize_mode,
            resize_only_if_bigger: c.resize_only_if_bigger,
            encode_format: c.encode_format,
            encode_quality: c.encode_quality,
            skip_reencode: c.skip_reencode,
            min_image_size: c.min_image_size,
            max_aspect_ratio: c.max_aspect_ratio,
            max_pixels: c.max_pixels,
            max_dimension: c.max_dimension,
            jpeg_dct_scaling: true,
            png_box_scaling: true,
            jpeg_zune: false,
            jpeg_turbo: true,
        }
    }
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions::from_config(&Config::default())
    }
}

/// A processed image.
#[derive(Debug, Clone)]
pub struct Processed {
    pub bytes: Vec<u8>,
    pub ext: &'static str,
    pub width: u32,
    pub height: u32,
    /// Size after EXIF orientation, before resizing.
    pub original_width: u32,
    pub original_height: u32,
    /// 64-bit DCT perceptual hash (imagehash's `phash` algorithm).
    pub phash: u64,
    /// EXIF orientation (1-8) when the image had one other than 1.
    pub orientation: Option<u8>,
}

/// The geometry img2dataset's resize modes give for an (oriented) `w` x `h` image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Size to resample the whole image to (None: keep).
    pub resize: Option<(u32, u32)>,
    /// Final canvas: pad (border) or crop (center_crop) to this size, centred.
    pub canvas: Option<(u32, u32)>,
}

/// Computes the resize plan (img2dataset's semantics).
pub fn plan(w: u32, h: u32, o: &ImageOptions) -> Plan {
    let s = o.image_size;
    let scaled = |f: f64| -> (u32, u32) {
        (
            ((w as f64 * f).round() as u32).max(1),
            ((h as f64 * f).round() as u32).max(1),
        )
    };
    let (long, short) = (w.max(h), w.min(h));
    match o.resize_mode {
        ResizeMode::No => Plan {
            resize: None,
            canvas: None,
        },
        ResizeMode::Border => {
            let resize = (!o.resize_only_if_bigger || long > s)
                .then(|| scaled(s as f64 / long as f64))
                .filter(|&d| d != (w, h));
            Plan {
                resize,
                canvas: Some((s, s)),
            }
        }
        ResizeMode::KeepRatio => Plan {
            resize: (!o.resize_only_if_bigger || short > s)
                .then(|| scaled(s as f64 / short as f64))
                .filter(|&d| d != (w, h)),
            canvas: None,
        },
        ResizeMode::KeepRatioLargest => Plan {
            resize: (!o.resize_only_if_bigger || long > s)
                .then(|| scaled(s as f64 / long as f64))
                .filter(|&d| d != (w, h)),
            canvas: None,
        },
        ResizeMode::CenterCrop => {
            if !o.resize_only_if_bigger || short > s {
                Plan {
                    resize: Some(scaled(s as f64 / short as f64)).filter(|&d| d != (w, h)),
                    canvas: Some((s, s)),
                }
            } else {
                Plan {
                    resize: None,
                    canvas: None,
                }
            }
        }
    }
}

fn rotates(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

pub use openwit_shard::orient::exif_orientation;
use openwit_shard::orient::png_text_orientation;

/// A decoded RGB8 image with its full (oriented) size.
struct Decoded {
    rgb: RgbImage,
    original: (u32, u32),
    orientation: Orientation,
}

fn check_bomb(w: u32, h: u32, o: &ImageOptions) -> Result<(), ImageFail> {
    if w == 0 || h == 0 {
        return Err(fail("corrupt_image", format!("image header says {w}x{h}")));
    }
    if w > o.max_dimension || h > o.max_dimension || (w as u64) * (h as u64) > o.max_pixels {
        return Err(fail(
            "bomb",
            format!(
                "image is {w}x{h}, over the limits (max_pixels {}, max_dimension {})",
                o.max_pixels, o.max_dimension
            ),
        ));
    }
    Ok(())
}

fn decode_jpeg(b: &[u8], o: &ImageOptions) -> Result<Decoded, ImageFail> {
    if openwit_shard::rgb::jpeg_is_truncated(b) {
        return Err(fail(
            "truncated_image",
            "JPEG data ends before its end marker",
        ));
    }
    let mut d = jpeg_decoder::Decoder::new(Cursor::new(b));
    d.read_info()
        .map_err(|e| fail("corrupt_image", format!("JPEG header: {e}")))?;
    let info = d
        .info()
        .ok_or_else(|| fail("corrupt_image", "JPEG without a frame header"))?;
    let (w, h) = (info.width as u32, info.height as u32);
    check_bomb(w, h, o)?;
    let orientation = d
        .exif_data()
        .and_then(exif_orientation)
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms);
    let (ow, oh) = if rotates(orientation) { (h, w) } else { (w, h) };
    if o.jpeg_dct_scaling {
        // The decode size needed for the final resample (in stored, unrotated coordinates).
        if let Some((rw, rh)) = plan(ow, oh, o).resize {
            let (rw, rh) = if rotates(orientation) {
                (rh, rw)
            } else {
                (rw, rh)
            };
            if rw * 2 <= w && rh * 2 <= h {
                d.scale(rw.min(65535) as u16, rh.min(65535) as u16)
                    .map_err(|e| fail("corrupt_image", format!("JPEG scale: {e}")))?;
            }
        }
    }
    let px = d.decode().map_err(|e| {
        let m = e.to_string();
        if m.contains("EOF") || m.contains("end of") {
            fail("truncated_image", format!("JPEG: {m}"))
        } else {
            fail("corrupt_image", format!("JPEG: {m}"))
        }
    })?;
    let info = d.info().expect("info after decode");
    let (dw, dh) = (info.width as u32, info.height as u32);
    let n = (dw as usize) * (dh as usize);
    let rgb: Vec<u8> = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => px,
        jpeg_decoder::PixelFormat::L8 => px.iter().flat_map(|&g| [g, g, g]).collect(),
        jpeg_decoder::PixelFormat::L16 => px
            .chunks_exact(2)
            .flat_map(|c| {
                let g = c[0];
                [g, g, g]
            })
            .collect(),
        jpeg_decoder::PixelFormat::CMYK32 => px
            .chunks_exact(4)
            .flat_map(|c| {
                // jpeg-decoder undoes Adobe's inversion: these are ink amounts.
                let k = 255 - c[3] as u32;
                [
                    ((255 - c[0] as u32) * k / 255) as u8,
                    ((255 - c[1] as u32) * k / 255) as u8,
                    ((255 - c[2] as u32) * k / 255) as u8,
                ]
            })
            .collect(),
    };
    if rgb.len() != n * 3 {
        return Err(fail(
            "corrupt_image",
            "JPEG decoded to the wrong number of pixels",
        ));
    }
    let rgb = RgbImage::from_raw(dw, dh, rgb).ok_or_else(|| {
        fail(
            "corrupt_image",
            "JPEG decoded to the wrong number of pixels",
        )
    })?;
    Ok(Decoded {
        rgb,
        original: (ow, oh),
        orientation,
    })
}

/// Reads the EXIF orientation from a JPEG's APP1 segment (markers before the first scan).
fn jpeg_exif_orientation(b: &[u8]) -> Option<u8> {
    let mut i = 2;
    while i + 4 <= b.len() {
        if b[i] != 0xFF {
            return None;
        }
        let m = b[i + 1];
        if m == 0xFF {
            i += 1;
            continue;
        }
        if m == 0xDA || m == 0xD9 {
            return None;
        }
        if (0xD0..=0xD7).contains(&m) || m == 0x01 {
            i += 2;
            continue;
        }
        let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        let seg = b.get(i + 4..i + 2 + len.max(2))?;
        if m == 0xE1 && seg.starts_with(b"Exif\0\0") {
            return exif_orientation(seg);
        }
        i += 2 + len;
    }
    None
}

thread_local! {
    static TJ_DECOMPRESSOR: std::cell::RefCell<Option<turbojpeg::Decompressor>> =
        const { std::cell::RefCell::new(None) };
    /// One resizer per thread keeps its buffers between images.
    static RESIZER: std::cell::RefCell<fr::Resizer> = std::cell::RefCell::new(fr::Resizer::new());
    static TJ_COMPRESSOR: std::cell::RefCell<Option<(turbojpeg::Compressor, i32)>> =
        const { std::cell::RefCell::new(None) };
}

/// Decodes a JPEG with libjpeg-turbo, scaled in the DCT domain to the smallest m/8 of the stored
/// size that still covers the resize target. `Ok(None)`: libjpeg-turbo declined (CMYK, a corrupt
/// stream it only warns about, ...) and the caller falls back to `jpeg-decoder`, which gives the
/// drop reason or the image as before.
fn decode_jpeg_turbo(b: &[u8], o: &ImageOptions) -> Result<Option<Decoded>, ImageFail> {
    if openwit_shard::rgb::jpeg_is_truncated(b) {
        return Err(fail(
            "truncated_image",
            "JPEG data ends before its end marker",
        ));
    }
    TJ_DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = turbojpeg::Decompressor::new().ok();
        }
        let Some(d) = slot.as_mut() else {
            return Ok(None);
        };
        let Ok(header) = d.read_header(b) else {
            return Ok(None);
        };
        if !matches!(
            header.colorspace,
            turbojpeg::Colorspace::YCbCr | turbojpeg::Colorspace::Gray | turbojpeg::Colorspace::RGB
        ) || header.is_lossless
        {
            return Ok(None);
        }
        let (w, h) = (header.width as u32, header.height as u32);
        check_bomb(w, h, o)?;
        let orientation = jpeg_exif_orientation(b)
            .and_then(Orientation::from_exif)
            .unwrap_or(Orientation::NoTransforms);
        let (ow, oh) = if rotates(orientation) { (h, w) } else { (w, h) };
        let scale = if o.jpeg_dct_scaling {
            turbojpeg::ScalingFactor::new(jpeg_scale(w, h, rotates(orientation), o), 8)
        } else {
            turbojpeg::ScalingFactor::ONE
        };
        if d.set_scaling_factor(scale).is_err() {
            return Ok(None);
        }
        let (dw, dh) = (scale.scale(w as usize), scale.scale(h as usize));
        let mut px = vec![0u8; dw * dh * 3];
        let img = turbojpeg::Image {
            pixels: px.as_mut_slice(),
            width: dw,
            pitch: dw * 3,
            height: dh,
            format: turbojpeg::PixelFormat::RGB,
        };
        if d.decompress(b, img).is_err() {
            return Ok(None);
        }
        let rgb = RgbImage::from_raw(dw as u32, dh as u32, px).ok_or_else(|| {
            fail(
                "corrupt_image",
                "JPEG decoded to the wrong number of pixels",
            )
        })?;
        Ok(Some(Decoded {
            rgb,
            original: (ow, oh),
            orientation,
        }))
    })
}

/// The integer box factor a PNG of stored size `w` x `h` is reduced by while it is decoded: the
/// largest that still leaves at least twice the resize target in both directions (`rotated`: EXIF
/// swaps the sides). 1: no reduction.
fn png_factor(w: u32, h: u32, rotated: bool, o: &ImageOptions) -> u32 {
    let (ow, oh) = if rotated { (h, w) } else { (w, h) };
    let Some((rw, rh)) = plan(ow, oh, o).resize else {
        return 1;
    };
    let (rw, rh) = if rotated { (rh, rw) } else { (rw, rh) };
    // Leave at least twice the target, so that the final box resample still averages.
    ((w / rw.max(1)).min(h / rh.max(1)) / 2).max(1)
}

fn png_fail(e: png::DecodingError) -> ImageFail {
    match e {
        png::DecodingError::LimitsExceeded => fail("bomb", "PNG: over the memory limit"),
        png::DecodingError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            fail("truncated_image", format!("PNG: {io}"))
        }
        other => {
            let m = format!("PNG: {other}");
            let l = m.to_lowercase();
            if l.contains("eof") || l.contains("end of") {
                fail("truncated_image", m)
            } else {
                fail("corrupt_image", m)
            }
        }
    }
}

/// Decodes a large non-interlaced PNG row by row, averaging boxes of about `k` x `k` pixels
/// (alpha composited on white first, 16-bit samples taken as their high byte, as libpng's strip
/// does) into an RGB8 image `k` times smaller: the whole image is never in memory, only one row and the
/// reduced result. `None`: not worth it (no reduction) or interlaced; decode it whole.
fn decode_png_scaled(b: &[u8], o: &ImageOptions) -> Result<Option<Decoded>, ImageFail> {
    let Some(head) = png_header(b) else {
        return Ok(None);
    };
    let (w, h) = (head.width, head.height);
    if w == 0 || h == 0 || png_factor(w, h, false, o).max(png_factor(w, h, true, o)) < 2 {
        return Ok(None);
    }
    let limit = usize::try_from(o.max_pixels.saturating_mul(8).max(64 << 20)).unwrap_or(usize::MAX);
    let mut d = png::Decoder::new_with_limits(Cursor::new(b), png::Limits { bytes: limit });
    d.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let info = d.read_header_info().map_err(png_fail)?;
    let (w, h) = (info.width, info.height);
    check_bomb(w, h, o)?;
    if info.interlaced {
        return Ok(None);
    }
    let mut reader = d.read_info().map_err(png_fail)?;
    let orientation = reader
        .info()
        .exif_metadata
        .as_deref()
        .and_then(exif_orientation)
        .or_else(|| png_text_orientation(b))
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms);
    let k = png_factor(w, h, rotates(orientation), o);
    if k < 2 {
        return Ok(None);
    }
    let (color, depth) = reader.output_color_type();
    if depth != png::BitDepth::Eight {
        return Ok(None);
    }
    let channels = color.samples();
    // `w / k` x `h / k` cells of k or k + 1 source pixels spread evenly over the whole picture
    // (cell of column x: x * dw / w), so the reduced image covers exactly what the source does.
    let (dw, dh) = ((w / k) as usize, (h / k) as usize);
    let cell_of = |x: usize| x * dw / w as usize;
    let cols: Vec<u32> = (0..w as usize).map(|x| cell_of(x) as u32).collect();
    let mut widths = vec![0u64; dw];
    for &c in &cols {
        widths[c as usize] += 1;
    }
    // u64: a cell of a huge image reduced to a tiny target may sum billions of samples.
    let mut sums = vec![0u64; dw * 3];
    let mut out = Vec::with_capacity(dw * dh * 3);
    let mut rows_in_band = 0u64;
    let flush = |sums: &mut [u64], rows: u64, out: &mut Vec<u8>| {
        for (px, &cw) in sums.chunks_exact_mut(3).zip(&widths) {
            let n = cw * rows;
            for v in px.iter_mut() {
                out.push(((*v + n / 2) / n) as u8);
                *v = 0;
            }
        }
    };
    let row_cell = |y: u32| y as usize * dh / h as usize;
    let mut y = 0u32;
    while let Some(row) = reader.next_row().map_err(png_fail)? {
        let data = row.data();
        if data.len() < w as usize * channels {
            return Err(fail("corrupt_image", "PNG row shorter than its width"));
        }
        for (p, &c) in data.chunks_exact(channels).zip(&cols) {
            let (r, g, bl, a) = match channels {
                1 => (p[0], p[0], p[0], 255),
                2 => (p[0], p[0], p[0], p[1]),
                3 => (p[0], p[1], p[2], 255),
                _ => (p[0], p[1], p[2], p[3]),
            };
            let c = c as usize * 3;
            let s = &mut sums[c..c + 3];
            if a == 255 {
                s[0] += r as u64;
                s[1] += g as u64;
                s[2] += bl as u64;
            } else {
                let a = a as u32;
                let on_white = |v: u8| ((v as u32 * a + 255 * (255 - a) + 127) / 255) as u64;
                s[0] += on_white(r);
                s[1] += on_white(g);
                s[2] += on_white(bl);
            }
        }
        rows_in_band += 1;
        y += 1;
        if y == h || row_cell(y) != row_cell(y - 1) {
            flush(&mut sums, rows_in_band, &mut out);
            rows_in_band = 0;
        }
        if y == h {
            break;
        }
    }
    if y < h {
        return Err(fail(
            "truncated_image",
            format!("PNG: image data ends after {y} of {h} rows"),
        ));
    }
    let rgb = RgbImage::from_raw(dw as u32, dh as u32, out)
        .ok_or_else(|| fail("corrupt_image", "PNG decoded to the wrong number of pixels"))?;
    let (ow, oh) = if rotates(orientation) { (h, w) } else { (w, h) };
    Ok(Some(Decoded {
        rgb,
        original: (ow, oh),
        orientation,
    }))
}

fn decode_other(b: &[u8], kind: Sniffed, o: &ImageOptions) -> Result<Decoded, ImageFail> {
    let fmt = match kind {
        Sniffed::Jpeg => image::ImageFormat::Jpeg,
        Sniffed::Png => image::ImageFormat::Png,
        Sniffed::Gif => image::ImageFormat::Gif,
        Sniffed::Webp => image::ImageFormat::WebP,
        Sniffed::Bmp => image::ImageFormat::Bmp,
        Sniffed::Tiff => image::ImageFormat::Tiff,
        _ => return Err(fail("unsupported_format", "not an image format we decode")),
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(b), fmt);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(o.max_dimension);
    limits.max_image_height = Some(o.max_dimension);
    limits.max_alloc = Some(o.max_pixels.saturating_mul(8).max(64 << 20));
    reader.limits(limits);
    let classify = |e: image::ImageError| -> ImageFail {
        match e {
            image::ImageError::Limits(_) => fail("bomb", format!("{e}")),
            image::ImageError::IoError(ref io)
                if io.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                fail("truncated_image", format!("{e}"))
            }
            other => {
                let m = other.to_string();
                if m.contains("EOF") || m.to_lowercase().contains("end of") || m.contains("eof") {
                    fail("truncated_image", m)
                } else {
                    fail("corrupt_image", m)
                }
            }
        }
    };
    let mut dec = reader.into_decoder().map_err(classify)?;
    let (w, h) = dec.dimensions();
    check_bomb(w, h, o)?;
    // What `image` reads, else ImageMagick's and XMP's PNG orientations and WebP's EXIF (read
    // in place: image-webp would allocate the chunk's declared size first).
    let orientation = openwit_shard::orient::of_decoder(Some(fmt), &mut dec, b);
    let img = DynamicImage::from_decoder(dec).map_err(classify)?;
    let rgb = openwit_shard::rgb::rgb_on_white(img);
    let (ow, oh) = if rotates(orientation) { (h, w) } else { (w, h) };
    Ok(Decoded {
        rgb,
        original: (ow, oh),
        orientation,
    })
}

fn resize(
    src: &RgbImage,
    to: (u32, u32),
    crop: Option<(f64, f64, f64, f64)>,
) -> Result<RgbImage, ImageFail> {
    let (sw, sh) = src.dimensions();
    let s = fr::images::TypedImageRef::<fr::pixels::U8x3>::from_buffer(sw, sh, src.as_raw())
        .map_err(|e| fail("resize_error", e.to_string()))?;
    let mut out = vec![0u8; to.0 as usize * to.1 as usize * 3];
    let mut dst = fr::images::TypedImage::<fr::pixels::U8x3>::from_buffer(to.0, to.1, &mut out)
        .map_err(|e| fail("resize_error", e.to_string()))?;
    let (cw, ch) = crop.map(|c| (c.2, c.3)).unwrap_or((sw as f64, sh as f64));
    let shrinking = (to.0 as f64) <= cw && (to.1 as f64) <= ch;
    let alg = if shrinking {
        fr::ResizeAlg::Convolution(fr::FilterType::Box)
    } else {
        fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3)
    };
    let mut opts = fr::ResizeOptions::new().resize_alg(alg);
    if let Some((x, y, w, h)) = crop {
        opts = opts.crop(x, y, w, h);
    }
    RESIZER
        .with(|r| r.borrow_mut().resize_typed(&s, &mut dst, &opts))
        .map_err(|e| fail("resize_error", e.to_string()))?;
    Ok(RgbImage::from_raw(to.0, to.1, out).expect("sizes match"))
}

/// Pads `img` centred on a white `w` x `h` canvas.
fn pad_white(img: RgbImage, w: u32, h: u32) -> RgbImage {
    let (iw, ih) = img.dimensions();
    if (iw, ih) == (w, h) {
        return img;
    }
    let mut out = RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    let x0 = (w.saturating_sub(iw)) / 2;
    let y0 = (h.saturating_sub(ih)) / 2;
    let row = (iw.min(w) * 3) as usize;
    for y in 0..ih.min(h) {
        let s = (y * iw * 3) as usize;
        let d = (((y + y0) * w + x0) * 3) as usize;
        out.as_mut()[d..d + row].copy_from_slice(&img.as_raw()[s..s + row]);
    }
    out
}

/// Encodes RGB8 as the configured format.
pub fn encode(img: &RgbImage, f: EncodeFormat, quality: u8) -> Result<Vec<u8>, ImageFail> {
    encode_with(img, f, quality, true)
}

/// Encodes RGB8 as JPEG (4:2:0) with libjpeg-turbo, reusing one compressor per thread.
fn encode_turbo(img: &RgbImage, quality: u8) -> Result<Vec<u8>, ImageFail> {
    let (w, h) = img.dimensions();
    TJ_COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let q = i32::from(quality.clamp(1, 100));
        if slot.as_ref().is_none_or(|(_, sq)| *sq != q) {
            let mut c =
                turbojpeg::Compressor::new().map_err(|e| fail("encode_error", e.to_string()))?;
            c.set_quality(q)
                .and_then(|_| c.set_subsamp(turbojpeg::Subsamp::Sub2x2))
                .map_err(|e| fail("encode_error", e.to_string()))?;
            *slot = Some((c, q));
        }
        let (c, _) = slot.as_mut().expect("compressor set above");
        let image = turbojpeg::Image {
            pixels: img.as_raw().as_slice(),
            width: w as usize,
            pitch: w as usize * 3,
            height: h as usize,
            format: turbojpeg::PixelFormat::RGB,
        };
        c.compress_to_vec(image)
            .map_err(|e| fail("encode_error", e.to_string()))
    })
}

/// [`encode`], choosing the JPEG encoder: libjpeg-turbo (`turbo`) or `jpeg-encoder`.
pub fn encode_with(
    img: &RgbImage,
    f: EncodeFormat,
    quality: u8,
    turbo: bool,
) -> Result<Vec<u8>, ImageFail> {
    let (w, h) = img.dimensions();
    let mut out = Vec::with_capacity((w * h) as usize / 2);
    match f {
        EncodeFormat::Jpg if turbo => {
            if w > 65535 || h > 65535 {
                return Err(fail("encode_error", "too large for JPEG"));
            }
            return encode_turbo(img, quality);
        }
        EncodeFormat::Jpg => {
            if w > 65535 || h > 65535 {
                return Err(fail("encode_error", "too large for JPEG"));
            }
            let mut e = jpeg_encoder::Encoder::new(&mut out, quality);
            e.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
            e.encode(
                img.as_raw(),
                w as u16,
                h as u16,
                jpeg_encoder::ColorType::Rgb,
            )
            .map_err(|e| fail("encode_error", e.to_string()))?;
        }
        EncodeFormat::Png => {
            img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
                .map_err(|e| fail("encode_error", e.to_string()))?;
        }
        EncodeFormat::Webp => {
            img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::WebP)
                .map_err(|e| fail("encode_error", e.to_string()))?;
        }
    }
    Ok(out)
}

/// imagehash's `phash` (in `openwit_shard::overlap`, shared with `eval`'s overlap analysis).
pub use openwit_shard::overlap::phash;

/// Decodes, checks, resizes and encodes one downloaded image.
pub fn process(bytes: &[u8], o: &ImageOptions) -> Result<Processed, ImageFail> {
    if bytes.is_empty() {
        return Err(fail("empty_body", "zero-byte body"));
    }
    let kind = sniff(bytes);
    // The bomb limits on the header's own numbers first (a GIF's frame may be far larger than
    // its screen, which is all its decoder reports up front).
    if let Some(h) = probe(bytes) {
        check_bomb(h.width, h.height, o)?;
    }
    let dec = match kind {
        Sniffed::Jpeg if o.jpeg_turbo && !o.jpeg_zune => match decode_jpeg_turbo(bytes, o)? {
            Some(d) => d,
            None => decode_jpeg(bytes, o)?,
        },
        Sniffed::Jpeg if !o.jpeg_zune => decode_jpeg(bytes, o)?,
        Sniffed::Html => {
            return Err(fail(
                "html_body",
                "the server sent an HTML page, not an image",
            ));
        }
        Sniffed::Unknown => {
            return Err(fail(
                "unsupported_format",
                "the bytes are not a known image format",
            ));
        }
        Sniffed::Png if o.png_box_scaling => match decode_png_scaled(bytes, o)? {
            Some(d) => d,
            None => decode_other(bytes, Sniffed::Png, o)?,
        },
        other => decode_other(bytes, other, o)?,
    };
    let (ow, oh) = dec.original;
    if o.min_image_size > 0 && ow.min(oh) < o.min_image_size {
        return Err(fail(
            "too_small",
            format!(
                "image is {ow}x{oh}, smaller than min_image_size {}",
                o.min_image_size
            ),
        ));
    }
    if let Some(max) = o.max_aspect_ratio {
        let r = ow.max(oh) as f64 / ow.min(oh) as f64;
        if r > max {
            return Err(fail(
                "bad_aspect_ratio",
                format!("aspect ratio {r:.2} is over max_aspect_ratio {max}"),
            ));
        }
    }
    let mut img = DynamicImage::ImageRgb8(dec.rgb);
    img.apply_orientation(dec.orientation);
    let img = img.into_rgb8();
    let p = plan(ow, oh, o);
    let orientation =
        (dec.orientation != Orientation::NoTransforms).then(|| orientation_code(dec.orientation));

    let same_format = matches!(
        (kind, o.encode_format),
        (Sniffed::Jpeg, EncodeFormat::Jpg)
            | (Sniffed::Png, EncodeFormat::Png)
            | (Sniffed::Webp, EncodeFormat::Webp)
    );
    let untouched = p.resize.is_none()
        && p.canvas.is_none_or(|c| c == (ow, oh))
        && orientation.is_none()
        && img.dimensions() == (ow, oh);
    if o.skip_reencode && same_format && untouched {
        let phash = phash(&img);
        return Ok(Processed {
            bytes: bytes.to_vec(),
            ext: o.encode_format.ext(),
            width: ow,
            height: oh,
            original_width: ow,
            original_height: oh,
            phash,
            orientation,
        });
    }

    let mut hash = None;
    let out = match (o.resize_mode, p.resize, p.canvas) {
        (ResizeMode::CenterCrop, Some((rw, rh)), Some((cw, ch))) => {
            hash = Some(phash(&img));
            // Crop the source region that maps onto the centred canvas, then resample it.
            let (iw, ih) = img.dimensions();
            let fx = iw as f64 / rw as f64;
            let fy = ih as f64 / rh as f64;
            let x0 = ((rw.saturating_sub(cw)) / 2) as f64 * fx;
            let y0 = ((rh.saturating_sub(ch)) / 2) as f64 * fy;
            let (ow2, oh2) = (cw.min(rw), ch.min(rh));
            resize(
                &img,
                (ow2, oh2),
                Some((x0, y0, ow2 as f64 * fx, oh2 as f64 * fy)),
            )?
        }
        (ResizeMode::CenterCrop, None, Some((cw, ch))) => {
            hash = Some(phash(&img));
            let (iw, ih) = img.dimensions();
            let (w2, h2) = (cw.min(iw), ch.min(ih));
            image::imageops::crop_imm(&img, (iw - w2) / 2, (ih - h2) / 2, w2, h2).to_image()
        }
        (_, resize_to, canvas) => {
            let (iw, ih) = img.dimensions();
            let target = resize_to.unwrap_or((ow, oh));
            let r = if target != (iw, ih) {
                let r = resize(&img, target, None)?;
                // The whole picture is in both: hash the smaller (the resized one when
                // shrinking: 1/10 of the pixels for a 1 MP photo and a 256 target).
                hash = Some(if target.0 * target.1 < iw * ih {
                    phash(&r)
                } else {
                    phash(&img)
                });
                r
            } else {
                img
            };
            if hash.is_none() {
                hash = Some(phash(&r));
            }
            match canvas {
                Some((cw, ch)) if o.resize_mode == ResizeMode::Border => pad_white(r, cw, ch),
                _ => r,
            }
        }
    };
    let phash = hash.unwrap_or_else(|| phash(&out));
    let (width, height) = out.dimensions();
    let bytes = encode_with(&out, o.encode_format, o.encode_quality, o.jpeg_turbo)?;
    Ok(Processed {
        bytes,
        ext: o.encode_format.ext(),
        width,
        height,
        original_width: ow,
        original_height: oh,
        phash,
        orientation,
    })
}

fn orientation_code(o: Orientation) -> u8 {
    match o {
        Orientation::NoTransforms => 1,
        Orientation::FlipHorizontal => 2,
        Orientation::Rotate180 => 3,
        Orientation::FlipVertical => 4,
        Orientation::Rotate90FlipH => 5,
        Orientation::Rotate90 => 6,
        Orientation::Rotate270FlipH => 7,
        Orientation::Rotate270 => 8,
    }
}
