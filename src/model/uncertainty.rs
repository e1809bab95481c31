//! F's uncertainty by test-time augmentation: how much its stress prediction for a frame
//! changes under the eight symmetries of the square, which leave the true stress map
//! unchanged up to the same symmetry (the FEA is equivariant on the pixel grid). MONAI
//! Label ships this idea as its "TTA" active-learning strategy. It needs only the image,
//! so it can rank frames nobody has labelled.

use tch::{Device, Kind, Tensor};

use super::augment::Symmetry;
use super::data::FrameSet;
use super::regressor::Regressor;

/// Per frame of `indices`: the variance of F's stress prediction (kPa²) across the eight
/// symmetries, averaged over the pixels F's tissue head takes for vessel wall (weighted
/// by that probability), since F is trained on wall pixels alone and its output elsewhere
/// means nothing.
pub fn tta_variance(
    model: &Regressor,
    data: &FrameSet,
    indices: &[usize],
    pressure_kpa: f64,
    device: Device,
) -> Vec<f64> {
    let _guard = tch::no_grad_guard();
    let dims = [1i64, 2, 3];
    let count = Symmetry::ALL.len() as f64;
    indices
        .chunks(64)
        .flat_map(|chunk| {
            let input = model.input_batch(data, chunk, device);
            // Per symmetry: the prediction and the wall probability, back on the frame's grid.
            let views: Vec<(Tensor, Tensor)> = Symmetry::ALL
                .iter()
                .map(|symmetry| {
                    let (stress, tissue) = model.forward_with_tissue(&symmetry.apply(&input));
                    // Classes 2–4 (fibrous wall, lipid, calcium) are the solid wall.
                    let solid = tissue
                        .softmax(1, Kind::Float)
                        .narrow(1, 2, 3)
                        .sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
                    (symmetry.undo(&stress), symmetry.undo(&solid))
                })
                .collect();
            let sum: Tensor = views.iter().map(|(s, _)| s.shallow_clone()).sum();
            let sum_squares: Tensor = views.iter().map(|(s, _)| s.square()).sum();
            let wall: Tensor = views.iter().map(|(_, w)| w.shallow_clone()).sum();
            let mean = &sum / count;
            let variance = (sum_squares / count - mean.square()).clamp_min(0.0);
            let wall = wall / count;
            let per_frame = (variance * &wall).sum_dim_intlist(dims.as_slice(), false, Kind::Float)
                / wall
                    .sum_dim_intlist(dims.as_slice(), false, Kind::Float)
                    .clamp_min(1e-6);
            super::data::to_vec(&per_frame)
                .into_iter()
                .map(|v| f64::from(v) * pressure_kpa * pressure_kpa)
                .collect::<Vec<_>>()
        })
        .collect()
}
