use sula::data::shapes::annulus;
use sula::fea::{self, FeaParams, StressField};

/// Analytic Lamé (σrr, σθθ) for a thick-walled cylinder.
fn lame(p: f64, a: f64, b: f64, r: f64) -> (f64, f64) {
    let k = p * a * a / (b * b - a * a);
    (k * (1.0 - b * b / (r * r)), k * (1.0 + b * b / (r * r)))
}

/// Ring-averaged polar stresses at radius `r` (pixels) ± 0.5.
fn ring_average(field: &StressField, r: f64) -> (f64, f64) {
    let c = field.width as f64 / 2.0;
    let (mut srr, mut stt, mut n) = (0.0, 0.0, 0.0);
    for row in 0..field.height {
        for col in 0..field.width {
            let (x, y) = (col as f64 + 0.5 - c, row as f64 + 0.5 - c);
            let rho = x.hypot(y);
            if (rho - r).abs() < 0.5 {
                let i = row * field.width + col;
                let (cs, sn) = (x / rho, y / rho);
                let (sx, sy, t) = (field.sxx[i] as f64, field.syy[i] as f64, field.sxy[i] as f64);
                srr += sx * cs * cs + sy * sn * sn + 2.0 * t * sn * cs;
                stt += sx * sn * sn + sy * cs * cs - 2.0 * t * sn * cs;
                n += 1.0;
            }
        }
    }
    (srr / n, stt / n)
}

#[test]
fn lame_mid_wall() {
    let params = FeaParams::default();
    let p = params.pressure_kpa;
    for size in [64, 128, 256] {
        let s = size as f64 / 128.0;
        let (a, b) = (24.0 * s, 56.0 * s);
        let field = fea::solve(&annulus(size, a, b), &params).unwrap();
        for r in [a + 4.0*s, 0.5 * (a + b), b - 4.0*s] {
            let (srr, stt) = ring_average(&field, r);
            let (er, et) = lame(p, a, b, r);
            println!("{size} r={r:.1}: srr {srr:.3} vs {er:.3}  stt {stt:.3} vs {et:.3}  ({:.2}% {:.2}%)", 100.0*(srr-er)/er, 100.0*(stt-et)/et);
        }
        println!("{:?}", field.timings);
    }
}

#[test]
fn plaque_timing() {
    let params = FeaParams::default();
    for size in [64, 128, 256] {
        let mask = sula::data::shapes::plaque(size);
        let mut best = f64::MAX; let mut t = None;
        for _ in 0..5 { let f = fea::solve(&mask, &params).unwrap(); if f.timings.total_ms() < best { best = f.timings.total_ms(); t = Some(f.timings);} }
        println!("plaque {size}: {best:.2} {:?}", t.unwrap());
    }
}
