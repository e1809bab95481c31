//! Per-tissue linear-elastic materials and the JSON file that overrides them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::FeaError;
use crate::labels::Tissue;

/// Isotropic linear-elastic constants of one tissue.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Material {
    /// Young's modulus in kPa.
    pub youngs_modulus_kpa: f64,
    /// Poisson's ratio; must stay below 0.5 (plane strain with λ finite).
    pub poisson_ratio: f64,
}

impl Material {
    /// Lamé parameters (λ, μ) in kPa.
    pub fn lame(&self) -> (f64, f64) {
        let (e, nu) = (self.youngs_modulus_kpa, self.poisson_ratio);
        let lambda = e * nu / ((1.0 + nu) * (1.0 - 2.0 * nu));
        let mu = e / (2.0 * (1.0 + nu));
        (lambda, mu)
    }

    fn validate(&self, tissue: &str) -> Result<(), FeaError> {
        let e = self.youngs_modulus_kpa;
        let nu = self.poisson_ratio;
        if !(e.is_finite() && e > 0.0) {
            return Err(FeaError::InvalidMaterial(format!(
                "{tissue}: Young's modulus must be a positive number of kPa, got {e}"
            )));
        }
        if !(nu.is_finite() && nu > -1.0 && nu < 0.5) {
            return Err(FeaError::InvalidMaterial(format!(
                "{tissue}: Poisson's ratio must lie in (-1, 0.5), got {nu}"
            )));
        }
        Ok(())
    }
}

/// Materials of the three solid tissues (the defaults of docs/DESIGN.md §FEA: 600 kPa, 5 kPa, 10 MPa, ν = 0.49).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Materials {
    pub fibrous: Material,
    pub lipid: Material,
    pub calcium: Material,
}

impl Default for Materials {
    fn default() -> Self {
        let with = |youngs_modulus_kpa| Material {
            youngs_modulus_kpa,
            poisson_ratio: 0.49,
        };
        Materials {
            fibrous: with(600.0),
            lipid: with(5.0),
            calcium: with(10_000.0),
        }
    }
}

impl Materials {
    /// The material of a solid tissue; `None` for lumen and outside.
    pub fn of(&self, tissue: Tissue) -> Option<&Material> {
        match tissue {
            Tissue::Fibrous => Some(&self.fibrous),
            Tissue::Lipid => Some(&self.lipid),
            Tissue::Calcium => Some(&self.calcium),
            Tissue::Outside | Tissue::Lumen => None,
        }
    }

    /// Checks every modulus and ratio is physically admissible.
    pub fn validate(&self) -> Result<(), FeaError> {
        self.fibrous.validate("fibrous")?;
        self.lipid.validate("lipid")?;
        self.calcium.validate("calcium")
    }

    /// Every Young's modulus multiplied by `factor` (stress must not change).
    pub fn scaled(&self, factor: f64) -> Materials {
        let scale = |m: Material| Material {
            youngs_modulus_kpa: m.youngs_modulus_kpa * factor,
            ..m
        };
        Materials {
            fibrous: scale(self.fibrous),
            lipid: scale(self.lipid),
            calcium: scale(self.calcium),
        }
    }

    /// Parses a materials file such as
    /// `{"fibrous": {"youngs_modulus_kpa": 600, "poisson_ratio": 0.49}, "lipid": …, "calcium": …}`.
    pub fn from_json(text: &str) -> Result<Materials, FeaError> {
        let materials: Materials =
            serde_json::from_str(text).map_err(|e| FeaError::InvalidMaterial(e.to_string()))?;
        materials.validate()?;
        Ok(materials)
    }

    /// Reads [`Materials::from_json`] from a file, naming the file in any error.
    pub fn load(path: &Path) -> Result<Materials, FeaError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            FeaError::InvalidMaterial(format!("cannot read {}: {e}", path.display()))
        })?;
        Materials::from_json(&text).map_err(|e| match e {
            FeaError::InvalidMaterial(msg) => {
                FeaError::InvalidMaterial(format!("{}: {msg}", path.display()))
            }
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_validation() {
        let text = serde_json::to_string(&Materials::default()).unwrap();
        assert_eq!(Materials::from_json(&text).unwrap(), Materials::default());
        let bad = text.replace("0.49", "0.5");
        assert!(Materials::from_json(&bad).is_err());
        assert!(Materials::from_json("{\"fibrous\": 3}").is_err());
    }

    #[test]
    fn lame_parameters_match_textbook() {
        let (lambda, mu) = Material {
            youngs_modulus_kpa: 600.0,
            poisson_ratio: 0.25,
        }
        .lame();
        assert!((lambda - 240.0).abs() < 1e-9);
        assert!((mu - 240.0).abs() < 1e-9);
    }
}
