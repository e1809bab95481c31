//! Perceptual colour maps as 256-entry lookup tables.

/// A 256-entry RGB lookup table.
#[derive(Debug, Clone)]
pub struct ColorMap {
    lut: Vec<[u8; 3]>,
}

impl ColorMap {
    fn from_gradient(gradient: colorous::Gradient) -> ColorMap {
        let lut = (0..256)
            .map(|i| {
                let c = gradient.eval_rational(i, 256);
                [c.r, c.g, c.b]
            })
            .collect();
        ColorMap { lut }
    }

    /// Turbo: the stress colour map (high contrast, low to high = blue to red).
    pub fn turbo() -> ColorMap {
        ColorMap::from_gradient(colorous::TURBO)
    }

    /// Viridis: for magnitudes such as absolute error.
    pub fn viridis() -> ColorMap {
        ColorMap::from_gradient(colorous::VIRIDIS)
    }

    /// Colour of `value` on the range [lo, hi]; values outside are clamped, NaN maps to lo.
    pub fn map(&self, value: f64, lo: f64, hi: f64) -> [u8; 3] {
        let t = if hi > lo {
            (value - lo) / (hi - lo)
        } else {
            0.0
        };
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        self.lut[(t * 255.0).round() as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_and_clamping() {
        let map = ColorMap::turbo();
        assert_eq!(map.map(-5.0, 0.0, 1.0), map.map(0.0, 0.0, 1.0));
        assert_eq!(map.map(7.0, 0.0, 1.0), map.map(1.0, 0.0, 1.0));
        assert_ne!(map.map(0.0, 0.0, 1.0), map.map(1.0, 0.0, 1.0));
        assert_eq!(map.map(f64::NAN, 0.0, 1.0), map.map(0.0, 0.0, 1.0));
    }
}
