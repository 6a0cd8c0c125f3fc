//! The public status page: one server-rendered HTML document, no scripts,
//! readable without CSS and by screen readers (landmarks, headings, the
//! uptime bars summarised in text), light and dark.

use std::fmt::Write;

use super::model::{
    day_of, ComponentStatus, Incident, IncidentStatus, MaintenanceStatus, UptimeDay,
};
use super::{View, HISTORY_DAYS};

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-11-29 04:10 UTC`.
fn when(t: i64) -> String {
    let s = crate::timefmt::rfc3339(t);
    format!(
        "{} {} UTC",
        s.get(..10).unwrap_or(""),
        s.get(11..16).unwrap_or("")
    )
}

fn date(day: i64) -> String {
    crate::timefmt::rfc3339(day * 86_400)
        .get(..10)
        .unwrap_or("")
        .to_owned()
}

fn title_case(s: &str) -> String {
    let s = s.replace('_', " ");
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

const STYLE: &str = include_str!("page.css");

pub fn render(name: &str, view: &View, now: i64) -> String {
    let indicator = view.indicator();
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{n} status</title><style>{STYLE}</style></head><body>\
         <a class=\"skip\" href=\"#components\">Skip to components</a>\
         <header class=\"top\"><div class=\"wrap\"><p class=\"brand\">{n}</p>\
         <p class=\"sub\">System status</p></div></header><main class=\"wrap\">\
         <section class=\"banner i-{ind}\" aria-labelledby=\"overall\">\
         <span class=\"dot\" aria-hidden=\"true\"></span><div><h1 id=\"overall\">{desc}</h1>\
         <p>Last updated {upd}</p></div></section>",
        n = esc(name),
        ind = indicator.as_str(),
        desc = indicator.description(),
        upd = when(view.updated_at.max(1)),
    );
    let open: Vec<&Incident> = view.open_incidents().collect();
    if !open.is_empty() {
        h.push_str("<section aria-labelledby=\"active\"><h2 id=\"active\">Active incidents</h2>");
        for i in open {
            incident(&mut h, view, i, true);
        }
        h.push_str("</section>");
    }
    maintenance(&mut h, view);
    components(&mut h, view, now);
    history(&mut h, view);
    h.push_str(
        "</main><footer class=\"wrap foot\"><p>Times are in UTC. Reload the page for the latest state. \
         Machine-readable: <a href=\"/status/summary.json\">summary.json</a>.</p>\
         <p>Powered by Assisters Gateway</p></footer></body></html>",
    );
    h
}

fn incident(h: &mut String, view: &View, i: &Incident, open: bool) {
    let affected: Vec<String> = i
        .components
        .iter()
        .map(|c| esc(&view.component_name(c)))
        .collect();
    let _ = write!(
        h,
        "<article class=\"incident m-{imp}\"><h3>{name}</h3><p class=\"meta\">{status} · {imp_label} impact",
        imp = i.impact.as_str(),
        name = esc(&i.name),
        status = title_case(i.status.as_str()),
        imp_label = title_case(i.impact.as_str()),
    );
    if !affected.is_empty() {
        let _ = write!(h, " · Affects {}", affected.join(", "));
    }
    h.push_str("</p><ol class=\"timeline\">");
    let shown = if open { i.updates.len() } else { 3 };
    for u in i.updates.iter().take(shown) {
        let _ = write!(
            h,
            "<li><p><strong>{}</strong> — {}</p><p class=\"meta\"><time datetime=\"{}\">{}</time></p></li>",
            title_case(u.status.as_str()),
            esc(&u.body),
            crate::timefmt::rfc3339(u.created_at),
            when(u.created_at)
        );
    }
    h.push_str("</ol></article>");
}

fn maintenance(h: &mut String, view: &View) {
    let upcoming: Vec<_> = view
        .maintenances
        .iter()
        .filter(|m| m.status != MaintenanceStatus::Completed)
        .collect();
    if upcoming.is_empty() {
        return;
    }
    h.push_str("<section aria-labelledby=\"maint\"><h2 id=\"maint\">Scheduled maintenance</h2>");
    for m in upcoming {
        let names: Vec<String> = m
            .components
            .iter()
            .map(|c| esc(&view.component_name(c)))
            .collect();
        let _ = write!(
            h,
            "<article class=\"incident m-maintenance\"><h3>{}</h3><p class=\"meta\">{} · {} to {}{}</p><p>{}</p></article>",
            esc(&m.name),
            if m.status == MaintenanceStatus::InProgress { "In progress" } else { "Scheduled" },
            when(m.scheduled_for),
            when(m.scheduled_until),
            if names.is_empty() { String::new() } else { format!(" · Affects {}", names.join(", ")) },
            esc(&m.body),
        );
    }
    h.push_str("</section>");
}

fn components(h: &mut String, view: &View, now: i64) {
    h.push_str(
        "<section aria-labelledby=\"components\"><div class=\"head\"><h2 id=\"components\">Components</h2>\
         <p class=\"meta\">Uptime over the past 90 days</p></div><ul class=\"components\">",
    );
    let mut list: Vec<_> = view.components.iter().collect();
    list.sort_by_key(|c| c.position);
    let today = day_of(now);
    for c in list {
        let days = view
            .uptime
            .get(&c.id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut total = UptimeDay::default();
        for d in days {
            total.operational += d.operational;
            total.degraded += d.degraded;
            total.partial += d.partial;
            total.major += d.major;
            total.maintenance += d.maintenance;
        }
        let pct = total.uptime().map_or_else(
            || "No data yet".to_owned(),
            |u| format!("{:.2}% uptime", u * 100.0),
        );
        let _ = write!(
            h,
            "<li class=\"component\"><div class=\"row\"><h3>{name}</h3>\
             <span class=\"state s-{st}\">{label}</span></div>\
             <div class=\"bars\" role=\"img\" aria-label=\"{name}: {pct} over the past 90 days\">",
            name = esc(&c.name),
            st = c.status.as_str(),
            label = c.status.label(),
        );
        for day in (today - HISTORY_DAYS + 1)..=today {
            let d = days.iter().find(|d| d.day == day);
            let (class, tip) = match d.and_then(|d| Some((d.worst()?, d.uptime()?))) {
                Some((w, u)) => (
                    w.as_str(),
                    format!("{}: {:.2}% uptime", date(day), u * 100.0),
                ),
                None => ("none", format!("{}: no data", date(day))),
            };
            let _ = write!(h, "<span class=\"bar b-{class}\" title=\"{tip}\"></span>");
        }
        let _ = write!(
            h,
            "</div><div class=\"scale\" aria-hidden=\"true\"><span>90 days ago</span>\
             <span>{pct}</span><span>Today</span></div></li>"
        );
    }
    h.push_str("</ul><p class=\"legend\" aria-hidden=\"true\">");
    for s in [
        ComponentStatus::Operational,
        ComponentStatus::DegradedPerformance,
        ComponentStatus::PartialOutage,
        ComponentStatus::MajorOutage,
        ComponentStatus::UnderMaintenance,
    ] {
        let _ = write!(
            h,
            "<span><i class=\"b-{}\"></i>{}</span>",
            s.as_str(),
            s.label()
        );
    }
    h.push_str("</p></section>");
}

fn history(h: &mut String, view: &View) {
    h.push_str("<section aria-labelledby=\"past\"><h2 id=\"past\">Past incidents</h2>");
    let past: Vec<_> = view
        .incidents
        .iter()
        .filter(|i| i.status == IncidentStatus::Resolved)
        .collect();
    if past.is_empty() {
        h.push_str("<p class=\"empty\">No incidents in the past 90 days.</p>");
    }
    for i in past {
        let _ = write!(
            h,
            "<details class=\"past\"><summary><span>{}</span><span class=\"meta\">{}</span></summary>",
            esc(&i.name),
            when(i.created_at)
        );
        incident(h, view, i, false);
        h.push_str("</details>");
    }
    h.push_str("</section>");
}
