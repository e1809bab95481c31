//! Scratch (not committed): fine-scale statistics and a picture of prior draws decoded with
//! the spread scaled.
use rand::SeedableRng;
use sula::data::dataset::Dataset;
use sula::model::checkpoint;
use sula::model::data::FrameSet;
use sula::model::evaluate::{Texture, decode_latents_as, draw_latents};

fn stats(images: &[Vec<u8>], size: usize) -> (f64, f64, f64, f64) {
    let (mut fine, mut n, mut sum, mut sq, mut sat) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let c = size as f64 / 2.0;
    for img in images {
        for y in 1..size - 1 {
            for x in 1..size - 1 {
                let (dx, dy) = (x as f64 + 0.5 - c, y as f64 + 0.5 - c);
                if (dx * dx + dy * dy).sqrt() > 0.45 * size as f64 {
                    continue;
                }
                let p = |xx: usize, yy: usize| img[yy * size + xx] as f64 / 255.0;
                let mut box3 = 0.0;
                for j in 0..3 {
                    for i in 0..3 {
                        box3 += p(x + i - 1, y + j - 1);
                    }
                }
                let v = p(x, y);
                fine += (v - box3 / 9.0).powi(2);
                sum += v;
                sq += v * v;
                if v <= 0.0 || v >= 1.0 {
                    sat += 1.0;
                }
                n += 1.0;
            }
        }
    }
    let mean = sum / n;
    (fine / n, mean, (sq / n - mean * mean).sqrt(), sat / n)
}

#[test]
fn scratch() {
    let size = 64;
    let dev = tch::Device::Cpu;
    let (_vs, vae, _) = checkpoint::load_vae(
        std::path::Path::new("assets/phantom64_vae.safetensors"),
        dev,
        Some(size),
    )
    .unwrap();
    let pool = FrameSet::load(
        &Dataset::open(std::path::Path::new("/tmp/m12/pool64"), None).unwrap(),
        size,
        true,
    )
    .unwrap();
    let real: Vec<Vec<u8>> = pool.images.iter().take(200).cloned().collect();
    let s = stats(&real, size);
    println!(
        "real          fine {:.5} mean {:.3} std {:.3} saturated {:.3}",
        s.0, s.1, s.2, s.3
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let z = draw_latents(&vae.prior(), 200, &mut rng);
    let scales = [0.0, 0.25, 0.5, 0.75, 1.0];
    let cols = 8;
    let mut grid = image::GrayImage::new((cols * size) as u32, ((scales.len() + 1) * size) as u32);
    for (c, img) in real.iter().take(cols).enumerate() {
        for (i, v) in img.iter().enumerate() {
            grid.put_pixel(
                (c * size + i % size) as u32,
                (i / size) as u32,
                image::Luma([*v]),
            );
        }
    }
    for (r, &scale) in scales.iter().enumerate() {
        let tex = if scale == 0.0 {
            Texture::Mean
        } else {
            Texture::ScaledSpeckle(scale)
        };
        let dec = decode_latents_as(&vae, &z, dev, tex).unwrap();
        let imgs: Vec<Vec<u8>> = dec.iter().map(|d| d.image.clone()).collect();
        let s = stats(&imgs, size);
        println!(
            "spread × {scale:.2} fine {:.5} mean {:.3} std {:.3} saturated {:.3}",
            s.0, s.1, s.2, s.3
        );
        for (c, img) in imgs.iter().take(cols).enumerate() {
            for (i, v) in img.iter().enumerate() {
                grid.put_pixel(
                    (c * size + i % size) as u32,
                    ((r + 1) * size + i / size) as u32,
                    image::Luma([*v]),
                );
            }
        }
    }
    let big = image::imageops::resize(
        &grid,
        grid.width() * 2,
        grid.height() * 2,
        image::imageops::FilterType::Nearest,
    );
    big.save("/tmp/sc/scaled_draws.png").unwrap();
}
