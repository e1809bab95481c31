//! How a long job in the worker (training, a study round, an export) obeys the app while
//! it runs: Pause, Resume and Cancel arrive on the command channel between batches.

use crossbeam_channel::Receiver;

use super::Outbox;
use super::messages::{Command, Event};
use crate::model::train::{Control, Progress};

/// How the training callback should react to commands that arrive mid-batch.
pub(super) fn control(commands: &Receiver<Command>, outbox: &Outbox) -> Control {
    while let Ok(command) = commands.try_recv() {
        match command {
            Command::Cancel => return Control::Stop,
            Command::Pause => {
                outbox.send(Event::Paused);
                loop {
                    match commands.recv() {
                        Ok(Command::Resume) => break,
                        Ok(Command::Cancel) | Err(_) => return Control::Stop,
                        Ok(_) => {}
                    }
                }
                outbox.send(Event::Progress {
                    what: "Resumed".to_string(),
                    fraction: 0.0,
                    eta_s: None,
                });
            }
            _ => {}
        }
    }
    Control::Continue
}

/// The training callback of a VAE: reports each batch to the UI, obeys Pause and Cancel.
pub(super) fn vae_progress<'a>(
    commands: &'a Receiver<Command>,
    outbox: &'a Outbox,
) -> impl FnMut(&Progress) -> Control + 'a {
    move |p: &Progress| {
        outbox.send(Event::VaeProgress {
            epoch: p.epoch,
            epochs: p.epochs,
            loss: p.loss,
            fraction: p.fraction(),
        });
        control(commands, outbox)
    }
}
