//! Output moderation of a stream, inside the SSE relay: events are held
//! back while their text could still be the start of a flagged phrase (the
//! moderator's `open_suffix`), at most `stream_hold_back_chars`, and the
//! text released so far plus the held text is scanned on every event. A
//! block cuts the stream before the flagged text is sent.

use std::collections::VecDeque;
use std::sync::Arc;

use super::config::{Action, Policy};
use super::moderation::Moderator;
use super::{judge_scores, texts, Check, Scores};
use crate::error::{ApiError, SafetyError};
use crate::proxy::sse::Event;

pub struct StreamGuard {
    moderator: Arc<Moderator>,
    settings: Arc<crate::settings::Settings>,
    policy: Policy,
    /// Held events, each with how much text it gave which choice.
    held: VecDeque<(Event, Vec<(usize, usize)>)>,
    /// One per choice (`n` > 1 streams interleave several), by first sight.
    lanes: Vec<Lane>,
    max_hold: usize,
    worst: Scores,
    cut: bool,
    /// Buffers reused from event to event.
    window: String,
    norm: String,
    stops: Vec<usize>,
}

/// One choice's text: held, and the end of what was sent (for phrases
/// that span both).
#[derive(Default)]
struct Lane {
    index: u32,
    held_text: String,
    tail: String,
    /// Bytes at the end of `held_text` that must stay held.
    open: usize,
    /// The text sent so far ended inside a word: what follows continues it
    /// (a model's tokens split words: "I will k" then "1ll you"). Joined
    /// with a space, the scanner read "k 1ll" and let it through.
    mid_word: bool,
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
            lanes: Vec::new(),
            max_hold: max_hold.max(16),
            worst: Scores::default(),
            cut: false,
            window: String::new(),
            norm: String::new(),
            stops: Vec::new(),
        }
    }

    pub fn push(&mut self, events: Vec<Event>) -> Verdict {
        for ev in events {
            let mut parts: Vec<(usize, usize)> = Vec::new();
            if let Event::Json(j) = &ev {
                let lanes = &mut self.lanes;
                texts::deltas(j, |index, t| {
                    let lane = lane_of(lanes, index);
                    lanes[lane].held_text.push_str(t);
                    match parts.iter_mut().find(|(l, _)| *l == lane) {
                        Some((_, n)) => *n += t.len(),
                        None => parts.push((lane, t.len())),
                    }
                });
            }
            self.held.push_back((ev, parts));
        }
        // Each choice is scanned on its own: sent tail plus held text.
        let mut window = std::mem::take(&mut self.window);
        let mut blocked: Vec<&'static str> = Vec::new();
        for lane in &mut self.lanes {
            window.clear();
            window.push_str(&lane.tail);
            if !lane.tail.is_empty() && !lane.mid_word {
                window.push(' ');
            }
            window.push_str(&lane.held_text);
            let scores = self
                .moderator
                .scan_with(&window, &mut self.norm, &mut self.stops);
            self.worst.merge(&scores);
            for c in scores.flagged(self.policy.moderation_threshold) {
                let config = &self.settings.safety.moderation;
                if self.policy.action_for(config, c) == Action::Block
                    && !blocked.contains(&c.name())
                {
                    blocked.push(c.name());
                }
            }
            lane.open = self
                .moderator
                .open_suffix(&window)
                .min(lane.held_text.len())
                .min(self.max_hold);
        }
        self.window = window;
        if !blocked.is_empty() {
            self.cut = true;
            self.held.clear();
            self.lanes.iter_mut().for_each(|l| l.held_text.clear());
            return Verdict::Cut(
                SafetyError::ContentPolicy {
                    categories: blocked,
                    param: None,
                    output: true,
                }
                .into(),
            );
        }
        // Release in order while every choice an event adds to still keeps
        // its open suffix held; past the bound, release regardless
        // (latency and memory stay bounded).
        let mut left: Vec<usize> = self.lanes.iter().map(|l| l.held_text.len()).collect();
        let mut out = Vec::new();
        while let Some((_, parts)) = self.held.front() {
            // The bound is on all held text: one choice's open suffix must
            // not hold up the others without limit (release is in order).
            let over = left.iter().sum::<usize>() > self.max_hold;
            let free = over
                || parts
                    .iter()
                    .all(|&(lane, len)| left[lane] - len >= self.lanes[lane].open);
            if !free {
                break;
            }
            let Some((ev, parts)) = self.held.pop_front() else {
                break;
            };
            for (lane, len) in parts {
                left[lane] -= len;
            }
            out.push(ev);
        }
        for (lane, left) in self.lanes.iter_mut().zip(left) {
            let released = lane.held_text.len() - left;
            if released == 0 {
                continue;
            }
            let cut = floor_boundary(&lane.held_text, released);
            // The tail is kept normalised: padding the normaliser drops
            // (zero-width characters, runs of spaces or punctuation) takes
            // no room in it. Kept raw and cut by bytes, 100 zero-width
            // spaces pushed a phrase's first word out before its last came.
            let sent = &lane.held_text[..cut];
            super::normalize::normalize(sent, &mut self.norm);
            if !self.norm.is_empty() {
                let continues = lane.mid_word && sent.starts_with(char::is_alphanumeric);
                if !lane.tail.is_empty() && !continues {
                    lane.tail.push(' ');
                }
                lane.tail.push_str(&self.norm);
            }
            if let Some(last) = sent.chars().next_back() {
                lane.mid_word = last.is_alphanumeric();
            }
            lane.held_text.replace_range(..cut, "");
            if lane.tail.len() > self.max_hold {
                let from = floor_boundary(&lane.tail, lane.tail.len() - self.max_hold);
                lane.tail.replace_range(..from, "");
            }
        }
        Verdict::Send(out)
    }

    /// The end of the stream: whatever is held was scanned already.
    pub fn finish(&mut self) -> Vec<Event> {
        self.lanes.iter_mut().for_each(|l| l.held_text.clear());
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

/// The lane of choice `index`, opened on first sight.
fn lane_of(lanes: &mut Vec<Lane>, index: u32) -> usize {
    match lanes.iter().position(|l| l.index == index) {
        Some(i) => i,
        None => {
            lanes.push(Lane {
                index,
                ..Lane::default()
            });
            lanes.len() - 1
        }
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(index: u32, text: &str) -> Event {
        let json = serde_json::json!({"choices": [{"index": index, "delta": {"content": text}}]});
        Event::Json(bytes::Bytes::from(json.to_string()))
    }

    fn guard() -> StreamGuard {
        let settings = Arc::new(crate::settings::Settings::from_config(
            &crate::config::Config::default(),
        ));
        let policy = Policy::resolve(&settings.safety, None);
        let moderator = Moderator::new().map(Arc::new);
        StreamGuard::new(
            moderator.unwrap_or_else(|e| panic!("{e}")),
            settings,
            policy,
        )
    }

    /// The text of the events released, per choice.
    fn sent(events: &[Event]) -> Vec<(u32, String)> {
        texts::by_choice(events)
    }

    /// Pushes `(choice, text)` pieces one by one until the guard cuts:
    /// the text released per choice, and whether it cut.
    fn stream(pieces: &[(u32, &str)]) -> (Vec<(u32, String)>, bool) {
        let mut g = guard();
        let mut released = Vec::new();
        for &(i, t) in pieces {
            match g.push(vec![chunk(i, t)]) {
                Verdict::Send(evs) => released.extend(evs),
                Verdict::Cut(_) => return (sent(&released), true),
            }
        }
        (sent(&released), false)
    }

    #[test]
    fn interleaved_choices_are_moderated_each_on_its_own() {
        let (text, cut) = stream(&[
            (0, "I will"),
            (1, "Sure"),
            (0, " kill"),
            (1, " thing"),
            (0, " you"),
            (1, " ok"),
        ]);
        assert!(cut, "choice 0 says a threat");
        assert!(!text.iter().any(|(_, t)| t.contains("kill")), "{text:?}");
    }

    /// Padding the normaliser drops cannot push a phrase's start out of
    /// what the next chunk is read with.
    #[test]
    fn padding_between_words_does_not_split_a_phrase() {
        for pad in ["\u{200B}", " ", "!"] {
            let mut g = guard();
            let first = format!("I will kill{}", pad.repeat(300));
            let _ = g.push(vec![chunk(0, &first)]);
            let cut = matches!(g.push(vec![chunk(0, " you now")]), Verdict::Cut(_));
            assert!(cut, "padded with {} x {pad:?}", 300);
        }
    }

    /// A word split across chunks is read whole, leetspeak included.
    #[test]
    fn a_word_split_across_chunks_is_read_whole() {
        for pieces in [
            ["Sure. I will k", "1", "ll y", "0u tonight."],
            ["Sure. I will ki", "ll", " you", " tonight."],
        ] {
            let mut g = guard();
            let cut = pieces
                .iter()
                .any(|p| matches!(g.push(vec![chunk(0, p)]), Verdict::Cut(_)));
            assert!(cut, "{pieces:?}");
        }
    }

    /// A word that only the second reading makes a trigger of (`ki11`) is
    /// held back like any other, and never sent.
    #[test]
    fn the_second_reading_holds_back_too() {
        for pieces in [
            &[(0, "Sure. I will ki11"), (0, " you"), (0, " tonight.")][..],
            &[(0, "Sure. I will ki1"), (0, "1"), (0, " you now.")],
        ] {
            let (text, cut) = stream(pieces);
            assert!(cut, "{pieces:?}");
            assert!(!text.iter().any(|(_, t)| t.contains("ki1")), "{text:?}");
        }
    }

    #[test]
    fn one_choice_cannot_hold_up_the_others_past_the_bound() {
        let mut g = guard();
        let mut released = Vec::new();
        // Choice 1 stops on a word a longer trigger continues: held.
        if let Verdict::Send(evs) = g.push(vec![chunk(1, "then kill")]) {
            released.extend(evs);
        }
        let line = "The cat sat on the mat. ";
        for _ in 0..40 {
            if let Verdict::Send(evs) = g.push(vec![chunk(0, line)]) {
                released.extend(evs);
            }
        }
        let sent0 = sent(&released)
            .into_iter()
            .find(|(i, _)| *i == 0)
            .map_or(0, |(_, t)| t.len());
        assert!(sent0 + g.max_hold >= 40 * line.len(), "{sent0} sent");
    }

    #[test]
    fn harmless_interleaved_choices_all_go_out() {
        let mut g = guard();
        let mut released = Vec::new();
        for (i, t) in [(0, "The cat"), (1, "A dog"), (0, " sat."), (1, " ran.")] {
            if let Verdict::Send(evs) = g.push(vec![chunk(i, t)]) {
                released.extend(evs);
            }
        }
        released.extend(g.finish());
        assert_eq!(
            sent(&released),
            [(0, "The cat sat.".to_owned()), (1, "A dog ran.".to_owned())]
        );
    }
}
