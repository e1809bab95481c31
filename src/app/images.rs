//! Sample pictures as egui textures: grey image, tissue label map, FEA stress and F's
//! prediction in one turbo scale with a kPa colour bar, and |error|. Textures are cached
//! by content so a frame only uploads what changed.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use egui::{Color32, ColorImage, TextureHandle, TextureOptions};

use crate::labels::Tissue;
use crate::render::colormap::ColorMap;
use crate::render::sheet::tissue_color;
use crate::worker::SampleView;

/// Textures by content hash.
#[derive(Default)]
pub struct TextureCache {
    textures: HashMap<u64, TextureHandle>,
}

impl TextureCache {
    /// The texture of `make()`'s image, keyed by `key`'s hash.
    pub fn get(
        &mut self,
        ctx: &egui::Context,
        key: impl Hash,
        make: impl FnOnce() -> ColorImage,
    ) -> TextureHandle {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        let id = hasher.finish();
        if self.textures.len() > 2000 {
            self.textures.clear();
        }
        self.textures
            .entry(id)
            .or_insert_with(|| {
                ctx.load_texture(format!("tex{id}"), make(), TextureOptions::NEAREST)
            })
            .clone()
    }
}

pub fn grey(size: usize, pixels: &[u8]) -> ColorImage {
    ColorImage::from_gray([size, size], pixels)
}

pub fn labels(size: usize, values: &[u8]) -> ColorImage {
    let rgb: Vec<u8> = values
        .iter()
        .flat_map(|&v| tissue_color(Tissue::from_value(v).unwrap_or(Tissue::Outside)))
        .collect();
    ColorImage::from_rgb([size, size], &rgb)
}

/// A scalar map in turbo over [lo, hi]; non-solid pixels are black.
pub fn scalar(
    size: usize,
    values: &[f32],
    labels: &[u8],
    lo: f64,
    hi: f64,
    map: &ColorMap,
) -> ColorImage {
    let rgb: Vec<u8> = values
        .iter()
        .zip(labels)
        .flat_map(|(&v, &l)| {
            if l >= 2 {
                map.map(f64::from(v), lo, hi)
            } else {
                [0, 0, 0]
            }
        })
        .collect();
    ColorImage::from_rgb([size, size], &rgb)
}

/// (lo, hi) of a map over solid pixels.
pub fn solid_range(values: &[f32], labels: &[u8]) -> (f64, f64) {
    let solid = values
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l >= 2)
        .map(|(v, _)| f64::from(*v));
    let (lo, hi) = solid.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (0.0, 1.0)
    }
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Draws one sample as image | label map | FEA stress | F prediction | |error|, with a
/// kPa colour bar for the stress scale. A frame not yet annotated shows F's predicted
/// tissue and stress instead; one without label maps, its image alone.
pub fn sample_row(cache: &mut TextureCache, ui: &mut egui::Ui, sample: &SampleView, side: f32) {
    let ctx = ui.ctx().clone();
    let size = sample.size;
    let turbo = ColorMap::turbo();
    let viridis = ColorMap::viridis();
    let picture = |ui: &mut egui::Ui, texture: TextureHandle, caption: &str| {
        ui.vertical(|ui| {
            ui.add(egui::Image::new(&texture).fit_to_exact_size(egui::vec2(side, side)))
                .on_hover_text(caption);
            ui.small(caption);
        });
    };
    ui.horizontal(|ui| {
        picture(
            ui,
            cache.get(&ctx, ("img", &sample.image), || grey(size, &sample.image)),
            "image",
        );
        if sample.labels.is_empty() {
            return;
        }
        let Some(stress) = &sample.stress else {
            // Not labelled by the FEA: a frame awaiting annotation, with F's guess at its
            // tissue and stress when F exists.
            let Some(prediction) = &sample.prediction else {
                picture(ui, label_texture(cache, &ctx, sample), "label map");
                ui.label("the FEA cannot label this map (not a closed vessel)");
                return;
            };
            picture(ui, label_texture(cache, &ctx, sample), "F's tissue");
            let (lo, hi) = solid_range(prediction, &sample.labels);
            picture(
                ui,
                prediction_texture(cache, &ctx, sample, prediction, (lo, hi)),
                "F prediction",
            );
            color_bar(ui, &turbo, lo, hi, side);
            return;
        };
        picture(ui, label_texture(cache, &ctx, sample), "label map");
        let (lo, hi) = solid_range(stress, &sample.labels);
        picture(
            ui,
            cache.get(&ctx, ("fea", bits(stress)), || {
                scalar(size, stress, &sample.labels, lo, hi, &turbo)
            }),
            "FEA stress",
        );
        if let Some(prediction) = &sample.prediction {
            picture(
                ui,
                prediction_texture(cache, &ctx, sample, prediction, (lo, hi)),
                "F prediction",
            );
            let error: Vec<f32> = prediction
                .iter()
                .zip(stress)
                .map(|(p, s)| (p - s).abs())
                .collect();
            let (_, error_hi) = solid_range(&error, &sample.labels);
            picture(
                ui,
                cache.get(&ctx, ("err", bits(&error)), || {
                    scalar(size, &error, &sample.labels, 0.0, error_hi, &viridis)
                }),
                &format!("|error| (0–{error_hi:.0} kPa)"),
            );
        }
        color_bar(ui, &turbo, lo, hi, side);
    });
}

/// F's prediction as a texture in turbo over `range` (the FEA's range when there is one).
fn prediction_texture(
    cache: &mut TextureCache,
    ctx: &egui::Context,
    sample: &SampleView,
    prediction: &[f32],
    (lo, hi): (f64, f64),
) -> TextureHandle {
    cache.get(
        ctx,
        ("pred", bits(prediction), lo.to_bits(), hi.to_bits()),
        || {
            scalar(
                sample.size,
                prediction,
                &sample.labels,
                lo,
                hi,
                &ColorMap::turbo(),
            )
        },
    )
}

/// The sample's label map as a texture.
fn label_texture(
    cache: &mut TextureCache,
    ctx: &egui::Context,
    sample: &SampleView,
) -> TextureHandle {
    cache.get(ctx, ("lab", &sample.labels), || {
        labels(sample.size, &sample.labels)
    })
}

/// A vertical colour bar labelled in kPa.
pub fn color_bar(ui: &mut egui::Ui, map: &ColorMap, lo: f64, hi: f64, height: f32) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(58.0, height), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    let bar = egui::Rect::from_min_size(rect.min, egui::vec2(12.0, height));
    let steps = 32;
    for i in 0..steps {
        let t0 = i as f32 / steps as f32;
        let value = hi - (hi - lo) * f64::from(t0);
        let [r, g, b] = map.map(value, lo, hi);
        let y0 = bar.top() + t0 * height;
        painter.rect_filled(
            egui::Rect::from_min_max(
                egui::pos2(bar.left(), y0),
                egui::pos2(bar.right(), y0 + height / steps as f32 + 0.5),
            ),
            0.0,
            Color32::from_rgb(r, g, b),
        );
    }
    let text = ui.visuals().text_color();
    let font = egui::FontId::proportional(10.0);
    painter.text(
        egui::pos2(bar.right() + 3.0, bar.top()),
        egui::Align2::LEFT_TOP,
        format!("{hi:.0}"),
        font.clone(),
        text,
    );
    painter.text(
        egui::pos2(bar.right() + 3.0, bar.bottom()),
        egui::Align2::LEFT_BOTTOM,
        format!("{lo:.0}"),
        font.clone(),
        text,
    );
    painter.text(
        egui::pos2(bar.right() + 3.0, bar.center().y),
        egui::Align2::LEFT_CENTER,
        "kPa",
        font,
        text,
    );
}
