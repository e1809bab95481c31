//! Where a study's real frames come from: the seeded phantom (pool and an independent
//! test set from another seed) or a dataset folder with a held-out split or a separate
//! test folder. The GUI uses the same loader.

use std::path::PathBuf;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::dataset::Dataset;
use crate::data::phantom::{self, PhantomConfig};
use crate::io::IoError;
use crate::model::data::FrameSet;

/// The real data of a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DataSource {
    Phantom {
        pool_count: usize,
        pool_seed: u64,
        test_count: usize,
        test_seed: u64,
    },
    Folder {
        data: PathBuf,
        /// A separate test folder; without it, `test_fraction` of `data` is held out.
        test: Option<PathBuf>,
        test_fraction: f64,
        split_seed: u64,
        pixel_mm: Option<f64>,
    },
}

/// Frames at the working resolution with their ids.
#[derive(Debug, Clone)]
pub struct Frames {
    pub ids: Vec<String>,
    pub set: FrameSet,
}

/// Pool frames and the test set labelled by the FEA, with the FEA settings for the pool.
#[derive(Debug, Clone)]
pub struct LabelledStudy {
    pub pool: Frames,
    pub test: FrameSet,
    /// Test frames the FEA could not label (left out).
    pub dropped: usize,
    /// Frames of the source without a label map, which a study cannot use.
    pub unannotated: usize,
    /// Frames whose lumen touched the outside at a few pixels, sealed on loading.
    pub sealed: Vec<Sealed>,
    pub fea: crate::fea::FeaParams,
}

/// The largest validation split a study holds out unless told otherwise: enough frames to
/// tell settings apart (the default study's choices were made on 200).
pub const MAX_DEFAULT_VALIDATION: usize = 200;

/// The validation split a pool of `pool` frames gives by default: a fifth of it, at most
/// [`MAX_DEFAULT_VALIDATION`], so that a small dataset keeps most of its frames as the
/// candidates the arms choose from (a fixed 200 left 120 of a 400-frame dataset's pool).
pub fn default_validation(pool: usize) -> usize {
    (pool / 5).min(MAX_DEFAULT_VALIDATION)
}

/// A frame whose lumen touched the outside at a few pixels and was sealed on loading
/// (see [`crate::labels::close_lumen`]): kept and labelled, and reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub id: String,
    /// Lumen pixels turned into wall.
    pub pixels: usize,
}

impl LabelledStudy {
    /// Takes `count` pool frames, chosen by `seed`, out of the pool as a validation split
    /// labelled by the FEA (frames it cannot label are left out of it): the frames every
    /// choice of the study is made on, so that the test set is only ever reported. The
    /// rest stays the candidate pool, in its original order.
    pub fn split_validation(
        mut self,
        count: usize,
        seed: u64,
    ) -> Result<(LabelledStudy, FrameSet), String> {
        let total = self.pool.ids.len();
        if count >= total {
            return Err(format!(
                "a validation split of {count} frames leaves nothing of the pool of {total}"
            ));
        }
        let mut order: Vec<usize> = (0..total).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let mut held_out = vec![false; total];
        for &i in &order[..count] {
            held_out[i] = true;
        }
        let size = self.pool.set.size;
        let mut pool = empty(size);
        let mut validation = empty(size);
        pool.set.stress = self.pool.set.stress.as_ref().map(|_| Vec::new());
        validation.set.stress = pool.set.stress.clone();
        for i in 0..total {
            let target = if held_out[i] {
                &mut validation
            } else {
                &mut pool
            };
            target.ids.push(std::mem::take(&mut self.pool.ids[i]));
            target
                .set
                .images
                .push(std::mem::take(&mut self.pool.set.images[i]));
            target.set.labels.push(self.pool.set.labels[i].clone());
            if let (Some(to), Some(from)) = (&mut target.set.stress, &mut self.pool.set.stress) {
                to.push(std::mem::take(&mut from[i]));
            }
        }
        let (validation, _) = crate::sampling::pool::label_all(validation.set, &self.fea);
        self.pool = pool;
        Ok((self, validation))
    }
}

impl StudyData {
    /// Labels the test set with the FEA at this data's pixel spacing (in parallel; frames
    /// that carry stress keep it).
    pub fn label_test(self) -> LabelledStudy {
        let fea = crate::fea::FeaParams {
            pixel_mm: self.pixel_mm,
            ..crate::fea::FeaParams::default()
        };
        let (test, dropped) = crate::sampling::pool::label_all(self.test.set, &fea);
        LabelledStudy {
            pool: self.pool,
            test,
            dropped,
            unannotated: self.unannotated,
            sealed: self.sealed,
            fea,
        }
    }
}

/// Pool and test frames, and the pixel spacing the FEA uses.
#[derive(Debug, Clone)]
pub struct StudyData {
    pub pool: Frames,
    pub test: Frames,
    pub pixel_mm: f64,
    /// Frames of the source without a label map (left out).
    pub unannotated: usize,
    /// Frames of the pool and test set sealed on loading.
    pub sealed: Vec<Sealed>,
}

fn empty(size: usize) -> Frames {
    Frames {
        ids: Vec::new(),
        set: FrameSet {
            size,
            images: Vec::new(),
            labels: Vec::new(),
            stress: Some(Vec::new()),
        },
    }
}

fn push(
    frames: &mut Frames,
    id: String,
    image: Vec<u8>,
    labels: crate::labels::LabelMap,
    stress: Option<Vec<f32>>,
) {
    frames.ids.push(id);
    frames.set.images.push(image);
    frames.set.labels.push(labels);
    match (&mut frames.set.stress, stress) {
        (Some(all), Some(s)) => all.push(s),
        (all, _) => *all = None,
    }
}

/// `count` phantom frames of `seed` at `size`² (generated in parallel, deterministic).
pub fn phantom_frames(size: usize, count: usize, seed: u64) -> Frames {
    let config = PhantomConfig::new(size);
    let generated: Vec<phantom::Frame> = (0..count as u64)
        .into_par_iter()
        .map(|i| phantom::generate(&config, seed, i))
        .collect();
    let mut frames = empty(size);
    frames.set.stress = None;
    for f in generated {
        frames.ids.push(f.meta.id);
        frames.set.images.push(f.image);
        frames.set.labels.push(f.labels);
    }
    frames
}

/// What a study reads of one dataset folder.
struct Folder {
    /// Every annotated frame (with a label map), at the working resolution.
    frames: Frames,
    /// Spacing at the working resolution.
    pixel_mm: f64,
    /// Frames left out for having no label map.
    unannotated: usize,
    /// Frames whose lumen the loader sealed.
    sealed: Vec<Sealed>,
}

/// The annotated frames of the dataset at `root` at `size`².
fn folder_frames(
    root: &std::path::Path,
    size: usize,
    pixel_mm: Option<f64>,
) -> Result<Folder, IoError> {
    let dataset = Dataset::open(root, pixel_mm)?;
    let unannotated = dataset.frames.len() - dataset.annotated();
    let annotated: Vec<usize> = (0..dataset.frames.len())
        .filter(|&i| dataset.frames[i].mask != crate::data::dataset::MaskSource::Missing)
        .collect();
    let mut frames = empty(size);
    let mut spacing = dataset.pixel_mm;
    let mut sealed = Vec::new();
    for frame in dataset.load_many(&annotated, Some(size))? {
        // Spacing at the working resolution (the loader scales it when resampling).
        spacing = frame.pixel_mm;
        if frame.sealed > 0 {
            sealed.push(Sealed {
                id: frame.id.clone(),
                pixels: frame.sealed,
            });
        }
        if let Some(labels) = frame.labels {
            push(&mut frames, frame.id, frame.image, labels, frame.stress);
        }
    }
    if frames.ids.is_empty() {
        return Err(IoError::format(
            root,
            "has no frames with label maps: a study needs annotated frames (an unannotated pullback goes through `sula project new`, `sula suggest` and `sula import`)",
        ));
    }
    Ok(Folder {
        frames,
        pixel_mm: spacing,
        unannotated,
        sealed,
    })
}

impl DataSource {
    /// The default phantom study: 1200 pool frames (seed 1), 300 test frames (seed 2).
    pub fn default_phantom() -> DataSource {
        DataSource::Phantom {
            pool_count: 1200,
            pool_seed: 1,
            test_count: 300,
            test_seed: 2,
        }
    }

    /// Loads pool and test frames at `size`².
    pub fn load(&self, size: usize) -> Result<StudyData, IoError> {
        self.load_parts(size, true)
    }

    /// Loads the pool alone, for choices that must not see the test set: a separate test
    /// folder is not opened, a phantom test set not generated, and a held-out split of
    /// the data folder is dropped unread (the pool is the same as [`DataSource::load`]'s).
    pub fn load_pool(&self, size: usize) -> Result<StudyData, IoError> {
        self.load_parts(size, false)
    }

    fn load_parts(&self, size: usize, with_test: bool) -> Result<StudyData, IoError> {
        match self {
            DataSource::Phantom {
                pool_count,
                pool_seed,
                test_count,
                test_seed,
            } => Ok(StudyData {
                pool: phantom_frames(size, *pool_count, *pool_seed),
                test: if with_test {
                    phantom_frames(size, *test_count, *test_seed)
                } else {
                    empty(size)
                },
                pixel_mm: PhantomConfig::new(size).pixel_mm(),
                unannotated: 0,
                sealed: Vec::new(),
            }),
            DataSource::Folder {
                data,
                test,
                test_fraction,
                split_seed,
                pixel_mm,
            } => {
                let Folder {
                    frames: all,
                    pixel_mm: spacing,
                    unannotated,
                    mut sealed,
                } = folder_frames(data, size, *pixel_mm)?;
                if let Some(test) = test {
                    let test = if with_test {
                        let test = folder_frames(test, size, *pixel_mm)?;
                        sealed.extend(test.sealed);
                        test.frames
                    } else {
                        empty(size)
                    };
                    return Ok(StudyData {
                        pool: all,
                        test,
                        pixel_mm: spacing,
                        unannotated,
                        sealed,
                    });
                }
                if !(*test_fraction > 0.0 && *test_fraction < 1.0) {
                    return Err(IoError::format(
                        data,
                        format!(
                            "the held-out test fraction must be between 0 and 1, got {test_fraction}"
                        ),
                    ));
                }
                let mut order: Vec<usize> = (0..all.ids.len()).collect();
                order.shuffle(&mut ChaCha8Rng::seed_from_u64(*split_seed));
                let held_out = ((all.ids.len() as f64 * test_fraction).round() as usize).max(1);
                if held_out >= all.ids.len() {
                    return Err(IoError::format(
                        data,
                        format!(
                            "{} frames are too few to hold out a test set",
                            all.ids.len()
                        ),
                    ));
                }
                let mut pool = empty(size);
                let mut test = empty(size);
                for (rank, &i) in order.iter().enumerate() {
                    let target = if rank >= held_out {
                        &mut pool
                    } else if with_test {
                        &mut test
                    } else {
                        continue;
                    };
                    let stress = all.set.stress.as_ref().map(|s| s[i].clone());
                    push(
                        target,
                        all.ids[i].clone(),
                        all.set.images[i].clone(),
                        all.set.labels[i].clone(),
                        stress,
                    );
                }
                // A held-out split left unread is not reported either.
                sealed.retain(|s| with_test || pool.ids.contains(&s.id));
                Ok(StudyData {
                    pool,
                    test,
                    pixel_mm: spacing,
                    unannotated,
                    sealed,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_validation_split_is_a_fifth_of_the_pool_up_to_200() {
        assert_eq!(default_validation(400), 80);
        assert_eq!(default_validation(1000), 200);
        assert_eq!(default_validation(1200), 200);
        assert_eq!(default_validation(4), 0);
    }
}
