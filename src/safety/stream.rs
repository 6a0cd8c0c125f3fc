//! Output moderation of a stream, inside the SSE relay: events are held
//! back while their text could still be the start of a flagged phrase (the
//! moderator's `open_suffix`), at most `stream_hold_back_chars`, and the
//! text released so far plus the held text is scanned on every event. A
//! block cuts the stream before the flagged text is sent.

use std::collections::VecDeque;
use std::sync::Arc;

use super::config::{Action, ModerationConfig, Policy};
use super::moderation::Moderator;
use super::{judge_scores, texts, Check, Scores};
use crate::error::{ApiError, SafetyError};
use crate::proxy::sse::Event;

pub struct StreamGuard {
    moderator: Arc<Moderator>,
    settings: Arc<crate::settings::Settings>,
    policy: Policy,
    held: VecDeque<(Event, usize)>,
    /// Text of the held events, in order.
    held_text: String,
    /// The end of the text already sent, for phrases that span both.
    tail: String,
    max_hold: usize,
    worst: Scores,
    cut: bool,
    /// Buffers reused from event to event.
    window: String,
    norm: String,
}

/// What the relay does with the events it just parsed.
pub enum Verdict {
    Send(Vec<Event>),
    Cut(ApiError),
}

impl StreamGuard {
    pub fn new(
        moderator: Arc<Moderator>,
        settings: Arc<crate::settings::Settings>,
        policy: Policy,
    ) -> StreamGuard {
        let max_hold = settings.safety.moderation.stream_hold_back_chars as usize;
        StreamGuard {
            moderator,
            settings,
            policy,
            held: VecDeque::new(),
            held_text: String::new(),
            tail: String::new(),
            max_hold: max_hold.max(16),
            worst: Scores::default(),
            cut: false,
            window: String::new(),
            norm: String::new(),
        }
    }

    fn config(&self) -> &ModerationConfig {
        &self.settings.safety.moderation
    }

    pub fn push(&mut self, events: Vec<Event>) -> Verdict {
        let mut piece = String::new();
        for ev in events {
            piece.clear();
            if let Event::Json(j) = &ev {
                texts::delta(j, &mut piece);
            }
            self.held_text.push_str(&piece);
            self.held.push_back((ev, piece.len()));
        }
        let mut window = std::mem::take(&mut self.window);
        window.clear();
        window.push_str(&self.tail);
        window.push_str(&self.held_text);
        let scores = self.moderator.scan_with(&window, &mut self.norm);
        self.worst.merge(&scores);
        let blocked: Vec<&'static str> = scores
            .flagged(self.policy.moderation_threshold)
            .filter(|c| self.policy.action_for(self.config(), *c) == Action::Block)
            .map(|c| c.name())
            .collect();
        if !blocked.is_empty() {
            self.window = window;
            self.cut = true;
            self.held.clear();
            self.held_text.clear();
            return Verdict::Cut(
                SafetyError::ContentPolicy {
                    categories: blocked,
                    param: None,
                    output: true,
                }
                .into(),
            );
        }
        let open = self
            .moderator
            .open_suffix(&window)
            .min(self.held_text.len())
            .min(self.max_hold);
        self.window = window;
        let mut out = Vec::new();
        let mut left = self.held_text.len();
        while let Some((_, len)) = self.held.front() {
            // Release while what stays held still covers the open suffix;
            // past the bound, release regardless (latency stays bounded).
            if left - len >= open || left > self.max_hold {
                let Some((ev, len)) = self.held.pop_front() else {
                    break;
                };
                left -= len;
                out.push(ev);
            } else {
                break;
            }
        }
        let released = self.held_text.len() - left;
        if released > 0 {
            let cut = floor_boundary(&self.held_text, released);
            self.tail.push_str(&self.held_text[..cut]);
            self.held_text.replace_range(..cut, "");
            if self.tail.len() > self.max_hold {
                let from = floor_boundary(&self.tail, self.tail.len() - self.max_hold);
                self.tail.replace_range(..from, "");
            }
        }
        Verdict::Send(out)
    }

    /// The end of the stream: whatever is held was scanned already.
    pub fn finish(&mut self) -> Vec<Event> {
        self.held_text.clear();
        self.held.drain(..).map(|(e, _)| e).collect()
    }

    /// Whether the stream was cut.
    pub fn is_cut(&self) -> bool {
        self.cut
    }

    /// The check as recorded.
    pub fn check(&self) -> Check {
        let cut = self.cut;
        let (mut check, verdict) = judge_scores(
            Check::ran("moderation", "output", "builtin"),
            &self.worst,
            &[],
            &self.settings,
            &self.policy,
        );
        if cut {
            check.action = "block".into();
        } else if let Some((a, _)) = verdict {
            check.action = match a {
                Action::Block | Action::Flag => "flag",
                Action::Log => "log",
            }
            .into();
        }
        check
    }

    /// External moderators are not asked per chunk; the record says so.
    pub fn external_skips(&self) -> Vec<Check> {
        self.settings
            .safety
            .external
            .iter()
            .map(|e| {
                Check::skipped(
                    "moderation",
                    "output",
                    format!("external:{}", e.name),
                    "streamed output is moderated by the built-in engine only",
                )
            })
            .collect()
    }

    pub fn note_into(&self, safety: &mut super::SafetyLog) {
        super::note(safety, self.check());
        for c in self.external_skips() {
            super::note(safety, c);
        }
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
