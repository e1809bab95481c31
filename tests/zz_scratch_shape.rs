//! Scratch (not committed): prior draws of the shipped VAE with Gaussian and log-Rayleigh
//! speckle beside real validation frames, and their grey-level tails.
use rand::SeedableRng;
use sula::model::checkpoint;
use sula::model::evaluate::{Texture, decode_latents_as, draw_latents};
use sula::model::vae::SpeckleShape;

fn tails(images: &[Vec<u8>], s: usize) -> (f64, f64, f64) {
    let (mut bright, mut dark, mut n, mut fine) = (0usize, 0usize, 0usize, 0.0f64);
    for img in images {
        for y in 1..s - 1 {
            for x in 1..s - 1 {
                let (dx, dy) = (x as f64 - s as f64 / 2.0, y as f64 - s as f64 / 2.0);
                if dx * dx + dy * dy > (s as f64 / 2.0 - 2.0).powi(2) {
                    continue;
                }
                let v = img[y * s + x] as f64 / 255.0;
                let mut m = 0.0;
                for yy in y - 1..=y + 1 {
                    for xx in x - 1..=x + 1 {
                        m += img[yy * s + xx] as f64 / 255.0;
                    }
                }
                fine += (v - m / 9.0).powi(2);
                n += 1;
                bright += (v >= 0.95) as usize;
                dark += (v <= 0.05) as usize;
            }
        }
    }
    (bright as f64 / n as f64, dark as f64 / n as f64, fine / n as f64)
}

#[test]
fn picture() {
    let device = tch::Device::Cpu;
    let (_vs, vae, _) = checkpoint::load_vae(std::path::Path::new("assets/phantom64_vae.safetensors"), device, None).unwrap();
    let s = 64usize;
    let real: Vec<Vec<u8>> = (0..200)
        .map(|i| image::open(format!("/tmp/m12/val64/images/frame_{i:05}.png")).unwrap().to_luma8().into_raw())
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let latents = draw_latents(&vae.prior(), 200, &mut rng);
    let mut rows = vec![real.clone()];
    println!("real: bright {:.4} dark {:.4} fine {:.4}", tails(&real, s).0, tails(&real, s).1, tails(&real, s).2);
    for shape in [SpeckleShape::Gaussian, SpeckleShape::LogRayleigh] {
        let d = decode_latents_as(&vae, &latents, device, Texture::ShapedSpeckle { scale: 1.0, shape }).unwrap();
        let imgs: Vec<Vec<u8>> = d.into_iter().map(|x| x.image).collect();
        let t = tails(&imgs, s);
        println!("{shape:?}: bright {:.4} dark {:.4} fine {:.4}", t.0, t.1, t.2);
        rows.push(imgs);
    }
    let cols = 10;
    let mut out = image::GrayImage::new((cols * (s + 4)) as u32, (rows.len() * (s + 4)) as u32);
    for (r, row) in rows.iter().enumerate() {
        for c in 0..cols {
            for y in 0..s {
                for x in 0..s {
                    out.put_pixel((c * (s + 4) + x) as u32, (r * (s + 4) + y) as u32, image::Luma([row[c][y * s + x]]));
                }
            }
        }
    }
    image::imageops::resize(&out, out.width() * 2, out.height() * 2, image::imageops::FilterType::Nearest)
        .save("/tmp/speckle_shape.png")
        .unwrap();
}
