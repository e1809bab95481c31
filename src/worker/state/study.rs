//! Stage 2: the study, started and stepped round by round, and its round events.

use super::*;

impl State {
    pub(super) fn start(
        &mut self,
        config: LoopConfig,
        arms: &[Arm],
        repeats: usize,
        run_dir: Option<PathBuf>,
        outbox: &Outbox,
    ) -> Result<(), String> {
        let mut comparisons: Vec<Arm> = std::iter::once(Arm::Baseline)
            .chain(arms.iter().copied())
            .filter(|&a| a != Arm::Adaptive)
            .collect();
        comparisons.sort_unstable();
        comparisons.dedup();
        let mut study = self.new_study(config, &comparisons, repeats.max(1), 0, Vec::new())?;
        if let Some(dir) = run_dir {
            match self.open_log(&dir, &study) {
                Ok(log) => {
                    outbox.send(Event::RunFolder(dir));
                    study.log = Some(log);
                }
                Err(e) => outbox.send(Event::Error(format!(
                    "cannot save the study to {} ({e}); it runs without a run folder",
                    dir.display()
                ))),
            }
        }
        self.study = Some(study);
        outbox.send(Event::Progress {
            what: "Ready: press Step or Run".to_string(),
            fraction: 0.0,
            eta_s: None,
        });
        outbox.send(Event::Idle { finished: false });
        Ok(())
    }

    /// Creates the run folder of `study`: settings, and the VAE unless it is the shipped
    /// one (a run must be exportable after the app has moved on to another VAE).
    pub(super) fn open_log(&self, dir: &Path, study: &Study) -> Result<RunLog, String> {
        let (data, (vs, vae, origin)) = match (&self.data, &self.vae) {
            (Some(d), Some(v)) => (d, v),
            _ => return Err("no data or VAE".to_string()),
        };
        let vae_ref = if origin == SHIPPED_VAE {
            VaeRef::Embedded
        } else {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            self.save_checkpoint(vs, vae, origin, &dir.join(RUN_VAE_FILE))?;
            VaeRef::File(PathBuf::from(RUN_VAE_FILE))
        };
        let settings = StudySettings {
            loop_config: study.config.clone(),
            arms: study.arms(),
            repeats: study.repeats,
            validation: 0,
            data: data.source.clone(),
            size: data.study.pool.set.size,
            vae: vae_ref,
        };
        let provenance = serde_json::json!({
            "source": "sula app",
            "sula_version": env!("CARGO_PKG_VERSION"),
            "device": format!("{:?}", self.device),
            "data": data.name,
            "vae": origin,
        });
        RunLog::create(dir, settings, provenance).map_err(|e| e.to_string())
    }

    pub(super) fn new_study(
        &self,
        config: LoopConfig,
        comparisons: &[Arm],
        repeats: usize,
        repeat: usize,
        rows: Vec<Row>,
    ) -> Result<Study, String> {
        let data = self.data()?;
        let (Some((_, vae, _)), Some(pool)) = (&self.vae, &self.pool) else {
            return Err("load or train a VAE first".to_string());
        };
        let ctx = Context {
            vae,
            pool,
            test: &data.study.test,
            device: self.device,
        };
        let adaptive =
            ArmRun::new(Arm::Adaptive, &config, repeat, &ctx).map_err(|e| e.to_string())?;
        let comparisons = comparisons
            .iter()
            .map(|&arm| ArmRun::new(arm, &config, repeat, &ctx).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Study {
            config,
            repeats,
            repeat,
            adaptive,
            comparisons,
            rows,
            steps_done: 0,
            started: Instant::now(),
            log: None,
            earlier: Vec::new(),
        })
    }

    /// One round of every arm; `Ok(false)` when the study has finished.
    pub(super) fn step(
        &mut self,
        commands: &Receiver<Command>,
        outbox: &Outbox,
    ) -> Result<bool, String> {
        let Some(mut study) = self.study.take() else {
            return Err("start a study first (Stage 2)".to_string());
        };
        if study.is_finished() && study.repeat + 1 < study.repeats {
            let steps_done = study.steps_done;
            let started = study.started;
            let log = study.log.take();
            let mut earlier = std::mem::take(&mut study.earlier);
            earlier.append(&mut study.adaptive.history);
            study = Study {
                steps_done,
                started,
                log,
                earlier,
                ..self.new_study(
                    study.config.clone(),
                    &study.arms()[1..],
                    study.repeats,
                    study.repeat + 1,
                    std::mem::take(&mut study.rows),
                )?
            };
        }
        if study.is_finished() {
            outbox.send(Event::Idle { finished: true });
            self.study = Some(study);
            return Ok(false);
        }
        let (data, (_, vae, _), pool, projection) =
            match (&self.data, &self.vae, &self.pool, &self.projection) {
                (Some(d), Some(v), Some(p), Some(q)) => (d, v, p, q),
                _ => return Err("load data and a VAE first".to_string()),
            };
        let ctx = Context {
            vae,
            pool,
            test: &data.study.test,
            device: self.device,
        };
        let arms = study.arms();
        let total = arms.len() * study.repeats * study.config.steps_per_arm();
        for (k, &arm) in arms.iter().enumerate() {
            let started = study.started;
            let mut done = study.steps_done;
            let what = format!(
                "{} · repeat {}/{}",
                arm.name(),
                study.repeat + 1,
                study.repeats
            );
            let run = if k == 0 {
                &mut study.adaptive
            } else {
                &mut study.comparisons[k - 1]
            };
            let outcome = run.step(&ctx, &mut |_: &Progress| {
                done += 1;
                let fraction = done as f64 / total.max(1) as f64;
                let eta_s = (done > 0).then(|| {
                    started.elapsed().as_secs_f64() / done as f64 * (total - done.min(total)) as f64
                });
                outbox.send(Event::Progress {
                    what: what.clone(),
                    fraction,
                    eta_s,
                });
                control(commands, outbox)
            });
            study.steps_done = done;
            let record = match outcome {
                Ok(record) => record.clone(),
                Err(SamplingError::Cancelled) => {
                    outbox.send(Event::Progress {
                        what: "Cancelled: press Start for a new run".to_string(),
                        fraction: 0.0,
                        eta_s: None,
                    });
                    outbox.send(Event::Idle { finished: false });
                    return Ok(false);
                }
                Err(e) => return Err(e.to_string()),
            };
            study.rows.push(row(&study.config, &record));
            let run = if k == 0 {
                &study.adaptive
            } else {
                &study.comparisons[k - 1]
            };
            if let Some(log) = &mut study.log
                && let Err(e) = log.record(&run.history)
            {
                outbox.send(Event::Error(format!(
                    "cannot save the round to {} ({e}); the study goes on without saving",
                    log.dir.root.display()
                )));
                study.log = None;
            }
            outbox.send(round_event(
                run,
                &record,
                &study.config,
                &ctx,
                projection,
                study.rows.last().cloned().expect("pushed"),
            ));
        }
        let more = !(study.is_finished() && study.repeat + 1 >= study.repeats);
        if more && let Some(last) = study.rows.last() {
            // The bar would otherwise keep naming the arm that trained last while the
            // worker waits for the next Step or Run.
            let round = if study.repeats > 1 {
                format!(
                    "Round {} · repeat {}/{}",
                    last.round,
                    last.repeat + 1,
                    study.repeats
                )
            } else {
                format!("Round {}", last.round)
            };
            outbox.send(Event::Progress {
                what: format!("{round} done: press Step or Run"),
                fraction: study.steps_done as f64 / total.max(1) as f64,
                eta_s: None,
            });
        }
        if !more
            && let Some(log) = study.log.take()
            && let Err(e) = log.finish()
        {
            outbox.send(Event::Error(format!(
                "cannot write the summary to {} ({e})",
                log.dir.root.display()
            )));
        }
        self.study = Some(study);
        outbox.send(Event::Idle { finished: !more });
        Ok(more)
    }
}

/// The event for a finished round: positions, arrows, a few sample pairs and a caption.
fn round_event(
    run: &ArmRun,
    record: &RoundRecord,
    config: &LoopConfig,
    ctx: &Context,
    projection: &Projection,
    row: Row,
) -> Event {
    let size = run.train.size;
    let training = run
        .members
        .iter()
        .map(|m| projection.project(&m.latent))
        .collect();
    let arrows = record
        .moved
        .iter()
        .enumerate()
        .map(|(index, m)| Arrow {
            from: projection.project(&m.z),
            to: projection.project(&m.z_moved),
            loss_before: m.loss_before,
            loss_moved: m.loss_moved,
            round: record.round,
            at: MovedRef {
                repeat: record.repeat,
                round: record.round,
                index,
            },
            joined: m.added.is_some(),
        })
        .collect();
    let new_members: Vec<usize> = (0..run.members.len())
        .filter(|&i| run.members[i].round == record.round)
        .collect();
    let joined: Vec<(usize, usize)> = record
        .moved
        .iter()
        .filter(|m| m.added.is_some())
        .map(|m| m.original)
        .zip(new_members.iter().copied())
        .take(3)
        .collect();
    let indices: Vec<usize> = joined.iter().flat_map(|&(a, b)| [a, b]).collect();
    let subset = FrameSet {
        size,
        images: indices
            .iter()
            .map(|&i| run.train.images[i].clone())
            .collect(),
        labels: indices
            .iter()
            .map(|&i| run.train.labels[i].clone())
            .collect(),
        stress: None,
    };
    let predictions = run.predict(&subset, ctx);
    let stress = run.train.stress.as_ref().expect("training stress is kept");
    let sample = |k: usize, caption: String| {
        let i = indices[k];
        view(
            caption,
            size,
            &run.train.images[i],
            &run.train.labels[i],
            Some(stress[i].clone()),
            Some(predictions[k].clone()),
        )
    };
    let samples = (0..joined.len())
        .map(|k| {
            (
                sample(2 * k, format!("original #{}", joined[k].0)),
                sample(2 * k + 1, format!("moved, now #{}", joined[k].1)),
            )
        })
        .collect();
    let m = &record.metrics;
    let caption = match (record.arm, record.round) {
        (Arm::Baseline | Arm::CoreSet | Arm::Tta, 0) => format!(
            "{} round 0: {} random real frames (shared by every arm), F trained {} epochs; test MSE {:.0} kPa².",
            crate::experiment::plot::arm_label(record.arm, config.mode),
            record.added.len(),
            config.epochs_per_round,
            m.mse
        ),
        (Arm::Baseline | Arm::CoreSet | Arm::Tta, _) => format!(
            "{} round {}: {} real frames added ({}), F trained {} epochs on {}; test MSE {:.0} kPa².",
            crate::experiment::plot::arm_label(record.arm, config.mode),
            record.round,
            record.added.len(),
            match record.arm {
                Arm::CoreSet => "each the farthest from the training set in latent space",
                Arm::Tta => "those F's prediction varies most on under rotations and mirrors",
                _ => "at random",
            },
            config.epochs_per_round,
            record.size,
            m.mse
        ),
        (Arm::Adaptive, 0) if config.variant.round_zero == crate::sampling::RoundZero::Real => {
            format!(
                "Round 0: {} random real frames (the same as the other arms'), F trained {} epochs; test MSE {:.0} kPa².",
                record.added.len(),
                config.epochs_per_round,
                m.mse
            )
        }
        (Arm::Adaptive, 0) => format!(
            "Round 0: {} points drawn from the VAE's prior, decoded and labelled{}; F trained {} epochs; test MSE {:.0} kPa².",
            record.added.len(),
            redrawn_note(record.rejected),
            config.epochs_per_round,
            m.mse
        ),
        (Arm::Adaptive, _) => {
            let n = record.moved.len().max(1) as f64;
            let before = record.moved.iter().map(|m| m.loss_before).sum::<f64>() / n;
            let after = record.moved.iter().map(|m| m.loss_moved).sum::<f64>() / n;
            format!(
                "Round {}: {} training points moved by η = {} along {} (mean loss {:.0} to {:.0} kPa²), {} new samples labelled{}; F trained on {}; test MSE {:.0} kPa².",
                record.round,
                record.moved.len(),
                config.step,
                if config.variant.random_direction {
                    "a random direction (the control)"
                } else {
                    "the gradient of the loss"
                },
                before,
                after,
                record.added.len(),
                redrawn_note(record.rejected),
                record.size,
                m.mse
            )
        }
    };
    let chosen = run
        .members
        .iter()
        .filter_map(|m| match m.origin {
            crate::sampling::Origin::Pool(index) => Some((index, m.round)),
            crate::sampling::Origin::Generated => None,
        })
        .collect();
    Event::Round {
        arm: record.arm,
        repeat: record.repeat,
        round: record.round,
        size: record.size,
        metrics: record.metrics,
        epoch_losses: record.epoch_losses.clone(),
        row,
        training,
        chosen,
        arrows,
        samples,
        caption,
    }
}
