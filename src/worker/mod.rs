//! The worker thread: the only place the app touches tch. It owns the data, the VAE, the
//! projection and both arms of the study; the UI sends [`Command`]s and receives
//! [`Event`]s over crossbeam channels, and every event wakes the UI with a repaint. A
//! panic while handling a command is caught, reported as an error, and the worker goes
//! on with fresh state.

mod control;
pub mod messages;
mod project;
mod project_view;
mod state;

use std::panic::AssertUnwindSafe;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, unbounded};

pub use messages::{
    Arrow, Command, Event, ExportSelection, FrameState, PlaqueKind, PoolPoint, ProjectArrow,
    ProjectRound, ProjectView, SampleView,
};

/// Wakes the UI after an event; egui's `Context::request_repaint` in the app.
pub type Waker = Box<dyn Fn() + Send>;

/// The UI's end of the worker.
pub struct WorkerHandle {
    pub commands: Sender<Command>,
    pub events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Starts the worker thread.
    pub fn spawn(waker: Waker) -> WorkerHandle {
        let (commands, command_rx) = unbounded();
        let (event_tx, events) = unbounded();
        let thread = std::thread::Builder::new()
            .name("sula-worker".to_string())
            .spawn(move || {
                run(
                    &command_rx,
                    &Outbox {
                        events: event_tx,
                        waker,
                    },
                )
            })
            .expect("the worker thread starts");
        WorkerHandle {
            commands,
            events,
            thread: Some(thread),
        }
    }

    /// Sends a command; a worker that has gone away is reported by the next drain.
    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Cancel);
        let (closed, _) = unbounded();
        // Dropping our sender ends the worker's receive loop.
        self.commands = closed;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The worker's outgoing side: events plus a UI wake-up.
pub(crate) struct Outbox {
    events: Sender<Event>,
    waker: Waker,
}

impl Outbox {
    pub(crate) fn send(&self, event: Event) {
        let _ = self.events.send(event);
        (self.waker)();
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".to_string())
}

fn run(commands: &Receiver<Command>, outbox: &Outbox) {
    let mut state = state::State::new();
    while let Ok(command) = commands.recv() {
        let outcome =
            std::panic::catch_unwind(AssertUnwindSafe(|| state.handle(command, commands, outbox)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                outbox.send(Event::Error(message));
                outbox.send(Event::Idle { finished: false });
            }
            Err(payload) => {
                outbox.send(Event::Error(format!(
                    "the worker crashed ({}); its state was reset, load data to start again",
                    panic_message(payload.as_ref())
                )));
                state = state::State::new();
                outbox.send(Event::Idle { finished: false });
            }
        }
    }
}
