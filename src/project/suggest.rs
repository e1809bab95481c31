//! `sula suggest`: the next frames to annotate. Round 0 (nothing annotated yet) by a pool
//! strategy (random, or core-set: greedy k-centre on the VAE's encoder means); later rounds
//! by the method: annotated frames' latent points move along the gradient of F's loss and
//! snap to the nearest pool frame not annotated or suggested yet (gradient-guided SNN).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tch::Device;

use super::{BatchRecord, GradientMove, Project, ProjectError, file_stem, now, tool_files};
use crate::data::dataset::Dataset;
use crate::data::layout::{DatasetManifest, SulaWriter};
use crate::data::mask::encode_grey_png;
use crate::export::manifest::{self, ExportManifest, ManifestEntry, SampleOrigin};
use crate::fea::DEFAULT_PRESSURE_KPA;
use crate::model::checkpoint;
use crate::model::data::FrameSet;
use crate::model::evaluate::encode_means;
use crate::model::gradient::{Normalisation, latent_gradients, move_latent, norm};
use crate::model::vae::Vae;
use crate::sampling::geometry::{distance, k_centre};
use crate::sampling::projection::Projection;

/// How round 0 picks frames, before anything is annotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PoolStrategy {
    /// Uniformly at random (seeded).
    Random,
    /// Greedy k-centre on the encoder means: each pick is the frame farthest from those
    /// annotated or picked, so the batch covers the pool.
    CoreSet,
}

/// What `suggest` was asked for.
#[derive(Debug, Clone, Copy)]
pub struct SuggestOptions {
    pub count: usize,
    pub round_zero: PoolStrategy,
    /// η: the step along the normalised gradient, in latent units.
    pub step: f32,
    pub device: Device,
}

/// The pool at the working resolution, embedded by the project's VAE.
pub struct EmbeddedPool {
    pub dataset: Dataset,
    pub ids: Vec<String>,
    /// Images at the working resolution, in pool order.
    pub images: FrameSet,
    pub means: Vec<Vec<f32>>,
}

impl EmbeddedPool {
    /// Opens the project's pool and encodes every frame (images only).
    pub fn load(
        project: &Project,
        vae: &Vae,
        device: Device,
    ) -> Result<EmbeddedPool, ProjectError> {
        let dataset = project.file.pool.open()?;
        let (ids, images) = project.pool_images(&dataset)?;
        let means = encode_means(vae, &images, device);
        Ok(EmbeddedPool {
            dataset,
            ids,
            images,
            means,
        })
    }

    pub fn index_of(&self) -> BTreeMap<&str, usize> {
        self.ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect()
    }
}

/// One suggested frame and why.
#[derive(Debug, Clone)]
struct Pick {
    index: usize,
    /// SNN: the annotated frame whose moved point snapped here.
    from: Option<usize>,
    moved: Option<Vec<f32>>,
    loss_kpa2: Option<f64>,
    gradient_norm: Option<f64>,
}

/// What a suggestion wrote.
#[derive(Debug, Clone)]
pub struct SuggestSummary {
    pub round: usize,
    pub strategy: String,
    pub frames: Vec<String>,
    pub out: PathBuf,
}

/// Writes the next batch of `options.count` frames to `out` and records it in the project.
pub fn suggest(
    project: &mut Project,
    out: &Path,
    options: &SuggestOptions,
) -> Result<SuggestSummary, ProjectError> {
    if options.count == 0 {
        return Err(ProjectError::Invalid("--count must be at least 1".into()));
    }
    let (_vs, vae, _) = checkpoint::load_vae(&project.vae_path(), options.device, None)?;
    let pool = EmbeddedPool::load(project, &vae, options.device)?;
    let index = pool.index_of();
    let taken: HashSet<usize> = project
        .history
        .annotated()
        .into_iter()
        .chain(project.history.pending())
        .filter_map(|id| index.get(id).copied())
        .collect();
    let free = pool.ids.len() - taken.len();
    if free < options.count {
        return Err(ProjectError::Invalid(format!(
            "the pool has {free} frames neither annotated nor waiting in a batch, fewer than the {} asked for",
            options.count
        )));
    }
    let round = project.history.batches.len();
    let seed = project.file.seed.wrapping_add(round as u64);
    let annotated: Vec<usize> = project
        .history
        .annotated()
        .into_iter()
        .filter_map(|id| index.get(id).copied())
        .collect();
    let (strategy, picks) = match project.regressor_path() {
        Some(f) if !annotated.is_empty() => (
            "gradient-snn",
            gradient_snn(project, &vae, &pool, &f, &taken, options, seed)?,
        ),
        _ => match options.round_zero {
            PoolStrategy::Random => ("random", random_picks(&pool, &taken, options.count, seed)),
            PoolStrategy::CoreSet => (
                "core-set",
                core_set(&pool, &annotated, &taken, options.count, seed),
            ),
        },
    };
    let batch_id = format!("{:016x}", rand::Rng::r#gen::<u64>(&mut rand::thread_rng()));
    write_batch(project, &pool, &picks, out, &batch_id, round, strategy)?;
    let frames: Vec<String> = picks.iter().map(|p| pool.ids[p.index].clone()).collect();
    let record = BatchRecord {
        id: batch_id,
        round,
        created: now(),
        strategy: strategy.into(),
        path: std::fs::canonicalize(out).unwrap_or_else(|_| out.to_path_buf()),
        frames: frames.clone(),
        moves: picks
            .iter()
            .filter_map(|p| {
                Some(GradientMove {
                    frame: pool.ids[p.index].clone(),
                    from: pool.ids[p.from?].clone(),
                    moved: p.moved.clone()?,
                })
            })
            .collect(),
        imported: None,
    };
    if let Err(e) = project.commit(|_, history| {
        history.batches.push(record);
        Ok(())
    }) {
        let _ = std::fs::remove_dir_all(out);
        return Err(e);
    }
    Ok(SuggestSummary {
        round,
        strategy: strategy.into(),
        frames,
        out: out.to_path_buf(),
    })
}

fn random_picks(pool: &EmbeddedPool, taken: &HashSet<usize>, count: usize, seed: u64) -> Vec<Pick> {
    let mut free: Vec<usize> = (0..pool.ids.len()).filter(|i| !taken.contains(i)).collect();
    free.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    free.into_iter().take(count).map(plain).collect()
}

fn plain(index: usize) -> Pick {
    Pick {
        index,
        from: None,
        moved: None,
        loss_kpa2: None,
        gradient_norm: None,
    }
}

fn core_set(
    pool: &EmbeddedPool,
    annotated: &[usize],
    taken: &HashSet<usize>,
    count: usize,
    seed: u64,
) -> Vec<Pick> {
    let free: Vec<usize> = (0..pool.ids.len()).filter(|i| !taken.contains(i)).collect();
    let first = *free
        .choose(&mut ChaCha8Rng::seed_from_u64(seed))
        .expect("free frames were counted");
    k_centre(
        &pool.means,
        annotated,
        |i| !taken.contains(&i),
        count,
        first,
    )
    .into_iter()
    .map(plain)
    .collect()
}

/// The method's step: each annotated frame (in a seeded random order, cycling when more
/// frames are asked for than are annotated) moves by η along the gradient of F's loss
/// against its own stress map, and snaps to the nearest free pool frame.
fn gradient_snn(
    project: &Project,
    vae: &Vae,
    pool: &EmbeddedPool,
    regressor_path: &Path,
    taken: &HashSet<usize>,
    options: &SuggestOptions,
    seed: u64,
) -> Result<Vec<Pick>, ProjectError> {
    let (_vs, regressor, _) =
        checkpoint::load_regressor(regressor_path, options.device, Some(project.file.size))?;
    let dir = project
        .annotated_dir()
        .ok_or_else(|| ProjectError::Invalid("the project's annotated set is missing".into()))?;
    let annotated_set = Dataset::open(&dir, None)?;
    let members = FrameSet::load(&annotated_set, project.file.size, true)?;
    let index = pool.index_of();
    let member_ids: Vec<String> = annotated_set.frames.iter().map(|f| f.id.clone()).collect();
    let stems: BTreeMap<String, &str> = project
        .history
        .annotated()
        .into_iter()
        .map(|id| (file_stem(id), id))
        .collect();
    let pool_of_member: Vec<usize> = member_ids
        .iter()
        .map(|stem| {
            stems
                .get(stem)
                .and_then(|id| index.get(id))
                .copied()
                .ok_or_else(|| {
                    ProjectError::Invalid(format!(
                        "annotated frame {stem} is not in the pool any more; was the pool moved or changed?"
                    ))
                })
        })
        .collect::<Result<_, _>>()?;
    let all: Vec<usize> = (0..members.len()).collect();
    let latents: Vec<Vec<f32>> = pool_of_member
        .iter()
        .map(|&i| pool.means[i].clone())
        .collect();
    let gradients = {
        let targets = members.stress_batch(&all, DEFAULT_PRESSURE_KPA, options.device);
        let solid = members.solid_batch(&all, options.device);
        latent_gradients(
            vae,
            &regressor,
            &latents,
            &targets,
            Some(&solid),
            options.device,
        )
    };
    let mut order: Vec<usize> = all.clone();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut picks: Vec<Pick> = Vec::with_capacity(options.count);
    let mut chosen: HashSet<usize> = HashSet::new();
    let pressure2 = DEFAULT_PRESSURE_KPA * DEFAULT_PRESSURE_KPA;
    for k in 0..options.count {
        let member = order[k % order.len()];
        let g = &gradients[member];
        let moved = move_latent(
            &latents[member],
            &g.gradient,
            options.step,
            Normalisation::L2,
        );
        let snapped = pool
            .means
            .iter()
            .enumerate()
            .filter(|(i, _)| !taken.contains(i) && !chosen.contains(i))
            .map(|(i, e)| (i, distance(e, &moved)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
            .expect("free frames were counted");
        chosen.insert(snapped);
        picks.push(Pick {
            index: snapped,
            from: Some(pool_of_member[member]),
            moved: Some(moved),
            loss_kpa2: Some(f64::from(g.loss) * pressure2),
            gradient_norm: Some(f64::from(norm(&g.gradient))),
        });
    }
    Ok(picks)
}

const ANNOTATOR_README: &str = "# Frames to annotate

sula suggested these frames for annotation. For each image `images/<id>.png`, draw its
tissue label map and save it as `masks/<id>.png`, the same size as the image:

| tissue | grey value | or colour (RGB) |
| --- | --- | --- |
| outside the vessel (perivascular, background) | 0 | 40, 40, 46 |
| lumen | 1 | 0, 0, 0 |
| fibrous wall and fibrous plaque | 2 | 200, 120, 110 |
| lipid or necrotic core | 3 | 240, 210, 60 |
| calcium | 4 | 245, 245, 255 |

Either an 8-bit grey PNG holding the values 0–4 (it looks black in a viewer; that is
expected), or a colour PNG painted in the colours above. Instead of a PNG you may send
the MICCAI 2011 contour files `masks/lum_<id>.txt` and `masks/med_<id>.txt` (one `x, y`
vertex per line in image pixels, lumen and media-adventitia border).

Or annotate in a tool and put its export into `masks/` as a `.json` file:

- **Label Studio**: start it with the local-files document root set to this folder
  (`LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true
  LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=$PWD label-studio start`), create a project with
  the labeling config `label-studio/config.xml`, add a Local Storage with the absolute
  path of this folder's `images/` (no sync needed; images do not show without it) and
  import `label-studio/tasks.json`. Export as JSON: Label Studio's COCO export leaves
  brush strokes out.
- **CVAT, Labelbox, FiftyOne and others**: import `coco.json` (the images and the four
  categories) and export COCO instance segmentation (polygons or RLE).

Draw four kinds of region, as polygons or brush strokes: **vessel** (everything inside the
media-adventitia border, lumen included), **lipid**, **calcium** and **lumen**. They are
painted in that order, so each can be drawn whole: the vessel becomes fibrous wall, plaque
is painted over it, the lumen last.

The lumen must be closed inside the wall. Frames you cannot annotate may be left out.
Then bring the folder back with `sula import PROJECT --annotations THIS_FOLDER`; a file
with a problem is listed with the reason and nothing is imported until all are fixed.
`manifest.csv` says why each frame was chosen.
";

fn write_batch(
    project: &Project,
    pool: &EmbeddedPool,
    picks: &[Pick],
    out: &Path,
    batch_id: &str,
    round: usize,
    strategy: &str,
) -> Result<(), ProjectError> {
    let indices: Vec<usize> = picks.iter().map(|p| p.index).collect();
    // The frames as the scanner shows them (cropped, not resampled) for the annotator.
    let frames = pool.dataset.load_many(&indices, None)?;
    let projection = Projection::fit(&pool.means);
    let writer = SulaWriter::create(out)?;
    let result = (|| {
        let mut entries = Vec::with_capacity(picks.len());
        for (pick, frame) in picks.iter().zip(&frames) {
            let stem = file_stem(&pool.ids[pick.index]);
            writer.write(
                &format!("images/{stem}.png"),
                &encode_grey_png(frame.width, frame.height, &frame.image),
            )?;
            let z = &pool.means[pick.index];
            // A moved point's nearest free frame is the one it snapped to.
            let (nearest_id, nearest_distance) = match &pick.moved {
                Some(moved) => (pool.ids[pick.index].clone(), f64::from(distance(moved, z))),
                None => nearest_other(pool, pick.index),
            };
            entries.push(ManifestEntry {
                id: stem,
                origin: SampleOrigin::Real,
                pool_id: Some(pool.ids[pick.index].clone()),
                nearest_real_id: nearest_id,
                nearest_distance,
                latent: z.clone(),
                latent_original: pick.from.map(|from| pool.means[from].clone()),
                projected: projection.project(z),
                arm: None,
                repeat: None,
                round: Some(round),
                loss_kpa2: pick.loss_kpa2,
                loss_before_kpa2: None,
                loss_after_kpa2: None,
                gradient_norm: pick.gradient_norm,
                peak_stress_kpa: None,
            });
        }
        let frame_size = frames.first().map_or(0, |f| f.width);
        let pixel_mm = frames.first().map_or(pool.dataset.pixel_mm, |f| f.pixel_mm);
        let source = serde_json::json!({
            "kind": "suggestion",
            "project": project.root.display().to_string(),
            "batch_id": batch_id,
            "round": round,
            "strategy": strategy,
        });
        let manifest = ExportManifest {
            format: ExportManifest::FORMAT.to_string(),
            version: 1,
            sula_version: env!("CARGO_PKG_VERSION").to_string(),
            size: frame_size,
            pixel_mm,
            pressure_kpa: DEFAULT_PRESSURE_KPA,
            latent_dim: entries.first().map_or(0, |e| e.latent.len()),
            source: source.clone(),
            samples: entries,
        };
        writer.write(manifest::CSV_FILE, manifest.to_csv().as_bytes())?;
        writer.write(manifest::JSON_FILE, manifest.to_json().as_bytes())?;
        writer.write("README.md", ANNOTATOR_README.as_bytes())?;
        let stems: Vec<String> = picks
            .iter()
            .map(|p| file_stem(&pool.ids[p.index]))
            .collect();
        let sizes: Vec<(String, usize, usize)> = stems
            .iter()
            .zip(&frames)
            .map(|(stem, frame)| (stem.clone(), frame.width, frame.height))
            .collect();
        writer.write(
            tool_files::COCO_FILE,
            tool_files::coco(&sizes, batch_id).as_bytes(),
        )?;
        writer.create_dir("label-studio")?;
        writer.write(
            tool_files::LABEL_STUDIO_CONFIG,
            tool_files::label_studio_config().as_bytes(),
        )?;
        writer.write(
            tool_files::LABEL_STUDIO_TASKS,
            tool_files::label_studio_tasks(&stems).as_bytes(),
        )?;
        Ok::<_, ProjectError>(DatasetManifest {
            format: DatasetManifest::FORMAT.into(),
            version: 1,
            count: frames.len(),
            image_size: [frame_size, frame_size],
            pixel_mm,
            provenance: serde_json::json!({
                "source": "sula suggest",
                "sula_version": env!("CARGO_PKG_VERSION"),
                "batch": source,
            }),
            generator: None,
            stress: None,
        })
    })();
    match result {
        Ok(dataset) => {
            writer.finish(&dataset)?;
            // Created after the folder appears: an empty folder would be dropped before.
            let masks = out.join("masks");
            std::fs::create_dir_all(&masks).map_err(|e| crate::io::IoError::io(&masks, e))?;
            Ok(())
        }
        Err(e) => {
            writer.abandon();
            Err(e)
        }
    }
}

/// The pool frame nearest to frame `index` other than itself, and its distance.
fn nearest_other(pool: &EmbeddedPool, index: usize) -> (String, f64) {
    pool.means
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(i, e)| (i, distance(e, &pool.means[index])))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or((String::new(), 0.0), |(i, d)| {
            (pool.ids[i].clone(), f64::from(d))
        })
}
