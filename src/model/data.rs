//! Frames as tensors: images scaled to [0, 1], label maps as class indices, stress in
//! units of the luminal pressure (the problem is linear in pressure, so σ/p is what a
//! network should learn; predictions are reported back in kPa).

use tch::{Device, Kind, Tensor};

use super::ModelError;
use crate::data::dataset::Dataset;
use crate::labels::LabelMap;

/// In-memory training data at one working resolution.
#[derive(Debug, Clone)]
pub struct FrameSet {
    pub size: usize,
    pub images: Vec<Vec<u8>>,
    /// One label map per image, or none at all for an image-only set (an unannotated pool).
    pub labels: Vec<LabelMap>,
    /// Stress maps in kPa, when every frame has one.
    pub stress: Option<Vec<Vec<f32>>>,
}

impl FrameSet {
    /// An empty set at `size`² whose frames will all carry stress maps.
    pub fn empty_labelled(size: usize) -> FrameSet {
        FrameSet {
            size,
            images: Vec::new(),
            labels: Vec::new(),
            stress: Some(Vec::new()),
        }
    }

    /// Adds a frame with its label map and stress map (the set keeps stress for all).
    pub fn push_labelled(&mut self, image: Vec<u8>, labels: LabelMap, stress: Vec<f32>) {
        self.images.push(image);
        self.labels.push(labels);
        self.stress
            .as_mut()
            .expect("a set of labelled frames carries stress")
            .push(stress);
    }

    /// Loads every annotated frame of `dataset` at `size`².
    pub fn load(
        dataset: &Dataset,
        size: usize,
        require_stress: bool,
    ) -> Result<FrameSet, ModelError> {
        let mut set = FrameSet::empty_labelled(size);
        let all: Vec<usize> = (0..dataset.frames.len()).collect();
        for frame in dataset.load_many(&all, Some(size))? {
            let Some(labels) = frame.labels else { continue };
            set.images.push(frame.image);
            set.labels.push(labels);
            match (&mut set.stress, frame.stress) {
                (Some(all), Some(stress)) => all.push(stress),
                (stress, _) => *stress = None,
            }
        }
        if set.images.is_empty() {
            return Err(ModelError::Data(format!(
                "{} has no annotated frames to train on",
                dataset.root.display()
            )));
        }
        if require_stress && set.stress.is_none() {
            return Err(ModelError::Data(format!(
                "{}: not every frame has a stress map; run `sula label --dataset {}` first",
                dataset.root.display(),
                dataset.root.display()
            )));
        }
        Ok(set)
    }

    /// Every frame of `dataset` at `size`², images only (annotated or not): what an
    /// image-only VAE trains on.
    pub fn load_images(dataset: &Dataset, size: usize) -> Result<FrameSet, ModelError> {
        let all: Vec<usize> = (0..dataset.frames.len()).collect();
        let images: Vec<Vec<u8>> = dataset
            .load_many(&all, Some(size))?
            .into_iter()
            .map(|f| f.image)
            .collect();
        if images.is_empty() {
            return Err(ModelError::Data(format!(
                "{} has no frames",
                dataset.root.display()
            )));
        }
        Ok(FrameSet {
            size,
            images,
            labels: Vec::new(),
            stress: None,
        })
    }

    /// Whether every image has its label map.
    pub fn is_labelled(&self) -> bool {
        self.labels.len() == self.images.len()
    }

    /// Pixels of each tissue class over all label maps, indexed by label value.
    pub fn class_counts(&self) -> [usize; 5] {
        self.labels.iter().fold([0; 5], |mut total, map| {
            for (t, c) in total.iter_mut().zip(map.class_counts()) {
                *t += c;
            }
            total
        })
    }

    /// [`FrameSet::label_batch`] when the set is labelled.
    pub fn label_batch_if_any(&self, indices: &[usize], device: Device) -> Option<Tensor> {
        self.is_labelled()
            .then(|| self.label_batch(indices, device))
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Images of `indices` as an `[n, 1, s, s]` float tensor in [0, 1].
    pub fn image_batch(&self, indices: &[usize], device: Device) -> Tensor {
        let data: Vec<f32> = indices
            .iter()
            .flat_map(|&i| self.images[i].iter().map(|&v| f32::from(v) / 255.0))
            .collect();
        let s = self.size as i64;
        Tensor::from_slice(&data)
            .view([indices.len() as i64, 1, s, s])
            .to_device(device)
    }

    /// Label maps of `indices` as an `[n, s, s]` int64 tensor of class indices.
    pub fn label_batch(&self, indices: &[usize], device: Device) -> Tensor {
        let data: Vec<i64> = indices
            .iter()
            .flat_map(|&i| self.labels[i].values().iter().map(|&v| i64::from(v)))
            .collect();
        let s = self.size as i64;
        Tensor::from_slice(&data)
            .view([indices.len() as i64, s, s])
            .to_device(device)
    }

    /// Stress of `indices` divided by `pressure_kpa`, as `[n, 1, s, s]`.
    pub fn stress_batch(&self, indices: &[usize], pressure_kpa: f64, device: Device) -> Tensor {
        let stress = self.stress.as_ref().expect("stress checked on load");
        let scale = (1.0 / pressure_kpa) as f32;
        let data: Vec<f32> = indices
            .iter()
            .flat_map(|&i| stress[i].iter().map(move |&v| v * scale))
            .collect();
        let s = self.size as i64;
        Tensor::from_slice(&data)
            .view([indices.len() as i64, 1, s, s])
            .to_device(device)
    }

    /// Solid-pixel mask (labels 2–4) of `indices` as `[n, 1, s, s]` floats.
    pub fn solid_batch(&self, indices: &[usize], device: Device) -> Tensor {
        let labels = self.label_batch(indices, device);
        labels.ge(2).to_kind(Kind::Float).unsqueeze(1)
    }
}

/// A tensor's values as a flat `Vec<f32>` (copied to the CPU).
pub fn to_vec(tensor: &Tensor) -> Vec<f32> {
    let flat = tensor
        .to_kind(Kind::Float)
        .to_device(Device::Cpu)
        .flatten(0, -1);
    Vec::<f32>::try_from(&flat).expect("a float tensor converts")
}
