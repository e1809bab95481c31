//! `sula bench ui`: CPU time of whole UI frames (layout, plot and tessellation), first
//! with 10,000 synthetic latent points and arrows under a hovering pointer, then with the
//! real worker training the default study at 64² behind the UI.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::app::{DataSettings, Settings, Stage2Settings, SulaApp};
use crate::worker::{Arrow, PlaqueKind, PoolPoint};

#[derive(Debug, Args)]
pub struct UiBenchArgs {
    /// Latent points in the synthetic scene.
    #[arg(long, default_value_t = 10_000)]
    points: usize,
    /// Arrows in the synthetic scene (current round plus history).
    #[arg(long, default_value_t = 1_000)]
    arrows: usize,
    /// Frames timed in the synthetic scene.
    #[arg(long, default_value_t = 120)]
    frames: usize,
    /// Seconds of frames timed while the worker trains.
    #[arg(long, default_value_t = 30.0)]
    training_seconds: f64,
}

const SCREEN: [f32; 2] = [1600.0, 1000.0];

/// One frame: input with the pointer at `pointer`, the app's logic and drawing, and
/// tessellation of the output, timed together.
fn frame(ctx: &egui::Context, app: &mut SulaApp, pointer: egui::Pos2, time: f64) -> f64 {
    let input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, SCREEN.into())),
        time: Some(time),
        events: vec![egui::Event::PointerMoved(pointer)],
        ..Default::default()
    };
    let start = Instant::now();
    let output = ctx.run_ui(input, |ui| {
        app.logic_step(ui.ctx());
        app.draw(ui);
    });
    let _ = ctx.tessellate(output.shapes, output.pixels_per_point);
    start.elapsed().as_secs_f64() * 1e3
}

fn stats(mut ms: Vec<f64>) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95), ms[ms.len() - 1])
}

fn pump_until(
    ctx: &egui::Context,
    app: &mut SulaApp,
    what: &str,
    done: impl Fn(&SulaApp) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let start = Instant::now();
    while !done(app) {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        if let Some(error) = app.shared.errors.first() {
            bail!("{error}");
        }
        frame(
            ctx,
            app,
            egui::pos2(800.0, 500.0),
            start.elapsed().as_secs_f64(),
        );
        std::thread::sleep(Duration::from_millis(15));
    }
    Ok(())
}

pub fn run(args: &UiBenchArgs) -> Result<()> {
    println!("UI frame CPU time (layout + plot + tessellation), 1600×1000 logical px");
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>7}",
        "scene", "median", "p95", "max", "frames"
    );

    // Synthetic scene: no data is loaded, so the worker stays idle.
    let ctx = egui::Context::default();
    let settings = Settings {
        data: DataSettings {
            phantom_pool: 10,
            phantom_test: 2,
            size: 32,
            ..DataSettings::default()
        },
        ..Settings::default()
    };
    let mut app = SulaApp::with_settings(&ctx, settings);
    pump_until(&ctx, &mut app, "the tiny phantom", |a| {
        a.data.name.is_some() && !a.shared.busy
    })?;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut xy = || [rng.gen_range(-4.0..4.0f32), rng.gen_range(-4.0..4.0f32)];
    app.shared.points = (0..args.points)
        .map(|i| PoolPoint {
            id: format!("frame_{i:05}"),
            xy: xy(),
            latent: vec![0.0; 16],
            plaque: PlaqueKind::Lipid,
            peak_kpa: Some((i % 300) as f32),
            thumbnail: vec![128; 32 * 32],
        })
        .collect();
    app.latent.data_size = 32;
    app.stage1.origin = Some("synthetic".to_string());
    app.latent.training = (0..320).map(|_| xy()).collect();
    let arrows: Vec<Arrow> = (0..args.arrows)
        .map(|i| Arrow {
            from: xy(),
            to: xy(),
            loss_before: 1.0,
            loss_moved: 2.0,
            round: i / 40,
            at: crate::export::collect::MovedRef {
                repeat: 0,
                round: i / 40,
                index: i % 40,
            },
            joined: true,
        })
        .collect();
    app.latent.arrows = arrows[..40.min(arrows.len())].to_vec();
    app.latent.history = arrows[40.min(arrows.len())..].to_vec();
    app.latent.settings.show_history = true;
    let mut times = Vec::with_capacity(args.frames);
    for i in 0..args.frames + 5 {
        // The pointer sweeps the latent view so hover picking and tooltips run.
        let pointer = egui::pos2(520.0 + (i % 60) as f32 * 5.0, 300.0 + (i % 40) as f32 * 8.0);
        let ms = frame(&ctx, &mut app, pointer, i as f64 / 60.0);
        if i >= 5 {
            times.push(ms);
        }
    }
    let (median, p95, max) = stats(times);
    println!(
        "{:<44} {median:>6.2}ms {p95:>6.2}ms {max:>6.2}ms {:>7}",
        format!("{} points, {} arrows, hovering", args.points, args.arrows),
        args.frames
    );
    drop(app);

    // Real worker: the default phantom and shipped VAE, training the default study.
    let ctx = egui::Context::default();
    // A benchmark study is not worth keeping: no run folder.
    let settings = Settings {
        stage2: Stage2Settings {
            save_runs: false,
            ..Stage2Settings::default()
        },
        ..Settings::default()
    };
    let mut app = SulaApp::with_settings(&ctx, settings);
    pump_until(&ctx, &mut app, "the phantom and the VAE", |a| {
        !a.shared.points.is_empty() && !a.shared.busy
    })?;
    app.start_study();
    app.send(crate::worker::Command::Run);
    pump_until(&ctx, &mut app, "training to start", |a| {
        a.shared.progress.as_ref().is_some_and(|(_, f, _)| *f > 0.0)
    })?;
    let start = Instant::now();
    let mut times = Vec::new();
    while start.elapsed().as_secs_f64() < args.training_seconds {
        let i = times.len();
        let pointer = egui::pos2(520.0 + (i % 60) as f32 * 5.0, 300.0 + (i % 40) as f32 * 8.0);
        times.push(frame(
            &ctx,
            &mut app,
            pointer,
            start.elapsed().as_secs_f64(),
        ));
        std::thread::sleep(Duration::from_millis(16));
    }
    let rounds = app.curves.rows.len();
    app.send(crate::worker::Command::Cancel);
    let count = times.len();
    let (median, p95, max) = stats(times);
    println!(
        "{:<44} {median:>6.2}ms {p95:>6.2}ms {max:>6.2}ms {count:>7}",
        format!("worker training ({rounds} rounds finished)")
    );
    Ok(())
}
