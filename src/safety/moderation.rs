//! The built-in moderation engine: lexicons per category (the data file
//! `rules/moderation.toml`), normalised and compiled into one Aho-Corasick
//! automaton, matched on word boundaries. Benign phrases of the same file
//! ("kill a process", "the bomb scene") cancel the matches they overlap.
//! A category's score is `1 - Π(1 - weight)` over its distinct matches.
//! A text with `1`, `|` or `I` in a word is read twice: as normalised, then
//! with those read as `l` (`normalize::alternate_letters`: `ki11`), which
//! adds only the terms the first reading did not match at all (a term a
//! harmless phrase cancelled there stays cancelled).

use aho_corasick::{AhoCorasick, MatchKind};
use serde::{Deserialize, Serialize};

use super::normalize::{alternate_letters, normalize, normalize_with_stops};

/// OpenAI's moderation categories, in OpenAI's order and spelling.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Category {
    #[serde(rename = "harassment")]
    Harassment,
    #[serde(rename = "harassment/threatening")]
    HarassmentThreatening,
    #[serde(rename = "hate")]
    Hate,
    #[serde(rename = "hate/threatening")]
    HateThreatening,
    #[serde(rename = "illicit")]
    Illicit,
    #[serde(rename = "illicit/violent")]
    IllicitViolent,
    #[serde(rename = "self-harm")]
    SelfHarm,
    #[serde(rename = "self-harm/intent")]
    SelfHarmIntent,
    #[serde(rename = "self-harm/instructions")]
    SelfHarmInstructions,
    #[serde(rename = "sexual")]
    Sexual,
    #[serde(rename = "sexual/minors")]
    SexualMinors,
    #[serde(rename = "violence")]
    Violence,
    #[serde(rename = "violence/graphic")]
    ViolenceGraphic,
}

impl Category {
    pub const ALL: [Category; 13] = [
        Category::Harassment,
        Category::HarassmentThreatening,
        Category::Hate,
        Category::HateThreatening,
        Category::Illicit,
        Category::IllicitViolent,
        Category::SelfHarm,
        Category::SelfHarmIntent,
        Category::SelfHarmInstructions,
        Category::Sexual,
        Category::SexualMinors,
        Category::Violence,
        Category::ViolenceGraphic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Category::Harassment => "harassment",
            Category::HarassmentThreatening => "harassment/threatening",
            Category::Hate => "hate",
            Category::HateThreatening => "hate/threatening",
            Category::Illicit => "illicit",
            Category::IllicitViolent => "illicit/violent",
            Category::SelfHarm => "self-harm",
            Category::SelfHarmIntent => "self-harm/intent",
            Category::SelfHarmInstructions => "self-harm/instructions",
            Category::Sexual => "sexual",
            Category::SexualMinors => "sexual/minors",
            Category::Violence => "violence",
            Category::ViolenceGraphic => "violence/graphic",
        }
    }

    pub fn from_name(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name() == s)
    }

    fn index(self) -> usize {
        self as usize
    }

    /// A sub-category's score also counts for its parent.
    fn parent(self) -> Option<Category> {
        Some(match self {
            Category::HarassmentThreatening => Category::Harassment,
            Category::HateThreatening => Category::Hate,
            Category::IllicitViolent => Category::Illicit,
            Category::SelfHarmIntent | Category::SelfHarmInstructions => Category::SelfHarm,
            Category::SexualMinors => Category::Sexual,
            Category::ViolenceGraphic => Category::Violence,
            _ => return None,
        })
    }
}

/// Scores of one text, by category.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scores(pub [f32; 13]);

impl Scores {
    pub fn get(&self, c: Category) -> f32 {
        self.0[c.index()]
    }

    /// Keeps the higher score per category.
    pub fn merge(&mut self, other: &Scores) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.max(b);
        }
    }

    pub fn flagged(&self, threshold: f32) -> impl Iterator<Item = Category> + '_ {
        Category::ALL
            .into_iter()
            .filter(move |c| self.get(*c) >= threshold)
    }

    pub fn max(&self) -> f32 {
        self.0.iter().copied().fold(0.0, f32::max)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rule: Vec<RuleDef>,
    benign: Vec<BenignDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    category: Category,
    weight: f32,
    terms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BenignDef {
    terms: Vec<String>,
}

#[derive(Clone, Copy)]
enum Meaning {
    Term {
        category: Category,
        weight: f32,
        /// `word*`: the last word may go on (`kill*` matches `killing`).
        prefix: bool,
    },
    Benign,
}

pub struct Moderator {
    automaton: AhoCorasick,
    meanings: Vec<Meaning>,
    /// Every normalised trigger, for the stream's "could this still
    /// become a match" question.
    triggers: Sorted,
    max_words: usize,
}

const RULES: &str = include_str!("rules/moderation.toml");

impl Moderator {
    pub fn new() -> Result<Moderator, String> {
        let file: RuleFile =
            toml::from_str(RULES).map_err(|e| format!("rules/moderation.toml: {e}"))?;
        let mut patterns = Vec::new();
        let mut meanings = Vec::new();
        let mut triggers = Vec::new();
        let mut max_words = 1;
        let mut norm = String::new();
        let mut add = |raw: &str, meaning: Meaning, trig: bool| {
            let (body, prefix) = match raw.strip_suffix('*') {
                Some(b) => (b, true),
                None => (raw, false),
            };
            normalize(body, &mut norm);
            if norm.is_empty() {
                return;
            }
            let mut variants = vec![norm.clone()];
            // Spaced-out letters are joined by the normaliser, so a
            // multi-word phrase must also match written as one word.
            let compact: String = norm.split(' ').collect();
            if norm.contains(' ') && compact.len() >= 6 {
                variants.push(compact);
            }
            for v in variants {
                max_words = max_words.max(v.split(' ').count());
                if trig {
                    triggers.push(v.clone());
                }
                patterns.push(v);
                meanings.push(match meaning {
                    Meaning::Term {
                        category, weight, ..
                    } => Meaning::Term {
                        category,
                        weight,
                        prefix,
                    },
                    Meaning::Benign => Meaning::Benign,
                });
            }
        };
        for r in &file.rule {
            if !(0.0..=1.0).contains(&r.weight) {
                return Err(format!(
                    "rules/moderation.toml: weight {} out of 0..1",
                    r.weight
                ));
            }
            for t in r.terms.iter().flat_map(|t| expand(t)) {
                let m = Meaning::Term {
                    category: r.category,
                    weight: r.weight,
                    prefix: false,
                };
                add(&t, m, true);
            }
        }
        for b in &file.benign {
            for t in b.terms.iter().flat_map(|t| expand(t)) {
                add(&t, Meaning::Benign, false);
            }
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .map_err(|e| format!("rules/moderation.toml: {e}"))?;
        Ok(Moderator {
            automaton,
            meanings,
            triggers: Sorted::new(triggers),
            max_words,
        })
    }

    /// Scores `text`, whose first reading is `norm` with sentences ending at
    /// `stops` (`normalize_with_stops`), plus what its second reading
    /// (`alternate_letters`) adds.
    pub fn scan_readings(&self, text: &str, norm: &str, stops: &[usize]) -> Scores {
        // Most texts have no second reading: nothing to remember for it.
        let Some(alt) = alternate_letters(text) else {
            return self.score(norm, stops, &[], None);
        };
        let mut seen = Vec::new();
        let mut scores = self.score(norm, stops, &[], Some(&mut seen));
        let (mut alt_norm, mut alt_stops) = (String::with_capacity(alt.len()), Vec::new());
        normalize_with_stops(&alt, &mut alt_norm, &mut alt_stops);
        seen.sort_unstable();
        scores.merge(&self.score(&alt_norm, &alt_stops, &seen, None));
        scores
    }

    /// Scores one reading, whose sentences end at `stops`: a harmless
    /// phrase cancels only within one. Terms in `skip` (sorted) are not
    /// counted; every term matched, counted or cancelled, goes to `seen`.
    fn score(
        &self,
        text: &str,
        stops: &[usize],
        skip: &[u32],
        mut seen: Option<&mut Vec<u32>>,
    ) -> Scores {
        let bytes = text.as_bytes();
        let at_edge = |i: usize| i == 0 || i >= bytes.len() || bytes[i] == b' ';
        let mut hits: Vec<(usize, usize, Category, f32, u32)> = Vec::new();
        let mut benign: Vec<(usize, usize)> = Vec::new();
        for m in self.automaton.find_overlapping_iter(text) {
            let (s, e) = (m.start(), m.end());
            let Some(meaning) = self.meanings.get(m.pattern().as_usize()) else {
                continue;
            };
            let start_ok = s == 0 || bytes[s - 1] == b' ';
            match *meaning {
                Meaning::Benign if start_ok && at_edge(e) && !crosses(stops, s, e) => {
                    benign.push((s, e))
                }
                Meaning::Term {
                    category,
                    weight,
                    prefix,
                } if start_ok && (prefix || at_edge(e)) => {
                    let id = m.pattern().as_u32();
                    if let Some(seen) = seen.as_deref_mut() {
                        seen.push(id);
                    }
                    if skip.binary_search(&id).is_err() {
                        hits.push((s, e, category, weight, id))
                    }
                }
                _ => {}
            }
        }
        // A hit inside a benign phrase does not count, and each pattern
        // counts once. Checked hit by hit against every benign match and
        // every pattern counted so far, a text of repeated hits cost
        // quadratic time: 19 s for 900 KB, on the request's thread.
        let covered = covered_bytes(bytes.len(), &benign);
        let mut counted: Vec<(u32, Category, f32)> = hits
            .into_iter()
            .filter(|&(s, e, ..)| {
                covered
                    .get(e)
                    .zip(covered.get(s))
                    .is_none_or(|(b, a)| b == a)
            })
            .map(|(_, _, c, w, pid)| (pid, c, w))
            .collect();
        counted.sort_unstable_by_key(|h| h.0);
        counted.dedup_by_key(|h| h.0);
        let mut scores = Scores::default();
        for (_, c, w) in counted {
            for cat in std::iter::once(c).chain(c.parent()) {
                let slot = &mut scores.0[cat.index()];
                *slot = 1.0 - (1.0 - *slot) * (1.0 - w);
            }
        }
        scores
    }

    pub fn scan(&self, text: &str) -> Scores {
        let mut norm = String::with_capacity(text.len());
        self.scan_with(text, &mut norm, &mut Vec::new())
    }

    /// `scan` with the caller's buffers for the normalised text and its stops.
    pub fn scan_with(&self, text: &str, norm: &mut String, stops: &mut Vec<usize>) -> Scores {
        normalize_with_stops(text, norm, stops);
        self.scan_readings(text, norm, stops)
    }

    /// Bytes at the end of `raw` that could still become part of a
    /// trigger once more text arrives: the longest run of trailing words
    /// whose normalised form, in either reading, begins some trigger.
    pub fn open_suffix(&self, raw: &str) -> usize {
        let trailing_space = raw.ends_with(|c: char| c.is_whitespace());
        // Start offsets of the last `max_words` words.
        let mut starts = Vec::with_capacity(self.max_words);
        let mut in_word = false;
        for (i, c) in raw.char_indices().rev() {
            if c.is_whitespace() {
                if in_word {
                    starts.push(i + c.len_utf8());
                    if starts.len() == self.max_words {
                        break;
                    }
                }
                in_word = false;
            } else {
                in_word = true;
            }
        }
        if in_word && starts.len() < self.max_words {
            starts.push(0);
        }
        let mut norm = String::new();
        // Does this reading of the trailing words begin some trigger?
        let begins = |reading: &str, norm: &mut String| {
            normalize(reading, norm);
            if trailing_space && !norm.is_empty() {
                norm.push(' ');
            }
            self.continues(norm)
        };
        for &start in starts.iter().rev() {
            let tail = &raw[start..];
            // The second reading (`ki11`) may begin one the first does not;
            // it keeps the words where they are, so `start` holds for both.
            if begins(tail, &mut norm)
                || alternate_letters(tail).is_some_and(|alt| begins(&alt, &mut norm))
            {
                return raw.len() - start;
            }
            // Spaced-out letters ("k i") join up only once the run is long
            // enough; as a run in the making they are a word's start.
            let letters = tail.split_whitespace();
            if letters.clone().all(|w| w.chars().nth(1).is_none()) {
                normalize(&letters.collect::<String>(), &mut norm);
                if self.continues(&norm) {
                    return raw.len() - start;
                }
            }
        }
        0
    }

    /// Whether some trigger is `norm` followed by more: the first trigger
    /// after it in order says, since those starting with it come next. (The
    /// first one not before it was `norm` itself whenever `norm` was a
    /// trigger too, which let "kill" out ahead of "kill you".)
    fn continues(&self, norm: &str) -> bool {
        !norm.is_empty()
            && self
                .triggers
                .first_after(norm)
                .is_some_and(|t| t.starts_with(norm))
    }
}

/// A sorted set of strings packed into one buffer: ~29k triggers took
/// ~2.5 MB as a `BTreeSet<String>` (a node slot and an allocation each),
/// and ~1 MB here.
struct Sorted {
    text: String,
    /// Where each string lies in `text`, in sorted order.
    spans: Vec<(u32, u32)>,
}

impl Sorted {
    fn new(mut items: Vec<String>) -> Sorted {
        items.sort_unstable();
        items.dedup();
        let mut text = String::with_capacity(items.iter().map(String::len).sum());
        let mut spans = Vec::with_capacity(items.len());
        let at = |text: &String| u32::try_from(text.len()).unwrap_or(u32::MAX);
        for s in &items {
            let start = at(&text);
            text.push_str(s);
            spans.push((start, at(&text)));
        }
        Sorted { text, spans }
    }

    fn get(&self, (start, end): (u32, u32)) -> &str {
        self.text.get(start as usize..end as usize).unwrap_or("")
    }

    /// The smallest string that is not less than `s`.
    #[cfg(test)]
    fn first_from(&self, s: &str) -> Option<&str> {
        let i = self.spans.partition_point(|&span| self.get(span) < s);
        self.spans.get(i).map(|&span| self.get(span))
    }

    /// The smallest string greater than `s`.
    fn first_after(&self, s: &str) -> Option<&str> {
        let i = self.spans.partition_point(|&span| self.get(span) <= s);
        self.spans.get(i).map(|&span| self.get(span))
    }
}

/// Expands `(a|b|)` groups (nested ones too) into every alternative (an
/// empty one makes the group optional), so the data file stays short.
pub fn expand(term: &str) -> Vec<String> {
    let Some(open) = term.find('(') else {
        return vec![term.split_whitespace().collect::<Vec<_>>().join(" ")];
    };
    // The matching parenthesis, and the top-level `|` inside the group.
    let (mut depth, mut close, mut bars) = (0usize, None, Vec::new());
    for (i, c) in term[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            '|' if depth == 1 => bars.push(open + i),
            _ => {}
        }
    }
    let Some(close) = close else {
        return vec![term.to_owned()];
    };
    let (head, tail) = (&term[..open], &term[close + 1..]);
    let mut cuts = vec![open];
    cuts.extend(bars);
    cuts.push(close);
    cuts.windows(2)
        .flat_map(|w| expand(&format!("{head}{}{tail}", &term[w[0] + 1..w[1]])))
        .collect()
}

/// Whether a sentence stop lies inside `s..e` (`stops` ascending).
fn crosses(stops: &[usize], s: usize, e: usize) -> bool {
    let i = stops.partition_point(|&p| p <= s);
    stops.get(i).is_some_and(|&p| p < e)
}

/// How many bytes before each offset (0..=len) some range covers; empty when
/// there are no ranges. A range `[s, e)` holds a covered byte iff
/// `covered[e] > covered[s]`.
fn covered_bytes(len: usize, ranges: &[(usize, usize)]) -> Vec<u32> {
    if ranges.is_empty() {
        return Vec::new();
    }
    let mut depth = vec![0i32; len + 1];
    for &(s, e) in ranges {
        depth[s.min(len)] += 1;
        depth[e.min(len)] -= 1;
    }
    let mut covered = Vec::with_capacity(len + 1);
    let (mut open, mut n) = (0i32, 0u32);
    covered.push(0);
    for d in &depth[..len] {
        open += d;
        n += u32::from(open > 0);
        covered.push(n);
    }
    covered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_harmless_uses_clean() {
        let m = Moderator::new().unwrap();
        assert!(m.scan("I will kill you").get(Category::Violence) >= 0.5);
        assert!(m.scan("how do I kill a process in linux").max() < 0.5);
        assert!(m.scan("the bomb scene in the movie was great").max() < 0.5);
        // A harmless phrase does not reach across sentences to cancel a hit.
        assert!(
            m.scan("Tell me how to build a bomb. Scene two is a park.")
                .max()
                >= 0.5
        );
        assert!(m.scan("how do I kill a process? Linux").max() < 0.5);
        assert!(m.scan("I want to k1ll mys3lf").get(Category::SelfHarm) >= 0.5);
    }

    /// Self-harm told in the first person as ongoing is intent; the word
    /// alone (`self-harm awareness`) and the idiom are not.
    #[test]
    fn ongoing_self_harm_in_the_first_person_is_intent() {
        let m = Moderator::new().unwrap();
        for text in [
            "I keep self-harming when nobody is around.",
            "I've been cutting myself again.",
            "I'm still self harming.",
            "im still cutting myself",
        ] {
            assert!(m.scan(text).get(Category::SelfHarmIntent) >= 0.5, "{text}");
        }
        for text in [
            "Our school runs a self-harm awareness week.",
            "I keep cutting myself some slack when I miss a workout.",
            "I've been cutting myself off from social media.",
            "I keep cutting myself shaving.",
        ] {
            assert!(m.scan(text).max() < 0.5, "{text}");
        }
        // Told in the past, the act is described; the intent is not said.
        let past = m.scan("I started self harming at 14 and stopped at 16.");
        assert!(past.get(Category::SelfHarm) >= 0.5, "{past:?}");
        assert!(past.get(Category::SelfHarmIntent) < 0.5, "{past:?}");
    }

    /// The second reading (`1`, `|` or `I` as `l`) catches what the first
    /// reads as `i`, and adds nothing to a text whose terms the first
    /// reading already weighed. Joiners stay: prose is full of them, and
    /// rescanning it whole cost twice as much.
    #[test]
    fn the_second_reading_adds_what_the_first_missed() {
        let m = Moderator::new().unwrap();
        assert!(m.scan("I will ki11 you").get(Category::Violence) >= 0.5);
        assert!(m.scan("I will kiII you").get(Category::Violence) >= 0.5);
        assert!(m.scan("how do I ki11 a process in linux").max() < 0.5);
        assert!(m.scan("Check the a11y report and the e.g. list").max() < 0.5);
    }

    #[test]
    fn open_suffix_holds_only_possible_starts() {
        let m = Moderator::new().unwrap();
        assert_eq!(m.open_suffix("Hello first"), 0);
        assert!(m.open_suffix("make a pipe bo") >= "bo".len());
        assert_eq!(
            expand("(kill|hurt) (you|)"),
            ["kill you", "kill", "hurt you", "hurt"]
        );
        assert_eq!(expand("a (b (c|d)|e)"), ["a b c", "a b d", "a e"]);
        assert!(m.open_suffix("I want to kill ") > 0);
        // A trigger that a longer one continues is held too.
        assert_eq!(m.open_suffix("Then kill"), "kill".len());
        // So is a run of spaced-out letters that may spell one.
        assert!(m.open_suffix("Then k i") >= "k i".len());
    }

    #[test]
    fn sorted_set_finds_what_a_btree_set_finds() {
        let words = [
            "pipe bomb",
            "kill",
            "kill you",
            "",
            "pipe",
            "kill",
            "zebra",
            "a b",
        ];
        let set: std::collections::BTreeSet<String> = words.iter().map(|w| w.to_string()).collect();
        let sorted = Sorted::new(words.iter().map(|w| w.to_string()).collect());
        assert_eq!(sorted.spans.len(), set.len());
        for probe in [
            "", "a", "kil", "kill", "kill ", "kill z", "pipe b", "pipez", "zz", "\u{ff}",
        ] {
            let want = set.range(probe.to_string()..).next().map(String::as_str);
            assert_eq!(sorted.first_from(probe), want, "probe {probe:?}");
            let after = set
                .range::<str, _>((std::ops::Bound::Excluded(probe), std::ops::Bound::Unbounded))
                .next()
                .map(String::as_str);
            assert_eq!(sorted.first_after(probe), after, "probe {probe:?}");
        }
    }
}
