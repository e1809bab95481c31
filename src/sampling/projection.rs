//! The 2-D projection of the latent space shown in the latent view: PCA fitted on the
//! pool embeddings, with a lift back from the plane to the latent space so a click on
//! empty space can be decoded.

/// Mean and the two leading principal axes (unit vectors) of a point cloud.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub mean: Vec<f32>,
    pub axes: [Vec<f32>; 2],
}

impl Projection {
    /// Fits the projection by power iteration with deflation on the covariance matrix.
    pub fn fit(points: &[Vec<f32>]) -> Projection {
        let dim = points.first().map_or(0, Vec::len);
        let n = points.len().max(1) as f64;
        let mut mean = vec![0.0f64; dim];
        for p in points {
            for (m, v) in mean.iter_mut().zip(p) {
                *m += f64::from(*v) / n;
            }
        }
        let mut cov = vec![vec![0.0f64; dim]; dim];
        for p in points {
            for i in 0..dim {
                let di = f64::from(p[i]) - mean[i];
                for j in 0..dim {
                    cov[i][j] += di * (f64::from(p[j]) - mean[j]) / n;
                }
            }
        }
        let mut axes: Vec<Vec<f64>> = Vec::new();
        for k in 0..2 {
            let mut v: Vec<f64> = (0..dim).map(|i| if i == k { 1.0 } else { 0.1 }).collect();
            for _ in 0..200 {
                let mut next: Vec<f64> = (0..dim)
                    .map(|i| (0..dim).map(|j| cov[i][j] * v[j]).sum())
                    .collect();
                for axis in &axes {
                    let dot: f64 = next.iter().zip(axis).map(|(a, b)| a * b).sum();
                    for (x, a) in next.iter_mut().zip(axis) {
                        *x -= dot * a;
                    }
                }
                let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
                if norm < 1e-12 {
                    break;
                }
                v = next.iter().map(|x| x / norm).collect();
            }
            axes.push(v);
        }
        let to_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        Projection {
            mean: to_f32(&mean),
            axes: [to_f32(&axes[0]), to_f32(&axes[1])],
        }
    }

    /// The 2-D coordinates of a latent point.
    pub fn project(&self, z: &[f32]) -> [f32; 2] {
        let centred: Vec<f32> = z.iter().zip(&self.mean).map(|(a, m)| a - m).collect();
        let dot = |axis: &[f32]| centred.iter().zip(axis).map(|(a, b)| a * b).sum::<f32>();
        [dot(&self.axes[0]), dot(&self.axes[1])]
    }

    /// The latent point on the PCA plane at 2-D coordinates `p` (mean + p·axes).
    pub fn lift(&self, p: [f32; 2]) -> Vec<f32> {
        (0..self.mean.len())
            .map(|i| self.mean[i] + p[0] * self.axes[0][i] + p[1] * self.axes[1][i])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_axes_of_an_elongated_cloud_and_lifts_back() {
        // Points spread along (1, 1, 0) a lot and along (1, -1, 0) a little.
        let points: Vec<Vec<f32>> = (0..50)
            .map(|i| {
                // Pairs share `a` and take ±b, so the two spreads are uncorrelated.
                let a = ((i / 2) as f32 - 12.0) * 0.8;
                let b = if i % 2 == 0 { 0.5 } else { -0.5 };
                vec![a + b + 1.0, a - b + 2.0, 3.0]
            })
            .collect();
        let pca = Projection::fit(&points);
        let s = std::f32::consts::FRAC_1_SQRT_2;
        assert!((pca.axes[0][0].abs() - s).abs() < 1e-3 && (pca.axes[0][1].abs() - s).abs() < 1e-3);
        assert!(pca.axes[0][0] * pca.axes[0][1] > 0.0);
        assert!(pca.axes[1][0] * pca.axes[1][1] < 0.0);
        let p = pca.project(&points[7]);
        let back = pca.lift(p);
        for (a, b) in back.iter().zip(&points[7]) {
            assert!((a - b).abs() < 1e-3, "{back:?} vs {:?}", points[7]);
        }
    }
}
