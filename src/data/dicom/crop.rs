//! Which part of a scanner frame is the image: the crop to the imaging circle, and which
//! frames of a pullback to take.
//!
//! Scanner frames carry text, scale bars and logos around the imaging circle; a model fed
//! those learns the overlay. `auto` uses the Sequence of Ultrasound Regions when the file
//! has one, else the area whose pixels change from frame to frame (overlays are static).

use std::str::FromStr;

/// How to crop each frame before resampling to the working resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CropSpec {
    /// The imaging region from the file, else the area that changes across frames.
    #[default]
    Auto,
    /// The whole frame (padded to a square).
    Full,
    /// A square of `size` pixels with its top-left corner at (`x`, `y`).
    Square { x: usize, y: usize, size: usize },
}

impl FromStr for CropSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<CropSpec, String> {
        match text.trim() {
            "auto" => Ok(CropSpec::Auto),
            "full" | "none" => Ok(CropSpec::Full),
            other => {
                let parts: Vec<&str> = other.split(',').map(str::trim).collect();
                let numbers: Option<Vec<usize>> =
                    parts.iter().map(|p| p.parse::<usize>().ok()).collect();
                match numbers.as_deref() {
                    Some(&[x, y, size]) if size > 0 => Ok(CropSpec::Square { x, y, size }),
                    _ => Err(format!(
                        "crop {text:?} is not `auto`, `full` or X,Y,SIZE in pixels (SIZE > 0)"
                    )),
                }
            }
        }
    }
}

impl std::fmt::Display for CropSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CropSpec::Auto => f.write_str("auto"),
            CropSpec::Full => f.write_str("full"),
            CropSpec::Square { x, y, size } => write!(f, "{x},{y},{size}"),
        }
    }
}

/// A square in frame pixels; it may reach past the frame, which is then padded with black.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropRect {
    pub x: i64,
    pub y: i64,
    pub size: usize,
}

impl CropRect {
    /// The smallest square centred on the rectangle `[x0, x1] × [y0, y1]` that holds it.
    pub fn around(x0: usize, y0: usize, x1: usize, y1: usize) -> CropRect {
        let (w, h) = (x1 + 1 - x0, y1 + 1 - y0);
        let size = w.max(h);
        CropRect {
            x: x0 as i64 - ((size - w) / 2) as i64,
            y: y0 as i64 - ((size - h) / 2) as i64,
            size,
        }
    }

    /// The whole `cols × rows` frame, padded to a square.
    pub fn full(rows: usize, cols: usize) -> CropRect {
        CropRect::around(0, 0, cols - 1, rows - 1)
    }

    /// Cuts the square out of a `rows × cols` grey frame.
    pub fn apply(&self, grey: &[u8], rows: usize, cols: usize) -> Vec<u8> {
        let mut out = vec![0u8; self.size * self.size];
        for row in 0..self.size {
            let y = self.y + row as i64;
            if y < 0 || y >= rows as i64 {
                continue;
            }
            for col in 0..self.size {
                let x = self.x + col as i64;
                if x >= 0 && x < cols as i64 {
                    out[row * self.size + col] = grey[y as usize * cols + x as usize];
                }
            }
        }
        out
    }
}

/// Resolves `spec` for a series: `region` is the file's imaging region, `samples` a few of
/// its frames as grey (`rows × cols`).
pub fn resolve(
    spec: CropSpec,
    rows: usize,
    cols: usize,
    region: Option<[usize; 4]>,
    samples: &[Vec<u8>],
) -> Result<CropRect, String> {
    match spec {
        CropSpec::Full => Ok(CropRect::full(rows, cols)),
        CropSpec::Square { x, y, size } => {
            if x + size > cols || y + size > rows {
                Err(format!(
                    "crop {x},{y},{size} reaches past the {cols}×{rows} frame"
                ))
            } else {
                Ok(CropRect {
                    x: x as i64,
                    y: y as i64,
                    size,
                })
            }
        }
        CropSpec::Auto => Ok(match region {
            Some([x0, y0, x1, y1]) if x1 < cols && y1 < rows => CropRect::around(x0, y0, x1, y1),
            _ => changing_area(rows, cols, samples).unwrap_or(CropRect::full(rows, cols)),
        }),
    }
}

/// The bounding square of the pixels that vary across `samples` (or, for one frame, that
/// are not black), ignoring rows and columns where only a few pixels do. `None` when that
/// area is nearly the whole frame, or when nothing varies.
fn changing_area(rows: usize, cols: usize, samples: &[Vec<u8>]) -> Option<CropRect> {
    let pixels = rows * cols;
    if samples.is_empty() || samples.iter().any(|s| s.len() != pixels) {
        return None;
    }
    let active: Vec<bool> = (0..pixels)
        .map(|p| {
            let (low, high) = samples.iter().fold((u8::MAX, u8::MIN), |(lo, hi), s| {
                (lo.min(s[p]), hi.max(s[p]))
            });
            if samples.len() > 1 {
                high - low > 8
            } else {
                high > 16
            }
        })
        .collect();
    let row_counts: Vec<usize> = (0..rows)
        .map(|r| {
            active[r * cols..(r + 1) * cols]
                .iter()
                .filter(|&&a| a)
                .count()
        })
        .collect();
    let col_counts: Vec<usize> = (0..cols)
        .map(|c| (0..rows).filter(|&r| active[r * cols + c]).count())
        .collect();
    let span = |counts: &[usize]| {
        let peak = *counts.iter().max()?;
        if peak == 0 {
            return None;
        }
        // Rows or columns with under a tenth of the busiest one's count are overlay or noise.
        let keep = |&(_, &n): &(usize, &usize)| n * 10 >= peak;
        let first = counts.iter().enumerate().find(keep)?.0;
        let last = counts.iter().enumerate().rev().find(keep)?.0;
        Some((first, last))
    };
    let (y0, y1) = span(&row_counts)?;
    let (x0, x1) = span(&col_counts)?;
    let nearly_all = (x1 + 1 - x0) * 10 >= cols * 9 && (y1 + 1 - y0) * 10 >= rows * 9;
    (!nearly_all).then(|| CropRect::around(x0, y0, x1, y1))
}

/// Frames `START:END:STEP` of a pullback, like a Python slice (END exclusive, each part
/// optional): `100:` from frame 100 on, `::10` every tenth frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSelection {
    pub start: usize,
    pub end: Option<usize>,
    pub step: usize,
}

impl Default for FrameSelection {
    fn default() -> FrameSelection {
        FrameSelection {
            start: 0,
            end: None,
            step: 1,
        }
    }
}

impl FrameSelection {
    /// The selected indices of a series of `count` frames.
    pub fn indices(&self, count: usize) -> impl Iterator<Item = usize> + use<> {
        let end = self.end.unwrap_or(count).min(count);
        (self.start.min(end)..end).step_by(self.step)
    }
}

impl std::fmt::Display for FrameSelection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let end = self.end.map(|e| e.to_string()).unwrap_or_default();
        write!(f, "{}:{end}:{}", self.start, self.step)
    }
}

impl FromStr for FrameSelection {
    type Err = String;

    fn from_str(text: &str) -> Result<FrameSelection, String> {
        let bad =
            || format!("frames {text:?} is not START:END:STEP (each part optional, STEP > 0)");
        let parts: Vec<&str> = text.split(':').map(str::trim).collect();
        if parts.len() > 3 {
            return Err(bad());
        }
        let number = |i: usize| -> Result<Option<usize>, String> {
            match parts.get(i) {
                None | Some(&"") => Ok(None),
                Some(p) => p.parse().map(Some).map_err(|_| bad()),
            }
        };
        let selection = FrameSelection {
            start: number(0)?.unwrap_or(0),
            end: if parts.len() == 1 {
                number(0)?.map(|s| s + 1)
            } else {
                number(1)?
            },
            step: number(2)?.unwrap_or(1),
        };
        if selection.step == 0 || selection.end.is_some_and(|e| e <= selection.start) {
            return Err(bad());
        }
        Ok(selection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_parse_like_python_slices() {
        let all: Vec<usize> = "2:8:3"
            .parse::<FrameSelection>()
            .unwrap()
            .indices(100)
            .collect();
        assert_eq!(all, vec![2, 5]);
        let tail: Vec<usize> = "7:"
            .parse::<FrameSelection>()
            .unwrap()
            .indices(10)
            .collect();
        assert_eq!(tail, vec![7, 8, 9]);
        let one: Vec<usize> = "4".parse::<FrameSelection>().unwrap().indices(10).collect();
        assert_eq!(one, vec![4]);
        let every: Vec<usize> = "::4"
            .parse::<FrameSelection>()
            .unwrap()
            .indices(10)
            .collect();
        assert_eq!(every, vec![0, 4, 8]);
        for text in ["2:8:3", "7::1", "0::4"] {
            let parsed: FrameSelection = text.parse().unwrap();
            assert_eq!(
                parsed.to_string().parse::<FrameSelection>().unwrap(),
                parsed
            );
        }
        for bad in ["::0", "5:2", "a:b", "1:2:3:4"] {
            assert!(bad.parse::<FrameSelection>().is_err(), "{bad}");
        }
    }

    #[test]
    fn crop_specs_parse_and_reject_nonsense() {
        assert_eq!("auto".parse::<CropSpec>().unwrap(), CropSpec::Auto);
        assert_eq!(
            "10, 20, 300".parse::<CropSpec>().unwrap(),
            CropSpec::Square {
                x: 10,
                y: 20,
                size: 300
            }
        );
        assert!("10,20".parse::<CropSpec>().is_err());
        assert!("1,2,0".parse::<CropSpec>().is_err());
    }

    #[test]
    fn auto_crop_finds_the_changing_area_and_ignores_static_text() {
        let (rows, cols) = (60, 80);
        let frame = |seed: u8| {
            let mut f = vec![0u8; rows * cols];
            // Static "text" along the top rows, identical in every frame.
            for v in &mut f[..cols * 3] {
                *v = 200;
            }
            // Speckle that changes from frame to frame in [20, 50) × [10, 40).
            for r in 10..40 {
                for c in 20..50 {
                    f[r * cols + c] = ((r * 31 + c * 17) as u8).wrapping_mul(seed) | 64;
                }
            }
            f
        };
        let samples: Vec<Vec<u8>> = (1..5).map(|s| frame(s * 3)).collect();
        let rect = resolve(CropSpec::Auto, rows, cols, None, &samples).unwrap();
        assert_eq!(
            rect,
            CropRect {
                x: 20,
                y: 10,
                size: 30
            }
        );
        let region = resolve(CropSpec::Auto, rows, cols, Some([5, 6, 14, 25]), &samples).unwrap();
        assert_eq!(
            region,
            CropRect {
                x: 0,
                y: 6,
                size: 20
            }
        );
    }

    #[test]
    fn crops_past_the_frame_are_padded_with_black() {
        let grey = vec![9u8; 4 * 6];
        let rect = CropRect::full(4, 6);
        assert_eq!(
            rect,
            CropRect {
                x: 0,
                y: -1,
                size: 6
            }
        );
        let out = rect.apply(&grey, 4, 6);
        assert_eq!(&out[..6], &[0; 6]);
        assert_eq!(&out[6..12], &[9; 6]);
        assert_eq!(&out[30..], &[0; 6]);
    }
}
