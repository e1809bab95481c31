//! The bilinear square pixel element in plane strain with selective reduced integration.
//!
//! The shear (μ) part is integrated with 2×2 Gauss points and the volumetric (λ) part with
//! the single centre point, which removes volumetric locking as ν → 0.5. On a square
//! element this is identical to the B-bar (mean dilatation) formulation.
//!
//! Local nodes in (x = column, y = row) order: 0 = (0,0), 1 = (1,0), 2 = (1,1), 3 = (0,1);
//! local DOFs are `[u0x, u0y, u1x, u1y, u2x, u2y, u3x, u3y]`. For a square element in 2D the
//! stiffness does not depend on the side length, so it is computed for a unit pixel.

use super::materials::Material;

/// Natural coordinates (ξ, η) of the four corner nodes.
const CORNERS: [(f64, f64); 4] = [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)];

/// Strain-displacement matrix rows (εxx, εyy, γxy) at natural point (ξ, η) for a unit pixel.
pub fn strain_matrix(xi: f64, eta: f64) -> [[f64; 8]; 3] {
    let mut b = [[0.0; 8]; 3];
    for (a, &(xa, ya)) in CORNERS.iter().enumerate() {
        // dN/dx = dN/dξ · 2/h with h = 1.
        let dndx = xa * (1.0 + eta * ya) / 2.0;
        let dndy = ya * (1.0 + xi * xa) / 2.0;
        b[0][2 * a] = dndx;
        b[1][2 * a + 1] = dndy;
        b[2][2 * a] = dndy;
        b[2][2 * a + 1] = dndx;
    }
    b
}

/// The 8×8 element stiffness of a unit pixel (per unit thickness).
pub fn stiffness(material: &Material) -> [[f64; 8]; 8] {
    let (lambda, mu) = material.lame();
    let mut k = [[0.0; 8]; 8];
    let g = 1.0 / 3f64.sqrt();
    // Shear part: μ·diag(2, 2, 1), 2×2 Gauss, weight 1, det J = 1/4.
    for &(xi, eta) in &[(-g, -g), (g, -g), (g, g), (-g, g)] {
        let b = strain_matrix(xi, eta);
        let d = [2.0 * mu, 2.0 * mu, mu];
        for i in 0..8 {
            for j in 0..8 {
                k[i][j] += 0.25 * (0..3).map(|r| b[r][i] * d[r] * b[r][j]).sum::<f64>();
            }
        }
    }
    // Volumetric part: λ·m·mᵀ at the centre, weight 4, det J = 1/4.
    let b = strain_matrix(0.0, 0.0);
    for i in 0..8 {
        for j in 0..8 {
            k[i][j] += lambda * (b[0][i] + b[1][i]) * (b[0][j] + b[1][j]);
        }
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material(nu: f64) -> Material {
        Material {
            youngs_modulus_kpa: 600.0,
            poisson_ratio: nu,
        }
    }

    fn apply(k: &[[f64; 8]; 8], u: &[f64; 8]) -> [f64; 8] {
        let mut f = [0.0; 8];
        for i in 0..8 {
            f[i] = (0..8).map(|j| k[i][j] * u[j]).sum();
        }
        f
    }

    #[test]
    fn rigid_body_modes_carry_no_force() {
        let k = stiffness(&material(0.49));
        let coords = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)];
        let mut modes = [[0.0; 8]; 3];
        for (a, &(x, y)) in coords.iter().enumerate() {
            modes[0][2 * a] = 1.0;
            modes[1][2 * a + 1] = 1.0;
            modes[2][2 * a] = -y;
            modes[2][2 * a + 1] = x;
        }
        for mode in &modes {
            assert!(apply(&k, mode).iter().all(|f| f.abs() < 1e-9));
        }
    }

    #[test]
    fn symmetric_and_uniform_strain_energy_is_exact() {
        let m = material(0.3);
        let k = stiffness(&m);
        for (i, row) in k.iter().enumerate() {
            for (j, value) in row.iter().enumerate() {
                assert!((value - k[j][i]).abs() < 1e-9);
            }
        }
        // Uniform εxx = 1 (u_x = x): energy density ½(λ+2μ) over a unit area.
        let u = [0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        let f = apply(&k, &u);
        let energy: f64 = 0.5 * u.iter().zip(&f).map(|(a, b)| a * b).sum::<f64>();
        let (lambda, mu) = m.lame();
        assert!((energy - 0.5 * (lambda + 2.0 * mu)).abs() < 1e-9);
    }
}
