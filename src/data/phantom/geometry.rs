//! Sampled frame geometry of the IVUS phantom, in millimetres and degrees, relative to the
//! catheter at the image centre (x to the right, y down, angles clockwise from +x).

use std::f64::consts::{PI, TAU};

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::labels::Tissue;

/// A closed, star-shaped contour: a circle with smooth low-order Fourier perturbations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contour {
    pub centre_mm: [f64; 2],
    pub mean_radius_mm: f64,
    /// (relative amplitude, phase in radians) of harmonics 2, 3, 4.
    pub harmonics: Vec<[f64; 2]>,
    /// Radius tabulated over the full turn, so rendering avoids three cosines per lookup.
    #[serde(skip)]
    table: Vec<f64>,
}

const TABLE_SIZE: usize = 2048;

impl Contour {
    fn sample(rng: &mut impl Rng, centre: [f64; 2], radius: f64, roughness: f64) -> Contour {
        let harmonics = (0..3)
            .map(|k| {
                let amplitude = rng.gen_range(0.0..roughness) / (1.0 + k as f64);
                [amplitude, rng.gen_range(0.0..TAU)]
            })
            .collect();
        let mut contour = Contour {
            centre_mm: centre,
            mean_radius_mm: radius,
            harmonics,
            table: Vec::new(),
        };
        contour.table = (0..=TABLE_SIZE)
            .map(|k| contour.exact_radius_at(TAU * k as f64 / TABLE_SIZE as f64))
            .collect();
        contour
    }

    /// Radius of the contour in direction `theta` (radians) from its centre.
    pub fn radius_at(&self, theta: f64) -> f64 {
        if self.table.is_empty() {
            return self.exact_radius_at(theta);
        }
        let t = theta.rem_euclid(TAU) / TAU * TABLE_SIZE as f64;
        let k = (t as usize).min(TABLE_SIZE - 1);
        let f = t - k as f64;
        self.table[k] * (1.0 - f) + self.table[k + 1] * f
    }

    fn exact_radius_at(&self, theta: f64) -> f64 {
        let wobble: f64 = self
            .harmonics
            .iter()
            .enumerate()
            .map(|(k, [a, phase])| a * ((k as f64 + 2.0) * theta + phase).cos())
            .sum();
        self.mean_radius_mm * (1.0 + wobble)
    }

    /// Polar coordinates (distance, angle) of point `p` about the contour's centre.
    pub fn polar(&self, p: [f64; 2]) -> (f64, f64) {
        let (dx, dy) = (p[0] - self.centre_mm[0], p[1] - self.centre_mm[1]);
        (dx.hypot(dy), dy.atan2(dx))
    }

    /// Signed distance inward from the contour along the radial line (positive inside).
    pub fn depth_inside(&self, p: [f64; 2]) -> f64 {
        let (r, theta) = self.polar(p);
        self.radius_at(theta) - r
    }

    /// Exact area of the perturbed contour: π r² (1 + Σ a_k² / 2).
    pub fn area_mm2(&self) -> f64 {
        let sum: f64 = self.harmonics.iter().map(|[a, _]| a * a / 2.0).sum();
        PI * self.mean_radius_mm.powi(2) * (1.0 + sum)
    }
}

/// A lipid core or calcium deposit: an arc-shaped band in the wall, measured from the
/// lumen boundary along rays from the lumen centre. Its thickness tapers to zero at the
/// ends of the arc (elliptically for lipid, sharply for calcium).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inclusion {
    pub angle_deg: f64,
    pub arc_deg: f64,
    /// Distance from the lumen boundary to the inclusion (the cap, for lipid).
    pub inner_depth_mm: f64,
    /// Largest radial thickness, at the middle of the arc.
    pub thickness_mm: f64,
    /// Exponent of the taper profile (0.5 elliptical; smaller is blunter).
    pub taper: f64,
}

impl Inclusion {
    /// Thickness at angular offset `delta` (radians) from the arc centre, or `None` outside.
    fn thickness_at(&self, theta: f64) -> Option<f64> {
        let half = (self.arc_deg / 2.0).to_radians();
        let delta = wrap(theta - self.angle_deg.to_radians());
        (delta.abs() < half)
            .then(|| self.thickness_mm * (1.0 - (delta / half).powi(2)).powf(self.taper))
    }

    fn contains(&self, theta: f64, depth: f64) -> bool {
        self.thickness_at(theta)
            .is_some_and(|t| depth >= self.inner_depth_mm && depth < self.inner_depth_mm + t)
    }
}

/// Where calcium lies in the wall (Mintz 1995: superficial, deep or both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CalciumDepth {
    Superficial,
    Deep,
}

/// Calcium deposit with its depth class.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Calcium {
    #[serde(flatten)]
    pub shape: Inclusion,
    pub depth: CalciumDepth,
}

/// Guidewire position in the lumen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Guidewire {
    pub angle_deg: f64,
    pub distance_mm: f64,
}

/// Everything that defines one phantom frame's anatomy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Geometry {
    pub eem: Contour,
    pub lumen: Contour,
    pub media_thickness_mm: f64,
    pub adventitia_thickness_mm: f64,
    pub catheter_radius_mm: f64,
    /// Plaque burden (EEM area − lumen area) / EEM area, from the contours.
    pub plaque_burden: f64,
    /// (max − min wall thickness) / max wall thickness.
    pub eccentricity: f64,
    pub lipid: Option<Inclusion>,
    pub calcium: Option<Calcium>,
    pub guidewire: Option<Guidewire>,
}

/// What the renderer needs to know about a point: finer than the label classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    Catheter,
    Lumen,
    Intima,
    Fibrous,
    Media,
    Lipid,
    Calcium,
    Adventitia,
    Periadventitia,
}

impl Echo {
    /// The label-map class of this echo region.
    pub fn tissue(self) -> Tissue {
        match self {
            Echo::Catheter | Echo::Lumen => Tissue::Lumen,
            Echo::Intima | Echo::Fibrous | Echo::Media => Tissue::Fibrous,
            Echo::Lipid => Tissue::Lipid,
            Echo::Calcium => Tissue::Calcium,
            Echo::Adventitia | Echo::Periadventitia => Tissue::Outside,
        }
    }
}

/// Wraps an angle to (−π, π].
pub fn wrap(angle: f64) -> f64 {
    let a = angle.rem_euclid(TAU);
    if a > PI { a - TAU } else { a }
}

/// Sampling ranges of the phantom (docs/DESIGN.md §Phantom, literature ranges).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GeometryRanges {
    pub eem_diameter_mm: [f64; 2],
    pub plaque_burden: [f64; 2],
    pub cap_thickness_mm: [f64; 2],
    pub lipid_arc_deg: [f64; 2],
    pub lipid_probability: f64,
    pub calcium_probability: f64,
    pub calcium_arc_deg: [f64; 2],
    pub guidewire_probability: f64,
}

impl Default for GeometryRanges {
    fn default() -> Self {
        GeometryRanges {
            eem_diameter_mm: [3.0, 5.5],
            plaque_burden: [0.2, 0.8],
            cap_thickness_mm: [0.05, 0.5],
            lipid_arc_deg: [30.0, 180.0],
            lipid_probability: 0.5,
            calcium_probability: 0.72,
            calcium_arc_deg: [20.0, 180.0],
            guidewire_probability: 0.5,
        }
    }
}

/// Wall thickness (lumen boundary to EEM) along rays from the lumen centre, tabulated.
struct WallTable {
    thickness: Vec<f64>,
}

const WALL_SAMPLES: usize = 360;

impl WallTable {
    fn new(lumen: &Contour, eem: &Contour) -> WallTable {
        let thickness = (0..WALL_SAMPLES)
            .map(|k| {
                let theta = TAU * k as f64 / WALL_SAMPLES as f64;
                let (c, s) = (theta.cos(), theta.sin());
                let r_lumen = lumen.radius_at(theta);
                let point = |d: f64| [lumen.centre_mm[0] + d * c, lumen.centre_mm[1] + d * s];
                let (mut lo, mut hi) = (r_lumen, r_lumen + 4.0 * eem.mean_radius_mm);
                for _ in 0..40 {
                    let mid = 0.5 * (lo + hi);
                    if eem.depth_inside(point(mid)) > 0.0 {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                (lo - r_lumen).max(0.0)
            })
            .collect();
        WallTable { thickness }
    }

    fn at(&self, theta: f64) -> f64 {
        let k = (theta.rem_euclid(TAU) / TAU * WALL_SAMPLES as f64).round() as usize % WALL_SAMPLES;
        self.thickness[k]
    }

    fn thickest_angle(&self) -> f64 {
        let k = (0..WALL_SAMPLES)
            .max_by(|&a, &b| self.thickness[a].total_cmp(&self.thickness[b]))
            .unwrap_or(0);
        TAU * k as f64 / WALL_SAMPLES as f64
    }

    /// Smallest available thickness over an arc, scaled by the inverse taper profile.
    fn fit(&self, centre: f64, arc_deg: f64, taper: f64, reserve: f64) -> f64 {
        let half = (arc_deg / 2.0).to_radians();
        (0..=40)
            .map(|k| {
                let delta = half * (2.0 * k as f64 / 40.0 - 1.0) * 0.98;
                let profile = (1.0 - (delta / half).powi(2)).powf(taper).max(1e-3);
                (self.at(centre + delta) - reserve) / profile
            })
            .fold(f64::INFINITY, f64::min)
    }
}

impl Geometry {
    /// Samples one frame's anatomy.
    pub fn sample(rng: &mut impl Rng, ranges: &GeometryRanges) -> Geometry {
        let catheter_radius_mm = 0.45;
        let media_thickness_mm = rng.gen_range(0.1..0.25);
        let adventitia_thickness_mm = rng.gen_range(0.25..0.45);
        let eem_radius = 0.5 * rng.gen_range(ranges.eem_diameter_mm[0]..ranges.eem_diameter_mm[1]);
        let burden = rng.gen_range(ranges.plaque_burden[0]..ranges.plaque_burden[1]);
        let lumen_radius = eem_radius * (1.0 - burden).sqrt();

        // Eccentric plaques are common: the lumen sits off the vessel centre, towards
        // the thin side, keeping a minimum wall of media plus a thin intima.
        let min_wall = media_thickness_mm + 0.1;
        let room = (eem_radius - lumen_radius - min_wall).max(0.0);
        let eccentric = rng.gen_bool(0.7);
        let shift = room
            * if eccentric {
                rng.gen_range(0.45..0.9)
            } else {
                rng.gen_range(0.0..0.3)
            };
        let plaque_direction = rng.gen_range(0.0..TAU);

        // The catheter (image centre) lies inside the lumen, not necessarily at its centre.
        let slack = (lumen_radius - catheter_radius_mm - 0.15).max(0.0);
        let (offset, offset_angle) = (
            slack * rng.gen_range(0.0f64..1.0).sqrt(),
            rng.gen_range(0.0..TAU),
        );
        let lumen_centre = [offset * offset_angle.cos(), offset * offset_angle.sin()];
        let eem_centre = [
            lumen_centre[0] + shift * plaque_direction.cos(),
            lumen_centre[1] + shift * plaque_direction.sin(),
        ];
        let eem = Contour::sample(rng, eem_centre, eem_radius, 0.04);
        let lumen = Contour::sample(rng, lumen_centre, lumen_radius, 0.06);
        let wall = WallTable::new(&lumen, &eem);
        let plaque_burden = 1.0 - lumen.area_mm2() / eem.area_mm2();
        let (thin, thick) = wall
            .thickness
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), &t| {
                (lo.min(t), hi.max(t))
            });
        let eccentricity = if thick > 0.0 {
            (thick - thin) / thick
        } else {
            0.0
        };
        let thickest = wall.thickest_angle();
        let reserve = media_thickness_mm + 0.05;

        let lipid = rng.gen_bool(ranges.lipid_probability).then(|| {
            // Log-uniform: thin caps are as common per decade as thick ones.
            let [thin_cap, thick_cap] = ranges.cap_thickness_mm;
            let cap = rng.gen_range(thin_cap.ln()..thick_cap.ln()).exp();
            let centre = thickest + rng.gen_range(-0.4..0.4);
            let mut arc = rng.gen_range(ranges.lipid_arc_deg[0]..ranges.lipid_arc_deg[1]);
            let taper = 0.5;
            // Shrink the arc until the core fits behind its cap with some thickness.
            loop {
                let room = wall.fit(centre, arc, taper, reserve + cap);
                if room >= 0.15 || arc <= ranges.lipid_arc_deg[0] {
                    let thickness = room * rng.gen_range(0.5..0.85);
                    return (thickness >= 0.1).then_some(Inclusion {
                        angle_deg: centre.to_degrees().rem_euclid(360.0),
                        arc_deg: arc,
                        inner_depth_mm: cap,
                        thickness_mm: thickness.min(1.5),
                        taper,
                    });
                }
                arc = (arc * 0.8).max(ranges.lipid_arc_deg[0]);
            }
        });
        let lipid = lipid.flatten();

        let calcium = rng.gen_bool(ranges.calcium_probability).then(|| {
            let arc_dist = Normal::new(115.0f64, 60.0).expect("valid normal");
            let mut arc = arc_dist
                .sample(rng)
                .clamp(ranges.calcium_arc_deg[0], ranges.calcium_arc_deg[1]);
            let mut centre = thickest + Normal::new(0.0, 0.8).expect("valid normal").sample(rng);
            let depth = if rng.gen_bool(0.6) {
                CalciumDepth::Superficial
            } else {
                CalciumDepth::Deep
            };
            let taper = 0.15;
            let wanted: f64 = rng.gen_range(0.2..0.5);
            // Deep calcium may take the place of the media: keep only a hair of wall.
            let calcium_reserve = 0.05;
            loop {
                let room = wall.fit(centre, arc, taper, calcium_reserve);
                if room >= 0.15 || arc <= ranges.calcium_arc_deg[0] {
                    if room < 0.15 && centre != thickest {
                        // Too thin here: move to the thickest part of the plaque.
                        centre = thickest;
                        continue;
                    }
                    let thickness = wanted.min(room);
                    if thickness < 0.12 {
                        return None;
                    }
                    let inner = match depth {
                        CalciumDepth::Superficial => {
                            rng.gen_range(0.03..0.2f64).min(room - thickness)
                        }
                        CalciumDepth::Deep => (room - thickness) * rng.gen_range(0.7..1.0),
                    }
                    .max(0.0);
                    return Some(Calcium {
                        shape: Inclusion {
                            angle_deg: centre.to_degrees().rem_euclid(360.0),
                            arc_deg: arc,
                            inner_depth_mm: inner,
                            thickness_mm: thickness,
                            taper,
                        },
                        depth,
                    });
                }
                arc = (arc * 0.8).max(ranges.calcium_arc_deg[0]);
            }
        });
        let calcium = calcium.flatten();

        let guidewire = rng.gen_bool(ranges.guidewire_probability).then(|| {
            let angle: f64 = rng.gen_range(0.0..TAU);
            let inside = lumen.radius_at(angle) - lumen.polar([0.0, 0.0]).0;
            Guidewire {
                angle_deg: angle.to_degrees(),
                distance_mm: rng.gen_range(
                    catheter_radius_mm + 0.15..(catheter_radius_mm + 0.2).max(inside.min(1.3)),
                ),
            }
        });

        Geometry {
            eem,
            lumen,
            media_thickness_mm,
            adventitia_thickness_mm,
            catheter_radius_mm,
            plaque_burden,
            eccentricity,
            lipid,
            calcium,
            guidewire,
        }
    }

    /// The echo region at point `p` (mm from the catheter).
    pub fn echo_at(&self, p: [f64; 2]) -> Echo {
        if p[0] * p[0] + p[1] * p[1] < self.catheter_radius_mm * self.catheter_radius_mm {
            return Echo::Catheter;
        }
        let (r, theta) = self.lumen.polar(p);
        let depth = r - self.lumen.radius_at(theta);
        if depth < 0.0 {
            return Echo::Lumen;
        }
        let inside_eem = self.eem.depth_inside(p);
        if inside_eem <= 0.0 {
            return if -inside_eem < self.adventitia_thickness_mm {
                Echo::Adventitia
            } else {
                Echo::Periadventitia
            };
        }
        if let Some(calcium) = &self.calcium
            && calcium.shape.contains(theta, depth)
        {
            return Echo::Calcium;
        }
        if let Some(lipid) = &self.lipid
            && lipid.contains(theta, depth)
        {
            return Echo::Lipid;
        }
        if inside_eem < self.media_thickness_mm {
            Echo::Media
        } else if depth < 0.08 {
            Echo::Intima
        } else {
            Echo::Fibrous
        }
    }
}
