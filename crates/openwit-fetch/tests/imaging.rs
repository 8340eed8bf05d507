//! Decoding, validation and resizing on real images generated here.

use std::io::Cursor;

use image::{Rgb, RgbImage, Rgba, RgbaImage};
use openwit_fetch::imaging::{ImageOptions, Sniffed, encode, phash, plan, process, sniff};
use openwit_fetch::{EncodeFormat, ResizeMode};

fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            ((x + y) % 256) as u8,
        ])
    })
}

fn jpeg(img: &RgbImage) -> Vec<u8> {
    encode(img, EncodeFormat::Jpg, 92).unwrap()
}

fn opts(mode: ResizeMode) -> ImageOptions {
    ImageOptions {
        resize_mode: mode,
        ..ImageOptions::default()
    }
}

fn decode(bytes: &[u8]) -> RgbImage {
    image::load_from_memory(bytes).unwrap().to_rgb8()
}

#[test]
fn resize_modes_have_img2dataset_sizes() {
    let src = jpeg(&gradient(640, 320));
    let cases = [
        (ResizeMode::No, (640, 320)),
        (ResizeMode::Border, (256, 256)),
        (ResizeMode::KeepRatio, (512, 256)),
        (ResizeMode::KeepRatioLargest, (256, 128)),
        (ResizeMode::CenterCrop, (256, 256)),
    ];
    for (mode, want) in cases {
        let out = process(&src, &opts(mode)).unwrap();
        assert_eq!((out.width, out.height), want, "{mode:?}");
        assert_eq!(decode(&out.bytes).dimensions(), want, "{mode:?}");
        assert_eq!((out.original_width, out.original_height), (640, 320));
    }
}

#[test]
fn border_pads_white_and_keeps_the_image_centred() {
    let red = RgbImage::from_pixel(400, 200, Rgb([220, 20, 20]));
    let out = process(&jpeg(&red), &opts(ResizeMode::Border)).unwrap();
    let img = decode(&out.bytes);
    let top = img.get_pixel(128, 10);
    let mid = img.get_pixel(128, 128);
    assert!(top.0.iter().all(|&c| c > 240), "padding is white: {top:?}");
    assert!(mid[0] > 180 && mid[1] < 60, "centre is the image: {mid:?}");
}

#[test]
fn resize_only_if_bigger_keeps_small_images() {
    let small = jpeg(&gradient(100, 50));
    let mut o = opts(ResizeMode::KeepRatio);
    o.resize_only_if_bigger = true;
    let out = process(&small, &o).unwrap();
    assert_eq!((out.width, out.height), (100, 50));
    let mut o = opts(ResizeMode::Border);
    o.resize_only_if_bigger = true;
    let out = process(&small, &o).unwrap();
    assert_eq!((out.width, out.height), (256, 256), "border still pads");
    let img = decode(&out.bytes);
    assert!(img.get_pixel(5, 5).0.iter().all(|&c| c > 240));
    // Upscaling without the flag.
    let out = process(&small, &opts(ResizeMode::KeepRatioLargest)).unwrap();
    assert_eq!((out.width, out.height), (256, 128));
}

#[test]
fn plan_matches_the_modes() {
    let o = opts(ResizeMode::CenterCrop);
    let p = plan(1000, 500, &o);
    assert_eq!(p.resize, Some((512, 256)));
    assert_eq!(p.canvas, Some((256, 256)));
}

fn exif_with_orientation(o: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"Exif\0\0II*\0");
    t.extend_from_slice(&8u32.to_le_bytes());
    t.extend_from_slice(&1u16.to_le_bytes());
    t.extend_from_slice(&0x0112u16.to_le_bytes());
    t.extend_from_slice(&3u16.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&o.to_le_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&0u32.to_le_bytes());
    t
}

#[test]
fn exif_orientation_is_applied() {
    // Left half red, right half blue, stored 400x200, orientation 6 (rotate 90 clockwise).
    let img = RgbImage::from_fn(400, 200, |x, _| {
        if x < 200 {
            Rgb([230, 10, 10])
        } else {
            Rgb([10, 10, 230])
        }
    });
    let mut out = Vec::new();
    let mut e = jpeg_encoder::Encoder::new(&mut out, 90);
    e.add_app_segment(1, exif_with_orientation(6)).unwrap();
    e.encode(img.as_raw(), 400, 200, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    let p = process(&out, &opts(ResizeMode::KeepRatioLargest)).unwrap();
    assert_eq!((p.original_width, p.original_height), (200, 400));
    assert_eq!((p.width, p.height), (128, 256));
    assert_eq!(p.orientation, Some(6));
    let d = decode(&p.bytes);
    // After rotating 90 clockwise the left (red) half is on top.
    assert!(d.get_pixel(64, 40)[0] > 180, "{:?}", d.get_pixel(64, 40));
    assert!(d.get_pixel(64, 216)[2] > 180, "{:?}", d.get_pixel(64, 216));
}

#[test]
fn grayscale_cmyk_gif_png_alpha_bmp_tiff_webp_become_rgb() {
    // Grayscale JPEG.
    let mut g = Vec::new();
    jpeg_encoder::Encoder::new(&mut g, 90)
        .encode(
            &vec![128u8; 300 * 200],
            300,
            200,
            jpeg_encoder::ColorType::Luma,
        )
        .unwrap();
    let p = process(&g, &opts(ResizeMode::No)).unwrap();
    let px = *decode(&p.bytes).get_pixel(10, 10);
    assert!(px.0.iter().all(|&c| (120..=136).contains(&c)), "{px:?}");

    // CMYK JPEG (Adobe, inverted): pure red.
    let mut c = Vec::new();
    let cmyk: Vec<u8> = (0..300 * 200).flat_map(|_| [0u8, 255, 255, 0]).collect();
    jpeg_encoder::Encoder::new(&mut c, 95)
        .encode(&cmyk, 300, 200, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let p = process(&c, &opts(ResizeMode::No)).unwrap();
    let px = *decode(&p.bytes).get_pixel(10, 10);
    assert!(
        px[0] > 200 && px[1] < 60 && px[2] < 60,
        "CMYK red became {px:?}"
    );

    // RGBA PNG, fully transparent left half: composited on white.
    let rgba = RgbaImage::from_fn(200, 100, |x, _| {
        if x < 100 {
            Rgba([0, 0, 0, 0])
        } else {
            Rgba([0, 200, 0, 255])
        }
    });
    let mut png = Vec::new();
    rgba.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let p = process(&png, &opts(ResizeMode::No)).unwrap();
    let d = decode(&p.bytes);
    assert!(d.get_pixel(20, 50).0.iter().all(|&c| c > 240));
    assert!(d.get_pixel(180, 50)[1] > 170);

    // GIF (palette) first frame, BMP, TIFF, lossless WebP.
    let img = gradient(120, 80);
    for fmt in [
        image::ImageFormat::Gif,
        image::ImageFormat::Bmp,
        image::ImageFormat::Tiff,
        image::ImageFormat::WebP,
    ] {
        let mut b = Vec::new();
        image::DynamicImage::ImageRgb8(img.clone())
            .write_to(&mut Cursor::new(&mut b), fmt)
            .unwrap();
        let p = process(&b, &opts(ResizeMode::Border)).unwrap_or_else(|e| panic!("{fmt:?}: {e:?}"));
        assert_eq!((p.original_width, p.original_height), (120, 80), "{fmt:?}");
        assert_eq!((p.width, p.height), (256, 256));
    }
}

#[test]
fn bad_inputs_are_classified() {
    let good = jpeg(&gradient(300, 200));
    let reason = |b: &[u8], o: &ImageOptions| process(b, o).unwrap_err().reason;
    let o = ImageOptions::default();
    assert_eq!(reason(&good[..good.len() / 2], &o), "truncated_image");
    let mut corrupt = good[..40].to_vec();
    corrupt.extend(std::iter::repeat_n(0x55u8, 4000));
    corrupt.extend_from_slice(&[0xFF, 0xD9]);
    assert!(matches!(
        reason(&corrupt, &o),
        "corrupt_image" | "truncated_image"
    ));
    assert_eq!(reason(b"", &o), "empty_body");
    assert_eq!(
        reason(b"  <!DOCTYPE html><html>404</html>", &o),
        "html_body"
    );
    assert_eq!(reason(b"just some text", &o), "unsupported_format");
    let small = ImageOptions {
        max_pixels: 300 * 200 - 1,
        ..ImageOptions::default()
    };
    assert_eq!(reason(&good, &small), "bomb");
    let mut big_png = Vec::new();
    RgbImage::new(3000, 10)
        .write_to(&mut Cursor::new(&mut big_png), image::ImageFormat::Png)
        .unwrap();
    let dims = ImageOptions {
        max_dimension: 2000,
        ..ImageOptions::default()
    };
    assert_eq!(reason(&big_png, &dims), "bomb");
    let min = ImageOptions {
        min_image_size: 201,
        ..ImageOptions::default()
    };
    assert_eq!(reason(&good, &min), "too_small");
    let ar = ImageOptions {
        max_aspect_ratio: Some(1.4),
        ..ImageOptions::default()
    };
    assert_eq!(reason(&good, &ar), "bad_aspect_ratio");
    assert_eq!(sniff(&good), Sniffed::Jpeg);
}

#[test]
fn skip_reencode_keeps_the_bytes() {
    let src = jpeg(&gradient(256, 256));
    let mut o = opts(ResizeMode::Border);
    o.skip_reencode = true;
    let p = process(&src, &o).unwrap();
    assert_eq!(p.bytes, src);
    o.skip_reencode = false;
    assert_ne!(process(&src, &o).unwrap().bytes, src);
}

#[test]
fn dct_scaled_decoding_matches_full_decoding() {
    let src = jpeg(&gradient(1600, 1200));
    let mut o = opts(ResizeMode::Border);
    let fast = decode(&process(&src, &o).unwrap().bytes);
    o.jpeg_dct_scaling = false;
    let full = decode(&process(&src, &o).unwrap().bytes);
    let diff: f64 = fast
        .as_raw()
        .iter()
        .zip(full.as_raw())
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .sum::<f64>()
        / fast.as_raw().len() as f64;
    assert!(diff < 3.0, "mean abs difference {diff}");
}

#[test]
fn phash_is_stable_under_recompression_and_differs_between_images() {
    let a = gradient(500, 400);
    let b = RgbImage::from_fn(500, 400, |x, y| {
        let v = if (x / 50 + y / 50) % 2 == 0 { 240 } else { 15 };
        Rgb([v, v, v])
    });
    let ha = phash(&a);
    let ha2 = phash(&decode(&encode(&a, EncodeFormat::Jpg, 60).unwrap()));
    let hb = phash(&b);
    assert!((ha ^ ha2).count_ones() <= 4, "{ha:016x} vs {ha2:016x}");
    assert!((ha ^ hb).count_ones() > 10, "{ha:016x} vs {hb:016x}");
}

fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .sum::<f64>()
        / a.as_raw().len() as f64
}

#[test]
fn libjpeg_turbo_matches_the_pure_rust_path_at_every_scale() {
    // 700x500 -> 256x183 decodes at 3/8 (not a power of two); 1600x1200 at 2/8; 2600x1000 at
    // 1/8; 300x200 at 7/8; 270x180 at full size (7/8 of it is under the target).
    for (w, h) in [
        (700, 500),
        (1600, 1200),
        (2600, 1000),
        (300, 200),
        (270, 180),
    ] {
        let src = jpeg(&gradient(w, h));
        let mut o = opts(ResizeMode::Border);
        // Lossless output: the comparison sees the decoders and the resize only.
        o.encode_format = EncodeFormat::Png;
        let turbo = process(&src, &o).unwrap();
        o.jpeg_turbo = false;
        o.jpeg_dct_scaling = false;
        let reference = process(&src, &o).unwrap();
        assert_eq!(
            (turbo.width, turbo.height, turbo.original_width),
            (reference.width, reference.height, reference.original_width)
        );
        let diff = mean_abs_diff(&decode(&turbo.bytes), &decode(&reference.bytes));
        assert!(diff < 3.0, "{w}x{h}: mean abs difference {diff}");
    }
}

#[test]
fn the_phash_of_the_resized_image_is_the_phash_of_the_picture() {
    // `process` hashes the 256-pixel image, not the decoded one: the hash must be the same
    // picture's hash (a smooth gradient is avoided: its hash bits sit on the median).
    for (w, h) in [(1600, 1200), (900, 1400), (640, 480)] {
        let img = RgbImage::from_fn(w, h, |x, y| {
            let v: u32 = if ((x * 8 / w) + (y * 6 / h) * 3) % 5 < 2 {
                230
            } else {
                25
            };
            Rgb([v as u8, (v + x * 20 / w) as u8, (255 - v) as u8])
        });
        let src = jpeg(&img);
        let p = process(&src, &opts(ResizeMode::Border)).unwrap();
        let full = phash(&decode(&src));
        assert!(
            (p.phash ^ full).count_ones() <= 3,
            "{w}x{h}: {:016x} vs {full:016x}",
            p.phash
        );
    }
}
