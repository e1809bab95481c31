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
        let mut arms: Vec<Arm> = [Arm::Adaptive, Arm::Baseline]
            .into_iter()
            .chain(arms.iter().copied())
            .collect();
        arms.sort_unstable();
        arms.dedup();
        let data = self.data()?;
        let (Some((_, vae, _)), Some(pool)) = (&self.vae, &self.pool) else {
            return Err("load or train a VAE first".to_string());
        };
        let settings = StudySettings {
            loop_config: config,
            repeats: repeats.max(1),
            validation: 0,
            data: data.source.clone(),
            size: data.study.pool.set.size,
            vae: self.vae_ref(),
            arms,
        };
        let log = match run_dir {
            Some(dir) => match self.open_log(&dir, &settings) {
                Ok(log) => {
                    outbox.send(Event::RunFolder(dir));
                    Some(log)
                }
                Err(e) => {
                    outbox.send(Event::Error(format!(
                        "cannot save the study to {} ({e}); it runs without a run folder",
                        dir.display()
                    )));
                    None
                }
            },
            None => None,
        };
        let ctx = Context {
            vae,
            pool,
            test: &data.study.test,
            device: self.device,
        };
        let pending = schedule(&settings.arms, settings.repeats);
        let study =
            Study::new(settings, Vec::new(), pending, log, &ctx).map_err(|e| e.to_string())?;
        self.study = Some(study);
        outbox.send(Event::Progress {
            what: "Ready: press Step or Run".to_string(),
            fraction: 0.0,
            eta_s: None,
        });
        outbox.send(Event::Idle { finished: false });
        Ok(())
    }

    /// How a run folder names the VAE in use.
    fn vae_ref(&self) -> VaeRef {
        match &self.vae {
            Some((_, _, origin)) if origin != SHIPPED_VAE => {
                VaeRef::File(PathBuf::from(RUN_VAE_FILE))
            }
            _ => VaeRef::Embedded,
        }
    }

    /// Creates the run folder of a study: settings, and the VAE unless it is the shipped
    /// one (a run must be exportable after the app has moved on to another VAE).
    pub(super) fn open_log(&self, dir: &Path, settings: &StudySettings) -> Result<RunLog, String> {
        let (data, (vs, vae, origin)) = match (&self.data, &self.vae) {
            (Some(d), Some(v)) => (d, v),
            _ => return Err("no data or VAE".to_string()),
        };
        if let VaeRef::File(file) = &settings.vae {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            self.save_checkpoint(vs, vae, origin, &dir.join(file))?;
        }
        let provenance = serde_json::json!({
            "source": "sula app",
            "sula_version": env!("CARGO_PKG_VERSION"),
            "device": format!("{:?}", self.device),
            "data": data.name,
            "vae": origin,
        });
        RunLog::create(
            dir,
            settings.clone(),
            provenance,
            &[],
            false,
            Instant::now(),
        )
        .map_err(|e| e.to_string())
    }

    /// One round of every arm; `Ok(false)` when the study has finished.
    pub(super) fn step(
        &mut self,
        commands: &Receiver<Command>,
        outbox: &Outbox,
    ) -> Result<bool, String> {
        let (Some(data), Some((_, vae, _)), Some(pool), Some(projection), Some(study)) = (
            &self.data,
            &self.vae,
            &self.pool,
            &self.projection,
            &mut self.study,
        ) else {
            return Err("start a study first (Stage 2)".to_string());
        };
        if study.is_finished() {
            outbox.send(Event::Idle { finished: true });
            return Ok(false);
        }
        let ctx = Context {
            vae,
            pool,
            test: &data.study.test,
            device: self.device,
        };
        for _ in 0..study.settings.arms.len() {
            let mut on_progress = |p: &StudyProgress| {
                outbox.send(Event::Progress {
                    what: format!("{} · repeat {}/{}", p.arm.name(), p.repeat + 1, p.repeats),
                    fraction: p.fraction,
                    eta_s: p.eta_s,
                });
                control(commands, outbox)
            };
            let round = match study.next_round(&ctx, &mut on_progress) {
                Ok(Some(round)) => round,
                Ok(None) => break,
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
            let refused = round.saved.as_ref().err().map(ToString::to_string);
            outbox.send(round_event(
                round.run,
                round.record,
                round.config,
                &ctx,
                projection,
                round.row,
            ));
            if let Some(e) = refused
                && let Some(log) = study.stop_saving()
            {
                outbox.send(Event::Error(format!(
                    "cannot save the round to {} ({e}); the study goes on without saving",
                    log.dir.root.display()
                )));
            }
        }
        let more = !study.is_finished();
        if more && let Some(last) = study.rows().last() {
            // The bar would otherwise keep naming the arm that trained last while the
            // worker waits for the next Step or Run.
            let round = if study.settings.repeats > 1 {
                format!(
                    "Round {} · repeat {}/{}",
                    last.round,
                    last.repeat + 1,
                    study.settings.repeats
                )
            } else {
                format!("Round {}", last.round)
            };
            outbox.send(Event::Progress {
                what: format!("{round} done: press Step or Run"),
                fraction: study.fraction_done(),
                eta_s: None,
            });
        }
        if !more && let Err(e) = study.finish(data.study.test.len()) {
            outbox.send(Event::Error(format!("cannot write the summary ({e})")));
        }
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
