//! Export of selected samples from the app (docs/DESIGN.md §Export).

use super::*;

impl State {
    /// Writes the selected samples to the new folder `out` (docs/DESIGN.md §Export) with progress; Cancel
    /// stops it and leaves nothing behind.
    pub(super) fn export(
        &self,
        selection: ExportSelection,
        out: &Path,
        commands: &Receiver<Command>,
        outbox: &Outbox,
    ) -> Result<(), String> {
        let (Some(data), Some((_, vae, _)), Some(pool), Some(projection)) =
            (&self.data, &self.vae, &self.pool, &self.projection)
        else {
            return Err("load data and a VAE first".to_string());
        };
        let ctx = Context {
            vae,
            pool,
            test: &data.study.test,
            device: self.device,
        };
        let study = self.study.as_ref();
        let (collected, described) = match selection {
            ExportSelection::LastRounds(n) => {
                let adaptive = study
                    .and_then(Study::adaptive)
                    .ok_or("run some rounds first (Stage 2)")?;
                let records = &adaptive.history;
                let ran: Vec<usize> = records
                    .iter()
                    .filter(|r| !r.moved.is_empty())
                    .map(|r| r.round)
                    .collect();
                let kept = ran[ran.len().saturating_sub(n)..].to_vec();
                if kept.is_empty() {
                    return Err("no round has moved samples yet: export after round 1".to_string());
                }
                let repeat = adaptive.repeat;
                let wanted = |at: MovedRef| at.repeat == repeat && kept.contains(&at.round);
                let collected = moved_samples(records, &wanted, &adaptive.config, &ctx, projection)
                    .map_err(|e| e.to_string())?;
                let described = serde_json::json!({ "last_rounds": kept, "repeat": repeat });
                (collected, described)
            }
            ExportSelection::Picked {
                pool: picked,
                moved,
            } => {
                if let Some(&i) = picked.iter().find(|&&i| i >= pool.len()) {
                    return Err(format!(
                        "selected point {i} is not in the pool of {} frames",
                        pool.len()
                    ));
                }
                let mut collected = match study {
                    Some(study) if !moved.is_empty() => {
                        let records = study.adaptive_history();
                        let wanted = |at: MovedRef| moved.contains(&at);
                        let config = &study.settings.loop_config;
                        moved_samples(&records, &wanted, config, &ctx, projection)
                            .map_err(|e| e.to_string())?
                    }
                    None if !moved.is_empty() => {
                        return Err("the selected moved samples belong to a study that is gone; select again".to_string());
                    }
                    _ => crate::export::collect::Collected {
                        samples: Vec::new(),
                        skipped: 0,
                    },
                };
                let scores = study
                    .map(|s| pool_scores(s, &picked, &ctx))
                    .unwrap_or_default();
                let real = pool_samples(&picked, &ctx, projection, &|i| scores.get(&i).copied());
                collected.samples.extend(real.samples);
                collected.skipped += real.skipped;
                let described = serde_json::json!({
                    "pool_frames": picked.len(),
                    "moved_samples": moved.len(),
                });
                (collected, described)
            }
        };
        let info = ExportInfo {
            pixel_mm: data.study.fea.pixel_mm,
            pressure_kpa: data.study.fea.pressure_kpa,
            source: serde_json::json!({
                "app": data.name,
                "data": data.source,
                "mode": study.map(|s| s.settings.loop_config.mode),
                "run": study.and_then(Study::log).map(|l| l.dir.root.clone()),
                "selection": described,
            }),
        };
        let total = collected.samples.len();
        let path = write_export(out, &collected.samples, &info, &mut |k| {
            outbox.send(Event::Progress {
                what: format!("Exporting {k}/{total}"),
                fraction: k as f64 / total.max(1) as f64,
                eta_s: None,
            });
            match control(commands, outbox) {
                Control::Stop => Err(ExportError::Cancelled),
                Control::Continue => Ok(()),
            }
        })
        .map_err(|e| e.to_string())?;
        outbox.send(Event::Exported {
            path,
            count: total,
            skipped: collected.skipped,
        });
        outbox.send(Event::Idle { finished: false });
        Ok(())
    }
}

/// F's loss and latent gradient norm on each labellable picked pool frame, and the round
/// it joined the adaptive training set.
fn pool_scores(
    study: &Study,
    picked: &[usize],
    ctx: &Context,
) -> std::collections::HashMap<usize, PoolScore> {
    let labelled: Vec<(usize, &[f32])> = picked
        .iter()
        .filter_map(|&i| ctx.pool.stress(i).map(|s| (i, s)))
        .collect();
    let set = FrameSet {
        size: ctx.pool.frames.size,
        images: labelled
            .iter()
            .map(|&(i, _)| ctx.pool.frames.images[i].clone())
            .collect(),
        labels: labelled
            .iter()
            .map(|&(i, _)| ctx.pool.frames.labels[i].clone())
            .collect(),
        stress: Some(labelled.iter().map(|(_, s)| s.to_vec()).collect()),
    };
    let latents: Vec<Vec<f32>> = labelled
        .iter()
        .map(|&(i, _)| ctx.pool.embeddings[i].clone())
        .collect();
    let Some(run) = study.adaptive() else {
        return std::collections::HashMap::new();
    };
    labelled
        .iter()
        .zip(run.loss_and_gradient(ctx, &set, &latents))
        .map(|(&(i, _), (loss_kpa2, gradient_norm))| {
            let round = run
                .members
                .iter()
                .find(|m| m.origin == crate::sampling::Origin::Pool(i))
                .map(|m| m.round);
            let score = PoolScore {
                repeat: run.repeat,
                loss_kpa2,
                gradient_norm,
                round,
            };
            (i, score)
        })
        .collect()
}
