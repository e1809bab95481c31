//! Checkpoints: the VarStore as safetensors plus a JSON sidecar (same stem, `.json`) with
//! the architecture, data resolution and training provenance. Loading checks the sidecar
//! against what the caller needs before touching the weights.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, nn};

use super::ModelError;
use super::regressor::{REGRESSOR_REVISION, Regressor, RegressorConfig};
use super::vae::{VAE_REVISION, Vae, VaeConfig};

/// Which network a checkpoint holds, with its architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Architecture {
    Vae(VaeConfig),
    Regressor(RegressorConfig),
}

/// The JSON sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    pub architecture: Architecture,
    pub sula_version: String,
    /// Dataset root, frame count, pixel spacing, pressure (for F).
    pub data: serde_json::Value,
    /// Training configuration, report and device.
    pub training: serde_json::Value,
}

/// The sidecar path of a checkpoint (`model.safetensors` → `model.json`).
pub fn sidecar_path(checkpoint: &Path) -> PathBuf {
    checkpoint.with_extension("json")
}

fn error(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Saves weights and sidecar, each atomically (temporary sibling, then rename).
pub fn save(vs: &nn::VarStore, path: &Path, sidecar: &Sidecar) -> Result<(), ModelError> {
    if path.extension().is_none_or(|e| e != "safetensors") {
        return Err(error(path, "checkpoint files must end in .safetensors"));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.{}.tmp.safetensors", std::process::id()));
    vs.save(&temporary)
        .map_err(|e| error(path, format!("cannot write weights ({e})")))?;
    std::fs::rename(&temporary, path).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        error(path, format!("cannot write weights ({e})"))
    })?;
    let json = serde_json::to_string_pretty(sidecar).expect("sidecar serialises");
    crate::io::atomic::write_bytes(&sidecar_path(path), json.as_bytes())?;
    Ok(())
}

/// Reads the sidecar of a checkpoint.
pub fn read_sidecar(path: &Path) -> Result<Sidecar, ModelError> {
    let sidecar = sidecar_path(path);
    let text = std::fs::read_to_string(&sidecar).map_err(|e| {
        error(
            path,
            format!("cannot read its sidecar {} ({e})", sidecar.display()),
        )
    })?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| error(&sidecar, format!("invalid checkpoint sidecar ({e})")))?;
    if let Some(variant) = retired_variant(&value["architecture"]) {
        return Err(error(
            path,
            format!(
                "was trained with {variant}, a variant that was measured and not adopted and is no longer in sula; it is kept at the git tag `{RETIRED_VARIANTS_TAG}`"
            ),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| error(&sidecar, format!("invalid checkpoint sidecar ({e})")))
}

/// The git tag of the last commit that still has the model variants measured and not
/// adopted (docs/journal/README.md), which checkpoints that need them are sent to.
pub const RETIRED_VARIANTS_TAG: &str = "rejected-variants";

/// The retired variant a sidecar's architecture needs to run, if any. Variants that only
/// changed training (the squared-error and spread-weighted likelihoods of the mean image,
/// F's peak-relative frame weighting) leave a network this build runs as it was trained,
/// so they load.
fn retired_variant(architecture: &serde_json::Value) -> Option<&'static str> {
    let flag = |key: &str| architecture[key].as_bool() == Some(true);
    let number = |key: &str| architecture[key].as_f64().unwrap_or(0.0);
    if architecture["image_likelihood"] == "log-rayleigh" {
        Some("the log-Rayleigh likelihood of the mean image")
    } else if flag("polar_head") {
        Some("the polar head")
    } else if flag("label_conditioned_image") {
        Some("a mean image drawn from the decoded label map")
    } else if number("input_blur") > 0.0 {
        Some("an input blur")
    } else {
        None
    }
}

fn load_weights(vs: &mut nn::VarStore, path: &Path) -> Result<(), ModelError> {
    vs.load(path).map_err(|e| {
        error(
            path,
            format!("weights do not match the architecture in the sidecar ({e})"),
        )
    })
}

/// Refuses a checkpoint trained at another resolution than the one needed.
fn require_size(
    path: &Path,
    what: &str,
    trained: usize,
    needed: Option<usize>,
) -> Result<(), ModelError> {
    match needed {
        Some(size) if size != trained => Err(error(
            path,
            format!("{what} was trained at {trained}×{trained} but {size}×{size} is needed"),
        )),
        _ => Ok(()),
    }
}

/// Refuses a checkpoint of another architecture revision than this build's.
fn require_revision(
    path: &Path,
    what: &str,
    revision: u32,
    current: u32,
    retrain: &str,
) -> Result<(), ModelError> {
    if revision == current {
        return Ok(());
    }
    Err(error(
        path,
        format!(
            "this {what} has architecture revision {revision}, but this sula builds revision {current}; retrain it with `{retrain}`"
        ),
    ))
}

/// Builds a model in a fresh VarStore and loads the checkpoint's weights into it.
fn build_and_load<M>(
    path: &Path,
    device: Device,
    build: impl FnOnce(&nn::Path) -> M,
) -> Result<(nn::VarStore, M), ModelError> {
    let mut vs = nn::VarStore::new(device);
    let model = build(&vs.root());
    load_weights(&mut vs, path)?;
    Ok((vs, model))
}

/// Loads a VAE; with `size`, refuses a checkpoint trained at another resolution.
pub fn load_vae(
    path: &Path,
    device: Device,
    size: Option<usize>,
) -> Result<(nn::VarStore, Vae, Sidecar), ModelError> {
    let sidecar = read_sidecar(path)?;
    let Architecture::Vae(config) = sidecar.architecture else {
        return Err(error(path, "holds a stress regressor, not a VAE"));
    };
    require_size(path, "VAE", config.size, size)?;
    require_revision(path, "VAE", config.revision, VAE_REVISION, "sula train-vae")?;
    let (vs, vae) = build_and_load(path, device, |root| Vae::new(root, config))?;
    Ok((vs, vae, sidecar))
}

/// Loads a stress regressor; with `size`, refuses another resolution.
pub fn load_regressor(
    path: &Path,
    device: Device,
    size: Option<usize>,
) -> Result<(nn::VarStore, Regressor, Sidecar), ModelError> {
    let sidecar = read_sidecar(path)?;
    let Architecture::Regressor(config) = sidecar.architecture else {
        return Err(error(path, "holds a VAE, not a stress regressor"));
    };
    require_size(path, "regressor", config.size, size)?;
    require_revision(
        path,
        "stress regressor",
        config.revision,
        REGRESSOR_REVISION,
        "sula train",
    )?;
    let (vs, model) = build_and_load(path, device, |root| Regressor::new(root, config))?;
    Ok((vs, model, sidecar))
}

/// File name stem of the shipped default VAE in `assets/`.
pub const DEFAULT_VAE_NAME: &str = "phantom64_vae";
const DEFAULT_VAE_WEIGHTS: &[u8] = include_bytes!("../../assets/phantom64_vae.safetensors");
const DEFAULT_VAE_SIDECAR: &str = include_str!("../../assets/phantom64_vae.json");

/// Copies safetensors `bytes` into the variables of `vs`; every variable must be present
/// with its shape, in float32.
fn load_weights_from_bytes(
    vs: &mut nn::VarStore,
    bytes: &[u8],
    origin: &Path,
) -> Result<(), ModelError> {
    let tensors = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| error(origin, format!("not a safetensors file ({e:?})")))?;
    for (name, mut variable) in vs.variables() {
        let view = tensors
            .tensor(&name)
            .map_err(|_| error(origin, format!("has no weights for {name}")))?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        if view.dtype() != safetensors::Dtype::F32 || shape != variable.size() {
            return Err(error(
                origin,
                format!(
                    "weights for {name} are {:?} {shape:?}, expected F32 {:?}",
                    view.dtype(),
                    variable.size()
                ),
            ));
        }
        let source = tch::Tensor::from_data_size(view.data(), &shape, tch::Kind::Float);
        tch::no_grad(|| variable.copy_(&source));
    }
    Ok(())
}

/// The VAE shipped in `assets/` (trained on the default phantom at 64², see
/// `assets/README.md`), embedded in the binary so the app starts ready.
pub fn load_default_vae(device: Device) -> Result<(nn::VarStore, Vae, Sidecar), ModelError> {
    let origin = Path::new("assets/phantom64_vae.safetensors");
    let sidecar: Sidecar = serde_json::from_str(DEFAULT_VAE_SIDECAR)
        .map_err(|e| error(origin, format!("invalid embedded sidecar ({e})")))?;
    let Architecture::Vae(config) = sidecar.architecture else {
        return Err(error(origin, "the embedded default is not a VAE"));
    };
    let mut vs = nn::VarStore::new(device);
    let vae = Vae::new(&vs.root(), config);
    load_weights_from_bytes(&mut vs, DEFAULT_VAE_WEIGHTS, origin)?;
    Ok((vs, vae, sidecar))
}
