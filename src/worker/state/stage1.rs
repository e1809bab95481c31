//! Stage 1: the VAE, trained, loaded or saved.

use super::*;

impl State {
    pub(super) fn set_vae(
        &mut self,
        vs: nn::VarStore,
        vae: Vae,
        origin: String,
        epoch_losses: Vec<f64>,
        outbox: &Outbox,
    ) -> Result<(), String> {
        let data = self.data()?;
        let size = data.study.pool.set.size;
        if vae.config.size != size {
            return Err(format!(
                "the VAE works at {0}×{0} but the data is at {size}×{size}; change the working resolution or train a VAE",
                vae.config.size
            ));
        }
        let count = data.study.pool.set.len().min(4);
        let indices: Vec<usize> = (0..count).collect();
        let recon = reconstruct(&vae, &data.study.pool.set, &indices, self.device)
            .map_err(|e| e.to_string())?;
        let reconstructions = indices
            .iter()
            .zip(recon)
            .map(|(&i, r)| {
                let set = &data.study.pool.set;
                (
                    view(
                        data.study.pool.ids[i].clone(),
                        size,
                        &set.images[i],
                        &set.labels[i],
                        None,
                        None,
                    ),
                    view(
                        "reconstruction".to_string(),
                        size,
                        &r.image,
                        &r.labels,
                        None,
                        None,
                    ),
                )
            })
            .collect();
        outbox.send(Event::VaeReady {
            origin: origin.clone(),
            epoch_losses,
            reconstructions,
        });
        self.vae = Some((vs, vae, origin));
        self.study = None;
        self.embed(outbox);
        outbox.send(Event::Idle { finished: false });
        Ok(())
    }

    pub(super) fn train_vae(
        &mut self,
        epochs: usize,
        latent_dim: usize,
        seed: u64,
        commands: &Receiver<Command>,
        outbox: &Outbox,
    ) -> Result<(), String> {
        let data = self.data()?;
        let set = &data.study.pool.set;
        let config = VaeConfig {
            latent_dim,
            ..VaeConfig::new(set.size)
        };
        train::seed_torch(seed);
        let vs = nn::VarStore::new(self.device);
        let mut vae = Vae::new(&vs.root(), config);
        let schedule = TrainConfig {
            epochs,
            seed,
            ..TrainConfig::default()
        };
        let report = train::train_vae(
            &mut vae,
            &vs,
            set,
            &schedule,
            &mut vae_progress(commands, outbox),
        )
        .map_err(|e| e.to_string())?;
        if report.stopped {
            outbox.send(Event::Progress {
                what: "VAE training cancelled".to_string(),
                fraction: 0.0,
                eta_s: None,
            });
            outbox.send(Event::Idle { finished: false });
            return Ok(());
        }
        self.set_vae(
            vs,
            vae,
            format!("trained here ({epochs} epochs)"),
            report.epoch_losses,
            outbox,
        )
    }

    pub(super) fn save_vae(&self, path: &Path, outbox: &Outbox) -> Result<(), String> {
        let (vs, vae, origin) = self.vae.as_ref().ok_or("there is no VAE to save")?;
        self.save_checkpoint(vs, vae, origin, path)?;
        outbox.send(Event::Saved(path.to_path_buf()));
        Ok(())
    }

    pub(super) fn save_checkpoint(
        &self,
        vs: &nn::VarStore,
        vae: &Vae,
        origin: &str,
        path: &Path,
    ) -> Result<(), String> {
        let sidecar = Sidecar {
            architecture: Architecture::Vae(vae.config),
            sula_version: env!("CARGO_PKG_VERSION").to_string(),
            data: serde_json::json!({ "root": self.data.as_ref().map(|d| d.name.clone()) }),
            training: serde_json::json!({ "origin": origin }),
        };
        checkpoint::save(vs, path, &sidecar).map_err(|e| e.to_string())
    }
}
