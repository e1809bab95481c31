//! Training-set augmentation by the symmetries of the square. A rotated or mirrored IVUS
//! frame is as plausible as the original (the catheter sits at the centre, the scan is
//! polar), and the FEA is exactly equivariant under them on the pixel grid: the stress map
//! of a rotated label map is the rotated stress map. So each frame stands for eight, for
//! free, which is what a network learning a field of global geometry from 1200 frames
//! needs most.

use rand::Rng;
use tch::Tensor;

/// A quarter-turn rotation, optionally after a left–right mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symmetry {
    pub quarter_turns: i64,
    pub mirrored: bool,
}

impl Symmetry {
    pub const IDENTITY: Symmetry = Symmetry {
        quarter_turns: 0,
        mirrored: false,
    };

    /// The eight symmetries of the square.
    pub const ALL: [Symmetry; 8] = {
        let mut all = [Symmetry::IDENTITY; 8];
        let mut k = 0;
        while k < 8 {
            all[k] = Symmetry {
                quarter_turns: (k % 4) as i64,
                mirrored: k >= 4,
            };
            k += 1;
        }
        all
    };

    /// One of the eight, uniformly.
    pub fn random(rng: &mut impl Rng) -> Symmetry {
        let k: u8 = rng.gen_range(0..8);
        Symmetry {
            quarter_turns: i64::from(k % 4),
            mirrored: k >= 4,
        }
    }

    /// Applies the symmetry to the last two dimensions (rows, columns) of `x`, as a
    /// contiguous tensor (a strided view would send convolutions down slow paths).
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let dims = x.dim() as i64;
        let (rows, columns) = (dims - 2, dims - 1);
        let mirrored = if self.mirrored {
            x.flip([columns])
        } else {
            x.shallow_clone()
        };
        if self.quarter_turns == 0 {
            mirrored
        } else {
            mirrored
                .rot90(self.quarter_turns, [rows, columns])
                .contiguous()
        }
    }

    /// Undoes [`Symmetry::apply`]: brings a map computed on the transformed frame (F's
    /// prediction, say) back onto the original frame's grid.
    pub fn undo(&self, x: &Tensor) -> Tensor {
        let dims = x.dim() as i64;
        let (rows, columns) = (dims - 2, dims - 1);
        let turned = if self.quarter_turns == 0 {
            x.shallow_clone()
        } else {
            x.rot90(-self.quarter_turns, [rows, columns])
        };
        if self.mirrored {
            turned.flip([columns])
        } else {
            turned.contiguous()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn undo_inverts_each_symmetry() {
        let x = Tensor::arange(24, (tch::Kind::Float, tch::Device::Cpu)).view([2, 3, 4]);
        for s in Symmetry::ALL {
            let back = s.undo(&s.apply(&x));
            assert_eq!(back.size(), [2, 3, 4], "{s:?}");
            assert!(back.equal(&x), "{s:?}");
        }
    }

    #[test]
    fn the_eight_symmetries_are_distinct_and_keep_the_values() {
        let x = Tensor::arange(9, (tch::Kind::Float, tch::Device::Cpu)).view([1, 3, 3]);
        let mut seen = Vec::new();
        for k in 0..8 {
            let s = Symmetry {
                quarter_turns: k % 4,
                mirrored: k >= 4,
            };
            let y = s.apply(&x);
            assert_eq!(y.size(), [1, 3, 3]);
            assert_eq!(y.sum(tch::Kind::Float).double_value(&[]), 36.0);
            let values: Vec<f32> = Vec::try_from(y.flatten(0, -1)).unwrap();
            assert!(!seen.contains(&values));
            seen.push(values);
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let draws: std::collections::HashSet<(i64, bool)> = (0..200)
            .map(|_| {
                let s = Symmetry::random(&mut rng);
                (s.quarter_turns, s.mirrored)
            })
            .collect();
        assert_eq!(draws.len(), 8);
    }
}
