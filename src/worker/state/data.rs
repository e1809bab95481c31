//! Loading a dataset, embedding its pool for the latent view, and decoding a clicked
//! latent point.

use super::*;

impl State {
    pub(super) fn load(
        &mut self,
        name: String,
        source: DataSource,
        size: usize,
        outbox: &Outbox,
    ) -> Result<(), String> {
        if size < 16 || !size.is_multiple_of(8) {
            return Err(format!(
                "working resolution {size} must be at least 16 and a multiple of 8"
            ));
        }
        outbox.send(Event::Progress {
            what: format!("Loading {name}…"),
            fraction: 0.0,
            eta_s: None,
        });
        let study = source.load(size).map_err(|e| e.to_string())?.label_test();
        self.project = None;
        let (test, dropped) = (&study.test, study.dropped);
        let mut fractions = [0usize; 5];
        for labels in &study.pool.set.labels {
            for (f, c) in fractions.iter_mut().zip(labels.class_counts()) {
                *f += c;
            }
        }
        let total = fractions.iter().sum::<usize>().max(1) as f64;
        let mut summary = vec![
            format!(
                "{} pool frames, {} test frames{}",
                study.pool.ids.len(),
                test.len(),
                if dropped > 0 {
                    format!(" ({dropped} unlabellable left out)")
                } else {
                    String::new()
                }
            ),
            format!(
                "{} of {} frames annotated{}",
                study.pool.ids.len() + test.len() + dropped,
                study.pool.ids.len() + test.len() + dropped + study.unannotated,
                if study.unannotated > 0 {
                    " (frames without a label map are left out of the study)"
                } else {
                    ""
                }
            ),
            format!("{size}×{size} px at {:.3} mm/px", study.fea.pixel_mm),
            format!(
                "labels: outside {:.0} %, lumen {:.0} %, fibrous {:.0} %, lipid {:.1} %, calcium {:.1} %",
                100.0 * fractions[0] as f64 / total,
                100.0 * fractions[1] as f64 / total,
                100.0 * fractions[2] as f64 / total,
                100.0 * fractions[3] as f64 / total,
                100.0 * fractions[4] as f64 / total
            ),
        ];
        if !study.sealed.is_empty() {
            summary.push(format!(
                "{} frames with a wall thinner than a pixel sealed ({} lumen pixels)",
                study.sealed.len(),
                study.sealed.iter().map(|s| s.pixels).sum::<usize>()
            ));
        }
        outbox.send(Event::Data {
            name: name.clone(),
            summary,
            size,
            pixel_mm: study.fea.pixel_mm,
        });
        self.data = Some(Data {
            name,
            source,
            study,
        });
        self.study = None;
        self.pool = None;
        // The VAE is announced again (with reconstructions of this pool): a project shown
        // in between had replaced it in the views.
        if let Some((vs, vae, origin)) = self.vae.take_if(|(_, vae, _)| vae.config.size == size) {
            return self.set_vae(vs, vae, origin, Vec::new(), outbox);
        }
        outbox.send(Event::Idle { finished: false });
        Ok(())
    }

    /// Embeds the pool with the current VAE, labels it for the peak-stress colouring and
    /// fits the projection.
    pub(super) fn embed(&mut self, outbox: &Outbox) {
        let (Some(data), Some((_, vae, _))) = (&self.data, &self.vae) else {
            return;
        };
        outbox.send(Event::Progress {
            what: "Embedding the pool…".to_string(),
            fraction: 0.0,
            eta_s: None,
        });
        let pool = Pool::new(
            data.study.pool.ids.clone(),
            data.study.pool.set.clone(),
            data.study.fea.clone(),
            vae,
            self.device,
        );
        let peaks: Vec<Option<f32>> = (0..pool.len())
            .into_par_iter()
            .map(|i| {
                pool.stress(i)
                    .map(|s| peak_stress(s, &pool.frames.labels[i]) as f32)
            })
            .collect();
        let projection = Projection::fit(&pool.embeddings);
        let points = (0..pool.len())
            .map(|i| PoolPoint {
                id: pool.ids[i].clone(),
                xy: projection.project(&pool.embeddings[i]),
                latent: pool.embeddings[i].clone(),
                plaque: PlaqueKind::of(pool.frames.labels[i].class_counts()),
                peak_kpa: peaks[i],
                thumbnail: pool.frames.images[i].clone(),
            })
            .collect();
        outbox.send(Event::Latent {
            points,
            mean: projection.mean.clone(),
            axes: projection.axes.clone(),
        });
        self.pool = Some(pool);
        self.projection = Some(projection);
    }

    pub(super) fn decode(
        &self,
        z: Vec<f32>,
        generator: Generator,
        outbox: &Outbox,
    ) -> Result<(), String> {
        let (Some(data), Some((_, vae, _)), Some(projection), Some(pool)) =
            (&self.data, &self.vae, &self.projection, &self.pool)
        else {
            return Err("load data and a VAE first".to_string());
        };
        let decoded = pool
            .decode(vae, generator, std::slice::from_ref(&z), self.device)
            .map_err(|e| e.to_string())?
            .remove(0);
        let stress = crate::fea::stress_label(&decoded.labels, &data.study.fea);
        let adaptive = self.study.as_ref().and_then(Study::adaptive);
        let prediction = adaptive.map(|run| {
            let set = FrameSet {
                size: vae.config.size,
                images: vec![decoded.image.clone()],
                labels: vec![decoded.labels.clone()],
                stress: None,
            };
            let ctx = Context {
                vae,
                pool,
                test: &data.study.test,
                device: self.device,
            };
            run.predict(&set, &ctx).remove(0)
        });
        let caption = if stress.is_some() {
            "decoded here, FEA-labelled"
        } else {
            "decoded here: not a closed vessel, the FEA cannot label it"
        };
        outbox.send(Event::Decoded {
            at: projection.project(&z),
            sample: view(
                caption.to_string(),
                vae.config.size,
                &decoded.image,
                &decoded.labels,
                stress,
                prediction,
            ),
        });
        Ok(())
    }
}
