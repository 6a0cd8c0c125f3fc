//! Every text the model will read in a request, and every text it said in
//! a response, each with where it was (for the error's `param`).

use serde_json::{Map, Value};

use crate::proxy::Endpoint;
use crate::tokens::Tokenizer;

/// Where a text sits; rendered as `messages[3].content` only when needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc {
    Message {
        index: usize,
        field: &'static str,
        part: Option<usize>,
    },
    ToolCall {
        index: usize,
        call: usize,
    },
    /// A tool's description or a string in its parameters' schema
    /// (property descriptions, enums): the model reads those too.
    Tool {
        /// `tools` or the legacy `functions`.
        list: &'static str,
        index: usize,
        field: &'static str,
    },
    Item {
        field: &'static str,
        index: Option<usize>,
    },
}

impl Loc {
    pub fn param(&self) -> String {
        match *self {
            Loc::Message {
                index,
                field,
                part: None,
            } => format!("messages[{index}].{field}"),
            Loc::Message {
                index,
                field,
                part: Some(p),
            } => format!("messages[{index}].{field}[{p}].text"),
            Loc::ToolCall { index, call } => {
                format!("messages[{index}].tool_calls[{call}].function.arguments")
            }
            Loc::Tool { list, index, field } => format!("{list}[{index}].{field}"),
            Loc::Item { field, index: None } => field.to_owned(),
            Loc::Item {
                field,
                index: Some(i),
            } => format!("{field}[{i}]"),
        }
    }
}

/// One text and whether it comes from the caller's end user (injection is
/// only looked for there: a system prompt is the developer's own).
#[derive(Debug, Clone, Copy)]
pub struct Text<'a> {
    pub text: &'a str,
    pub loc: Loc,
    pub untrusted: bool,
}

fn content<'a>(v: &'a Value, index: usize, untrusted: bool, out: &mut Vec<Text<'a>>) {
    match v {
        Value::String(s) => out.push(Text {
            text: s,
            loc: Loc::Message {
                index,
                field: "content",
                part: None,
            },
            untrusted,
        }),
        Value::Array(parts) => {
            for (p, part) in parts.iter().enumerate() {
                if let Some(t) = part.get("text").and_then(Value::as_str) {
                    out.push(Text {
                        text: t,
                        loc: Loc::Message {
                            index,
                            field: "content",
                            part: Some(p),
                        },
                        untrusted,
                    });
                }
            }
        }
        _ => {}
    }
}

fn items<'a>(v: &'a Value, field: &'static str, out: &mut Vec<Text<'a>>) {
    match v {
        Value::String(s) => out.push(Text {
            text: s,
            loc: Loc::Item { field, index: None },
            untrusted: true,
        }),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let t = x.as_str().or_else(|| x.get("text").and_then(Value::as_str));
                if let Some(t) = t {
                    out.push(Text {
                        text: t,
                        loc: Loc::Item {
                            field,
                            index: Some(i),
                        },
                        untrusted: true,
                    });
                }
            }
        }
        _ => {}
    }
}

/// The most text read from one token-id input: as much as a request body
/// may hold as text (a token id stands for up to 128 bytes of it).
const MAX_DECODED: usize = 8 << 20;

/// A text made from a request (where, the text, whether it is untrusted).
pub type Derived = (Loc, String, bool);

/// Injection is looked for in what end users and tools wrote: not in the
/// developer's prompts, nor in the model's own earlier replies (one of
/// those flagged blocked every later turn of the conversation).
fn untrusted(message: &Value) -> bool {
    let role = message
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or("user");
    !matches!(role, "system" | "developer" | "assistant")
}

/// Texts a request holds that are not strings in it, so [`request`] can
/// lend them out too: token-id prompts and inputs decoded (they skipped
/// every check, noted as passed), and a message's text parts joined (the
/// model reads them as one text, so a phrase split across parts passed
/// both scanners). Empty for most requests.
pub fn derived(endpoint: Endpoint, doc: &Map<String, Value>, tok: &Tokenizer) -> Vec<Derived> {
    let mut out = Vec::new();
    let ids = |v: &[Value]| -> Option<String> {
        crate::tokens::ids_of(v)
            .filter(|i| !i.is_empty())
            .map(|i| tok.decode(i, MAX_DECODED))
    };
    let field = match endpoint {
        Endpoint::Chat => {
            if let Some(Value::Array(msgs)) = doc.get("messages") {
                for (index, m) in msgs.iter().enumerate() {
                    let Some(Value::Array(parts)) = m.get("content") else {
                        continue;
                    };
                    let texts: Vec<&str> = parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect();
                    if texts.len() > 1 {
                        let loc = Loc::Message {
                            index,
                            field: "content",
                            part: None,
                        };
                        out.push((loc, texts.concat(), untrusted(m)));
                    }
                }
            }
            return out;
        }
        Endpoint::Completions => "prompt",
        Endpoint::Embeddings | Endpoint::Moderations => "input",
    };
    if let Some(Value::Array(a)) = doc.get(field) {
        if let Some(text) = ids(a) {
            out.push((Loc::Item { field, index: None }, text, true));
        } else {
            for (i, x) in a.iter().enumerate() {
                if let Some(text) = x.as_array().and_then(|inner| ids(inner)) {
                    out.push((
                        Loc::Item {
                            field,
                            index: Some(i),
                        },
                        text,
                        true,
                    ));
                }
            }
        }
    }
    out
}

/// The texts of a request body, and those [`derived`] from it.
pub fn request<'a>(
    endpoint: Endpoint,
    doc: &'a Map<String, Value>,
    derived: &'a [Derived],
) -> Vec<Text<'a>> {
    let mut out: Vec<Text<'a>> = Vec::new();
    match endpoint {
        Endpoint::Chat => {
            if let Some(Value::Array(msgs)) = doc.get("messages") {
                for (i, m) in msgs.iter().enumerate() {
                    let untrusted = untrusted(m);
                    if let Some(c) = m.get("content") {
                        content(c, i, untrusted, &mut out);
                    }
                    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                        for (k, c) in calls.iter().enumerate() {
                            if let Some(a) =
                                c.pointer("/function/arguments").and_then(Value::as_str)
                            {
                                out.push(Text {
                                    text: a,
                                    loc: Loc::ToolCall { index: i, call: k },
                                    untrusted,
                                });
                            }
                        }
                    }
                    if let Some(a) = m
                        .pointer("/function_call/arguments")
                        .and_then(Value::as_str)
                    {
                        out.push(Text {
                            text: a,
                            loc: Loc::Message {
                                index: i,
                                field: "function_call.arguments",
                                part: None,
                            },
                            untrusted,
                        });
                    }
                }
            }
            let lists = [("tools", "/function", "function."), ("functions", "", "")];
            for (list, at, prefix) in lists {
                let Some(Value::Array(tools)) = doc.get(list) else {
                    continue;
                };
                for (index, t) in tools.iter().enumerate() {
                    let Some(f) = t.pointer(at) else { continue };
                    let description = if prefix.is_empty() {
                        "description"
                    } else {
                        "function.description"
                    };
                    let parameters = if prefix.is_empty() {
                        "parameters"
                    } else {
                        "function.parameters"
                    };
                    if let Some(d) = f.get("description").and_then(Value::as_str) {
                        let loc = Loc::Tool {
                            list,
                            index,
                            field: description,
                        };
                        out.push(Text {
                            text: d,
                            loc,
                            untrusted: false,
                        });
                    }
                    if let Some(p) = f.get("parameters") {
                        let loc = Loc::Tool {
                            list,
                            index,
                            field: parameters,
                        };
                        strings_in(p, loc, &mut out);
                    }
                }
            }
        }
        Endpoint::Completions => {
            if let Some(p) = doc.get("prompt") {
                items(p, "prompt", &mut out);
            }
            if let Some(Value::String(s)) = doc.get("suffix") {
                out.push(Text {
                    text: s,
                    loc: Loc::Item {
                        field: "suffix",
                        index: None,
                    },
                    untrusted: true,
                });
            }
        }
        Endpoint::Embeddings | Endpoint::Moderations => {
            if let Some(p) = doc.get("input") {
                items(p, "input", &mut out);
            }
        }
    }
    // Last: a flag is named after the first text it is found in, and the
    // request's own strings say best where.
    out.extend(derived.iter().map(|(loc, text, untrusted)| Text {
        text,
        loc: *loc,
        untrusted: *untrusted,
    }));
    out
}

/// A message or stream delta: the fields that carry what the model said,
/// each a `Value` so one of an odd type loses only itself. Besides the
/// content and tool calls: a refusal, reasoning, a legacy function call, a
/// spoken answer's transcript (left out, each went unread). Typed, not a
/// `Value` read by JSON pointer: that parsed every other field into a map
/// and allocated for each pointer, 9k instructions an answer.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Said {
    content: Value,
    tool_calls: Value,
    refusal: Value,
    reasoning_content: Value,
    reasoning: Value,
    function_call: Value,
    audio: Value,
}

impl Said {
    fn each(&self, mut add: impl FnMut(&str)) {
        match &self.content {
            Value::String(s) => add(s),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .for_each(&mut add),
            _ => {}
        }
        let calls = self.tool_calls.as_array().into_iter().flatten();
        let call_args = calls.filter_map(|c| c.get("function")?.get("arguments")?.as_str());
        let others = [
            self.refusal.as_str(),
            self.reasoning_content.as_str(),
            self.reasoning.as_str(),
            self.function_call.get("arguments").and_then(Value::as_str),
            self.audio.get("transcript").and_then(Value::as_str),
        ];
        call_args.chain(others.into_iter().flatten()).for_each(add);
    }
}

/// Every string of a JSON document of a shape other than expected, so its
/// text is read rather than passed unread; `false` when it is not JSON.
fn all_strings(json: &[u8], add: impl FnMut(&str)) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(json) else {
        return false;
    };
    let mut texts = Vec::new();
    crate::tokens::collect_strings(&v, &mut texts);
    texts.into_iter().for_each(add);
    true
}

/// What the model said in a non-streamed answer (the body as the upstream
/// sent it): every `Said` field of each message, completion texts. Only
/// `choices` is read into values; everything else is skipped unbuilt. JSON
/// of another shape gives all its strings; `false` when the body is not
/// JSON at all.
pub fn response(body: &[u8], out: &mut String) -> bool {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        choices: Vec<Choice>,
    }
    #[derive(serde::Deserialize)]
    struct Choice {
        #[serde(default)]
        text: Value,
        #[serde(default)]
        message: Option<Said>,
    }
    let mut push = |s: &str| {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(s);
    };
    let Ok(answer) = serde_json::from_slice::<Answer>(body) else {
        return all_strings(body, push);
    };
    for c in &answer.choices {
        if let Some(t) = c.text.as_str() {
            push(t);
        }
        if let Some(m) = &c.message {
            m.each(&mut push);
        }
    }
    true
}

/// The text each choice of a stream chunk adds (content, legacy text, tool
/// call arguments), by choice index: with `n` > 1 choices interleave, and
/// one choice's phrase must not be read through another's words.
pub fn deltas(json: &[u8], mut add: impl FnMut(u32, &str)) {
    #[derive(serde::Deserialize)]
    struct Chunk {
        #[serde(default)]
        choices: Vec<Choice>,
    }
    #[derive(serde::Deserialize)]
    struct Choice {
        #[serde(default)]
        index: u32,
        #[serde(default)]
        delta: Option<Said>,
        #[serde(default)]
        text: Option<String>,
    }
    let Ok(c) = serde_json::from_slice::<Chunk>(json) else {
        // Not a chunk's shape (an index past u32, a number for content),
        // yet relayed all the same: its strings are checked as the first
        // choice's text rather than passed unread. Not even a JSON value
        // (a lone surrogate escape, which the relay's check lets by): its
        // bytes are read as text.
        if !all_strings(json, |t| add(0, t)) {
            add(0, &String::from_utf8_lossy(json));
        }
        return;
    };
    for ch in c.choices {
        if let Some(t) = ch.text {
            add(ch.index, &t);
        }
        if let Some(d) = ch.delta {
            d.each(|t| add(ch.index, t));
        }
    }
}

/// Each choice's whole text in a stream's events, choices in order of
/// first appearance.
pub fn by_choice(events: &[crate::proxy::sse::Event]) -> Vec<(u32, String)> {
    let mut out: Vec<(u32, String)> = Vec::new();
    for ev in events {
        if let crate::proxy::sse::Event::Json(j) = ev {
            deltas(j, |index, t| {
                match out.iter_mut().find(|(i, _)| *i == index) {
                    Some((_, text)) => text.push_str(t),
                    None => out.push((index, t.to_owned())),
                }
            });
        }
    }
    out
}

/// Every string in a JSON value (a tool's parameter schema), depth-first.
fn strings_in<'a>(v: &'a Value, loc: Loc, out: &mut Vec<Text<'a>>) {
    match v {
        Value::String(s) => out.push(Text {
            text: s,
            loc,
            untrusted: false,
        }),
        Value::Array(a) => a.iter().for_each(|x| strings_in(x, loc, out)),
        Value::Object(o) => o.values().for_each(|x| strings_in(x, loc, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    /// Every field a model speaks through is read, and a body that is not
    /// JSON is reported as unreadable rather than passed as "no text".
    #[test]
    fn answers_are_read_from_every_field_that_speaks() {
        let body = br#"{"choices":[{"message":{"content":null,"refusal":"r1",
            "reasoning_content":"r2","function_call":{"name":"f","arguments":"r3"},
            "audio":{"transcript":"r4"}}}]}"#;
        let mut out = String::new();
        assert!(super::response(body, &mut out));
        assert_eq!(out, "r1\nr2\nr3\nr4");
        let mut out = String::new();
        assert!(!super::response(b"data: I will kill you\n\n", &mut out));
        let mut seen = Vec::new();
        super::deltas(
            br#"{"choices":[{"index":0,"delta":{"refusal":"a","reasoning_content":"b"}}]}"#,
            |_, t| seen.push(t.to_owned()),
        );
        assert_eq!(seen, ["a", "b"]);
    }

    #[test]
    fn chunks_of_another_shape_are_read_not_skipped() {
        let mut seen = Vec::new();
        super::deltas(
            br#"{"choices":[{"index":4294967296,"delta":{"content":"kill them"}}]}"#,
            |i, t| seen.push((i, t.to_owned())),
        );
        assert!(
            seen.iter().any(|(i, t)| *i == 0 && t == "kill them"),
            "{seen:?}"
        );
        // A lone surrogate escape: no JSON parser takes it, the scanner does.
        let mut seen = String::new();
        super::deltas(
            br#"{"choices":[{"index":0,"delta":{"content":"I will kill you \ud83d"}}]}"#,
            |_, t| seen.push_str(t),
        );
        assert!(seen.contains("I will kill you"), "{seen}");
    }
}
