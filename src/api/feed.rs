//! `GET /feed.atom` and `GET /feed.rss`: the last 30 days' incidents (at most
//! [`FEED_ENTRIES`], newest first) and the maintenance windows in progress or planned next, for
//! feed readers and chat integrations. Monitors `page.hidden` leaves off the page are left out.
//! Links point at `public_url` when it is set, otherwise at the host the request named.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::history::{read_incidents, Named};
use super::AppState;
use crate::alert::maintenance::Pattern;
use crate::domain::MonitorKey;

/// The most incidents a feed lists.
pub const FEED_ENTRIES: usize = 50;
const FEED_DAYS: i64 = 30;

/// One feed entry, whichever the format.
struct Entry {
    id: String,
    title: String,
    summary: String,
    /// Unix seconds.
    updated: i64,
}

fn utc(ts: i64, format: &str) -> String {
    chrono::DateTime::from_timestamp(ts, 0).map(|t| t.format(format).to_string()).unwrap_or_default()
}

fn minutes(seconds: i64) -> String {
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3_600 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3_600, s % 3_600 / 60),
    }
}

fn label(key: &MonitorKey) -> String {
    let mut label = if key.channel.is_empty() {
        format!("{} / {}", key.provider, key.service)
    } else {
        format!("{} / {} / {}", key.provider, key.service, key.channel)
    };
    if !key.model.is_empty() {
        label.push_str(&format!(" [{}]", key.model));
    }
    label
}

/// A URN part: letters, digits and `-._` kept, anything else percent-encoded.
fn urn_part(text: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_');
    percent_encoding::utf8_percent_encode(text, KEEP).to_string()
}

fn incident_entry(named: &Named, now: i64) -> Entry {
    let i = &named.incident;
    let key = &named.key;
    let reasons: Vec<String> = i.reasons.named().iter().map(|(r, n)| format!("{r} ×{n}")).collect();
    let (title, span) = match i.end {
        Some(end) => (
            format!("Resolved: {} was down for {}", label(key), minutes(end - i.start)),
            format!("from {} to {} UTC", utc(i.start, "%Y-%m-%d %H:%M"), utc(end, "%Y-%m-%d %H:%M")),
        ),
        None => (
            format!("Ongoing: {} is down", label(key)),
            format!("since {} UTC ({} so far)", utc(i.start, "%Y-%m-%d %H:%M"), minutes(now - i.start)),
        ),
    };
    let summary = format!(
        "{} was down {span}: {} red probes in a row. Reasons: {}. Seen by: {}.",
        label(key),
        i.reds,
        reasons.join(", "),
        named.nodes.join(", ")
    );
    Entry {
        id: format!(
            "urn:llm-monitor:incident:{}:{}:{}:{}",
            urn_part(&key.provider),
            urn_part(&key.service),
            urn_part(&key.channel),
            i.start
        ) + &if key.model.is_empty() { String::new() } else { format!(":{}", urn_part(&key.model)) },
        title,
        summary,
        updated: i.end.unwrap_or(i.start),
    }
}

/// The maintenance windows in progress or next to start, each naming the listed monitors it
/// covers (windows covering none of them are left out).
fn maintenance_entries(listing: &crate::supervisor::Listing, shown: &[&MonitorKey], now: i64) -> Vec<Entry> {
    let mut out = Vec::new();
    for window in &listing.maintenance {
        let covered: Vec<String> = shown.iter().filter(|k| window.covers(k)).map(|k| label(k)).collect();
        if covered.is_empty() {
            continue;
        }
        let occurrences = [window.open_at(now).map(|w| (w, true)), window.next_after(now).map(|w| (w, false))];
        for ((start, end), current) in occurrences.into_iter().flatten() {
            let when = format!("{} to {} UTC", utc(start, "%Y-%m-%d %H:%M"), utc(end, "%Y-%m-%d %H:%M"));
            out.push(Entry {
                id: format!("urn:llm-monitor:maintenance:{}:{start}", urn_part(&window.name)),
                title: format!(
                    "{}: {} ({when})",
                    if current { "Maintenance in progress" } else { "Planned maintenance" },
                    window.name
                ),
                summary: format!("Maintenance {:?} from {when}, covering {}.", window.name, covered.join(", ")),
                updated: start,
            });
        }
    }
    out
}

/// `public_url`, or `http://` and the request's `Host` header (never `Forwarded` or
/// `X-Forwarded-*`, which any client can send; a host with anything but letters, digits, dots,
/// dashes, colons and brackets is replaced with `localhost`). Behind a proxy, set `public_url`.
fn base_url(req: &HttpRequest, listing: &crate::supervisor::Listing) -> String {
    if let Some(url) = &listing.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let host = if !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)) {
        host
    } else {
        "localhost"
    };
    format!("http://{host}")
}

/// The Atom feed's permanent id: its `public_url` address, or a fixed URN when none is set
/// (never the host a request named).
fn feed_id(listing: &crate::supervisor::Listing) -> String {
    match &listing.public_url {
        Some(url) => format!("{}/feed.atom", url.trim_end_matches('/')),
        None => "urn:llm-monitor:feed".to_string(),
    }
}

struct Feed {
    id: String,
    title: String,
    base: String,
    entries: Vec<Entry>,
    now: i64,
}

async fn gather(req: &HttpRequest, state: &AppState) -> Result<Feed, Box<HttpResponse>> {
    let now = state.clock.now();
    let from = now - FEED_DAYS * 86_400;
    let found = read_incidents(state, (from, now + 1), None).await?;
    let listing = found.listing;
    let hidden: Vec<Pattern> = listing.page.hidden.iter().filter_map(|p| Pattern::parse(p).ok()).collect();
    let visible = |key: &MonitorKey| !hidden.iter().any(|p| p.matches(key));
    // Monitors, not their models' series: a window covers a monitor of several models once.
    let mut seen = std::collections::HashSet::new();
    let monitors: Vec<MonitorKey> = listing
        .monitors
        .iter()
        .filter(|(k, _)| visible(k))
        .map(|(k, _)| k.monitor())
        .filter(|k| seen.insert(k.clone()))
        .collect();
    let shown: Vec<&MonitorKey> = monitors.iter().collect();
    let mut entries = maintenance_entries(&listing, &shown, now);
    entries
        .extend(found.incidents.iter().filter(|n| visible(&n.key)).take(FEED_ENTRIES).map(|n| incident_entry(n, now)));
    Ok(Feed {
        id: feed_id(&listing),
        title: listing.page.title.clone().unwrap_or_else(|| "LLM API status".to_string()),
        base: base_url(req, &listing),
        entries,
        now,
    })
}

fn fixed(ts: i64) -> atom_syndication::FixedDateTime {
    chrono::DateTime::from_timestamp(ts, 0).unwrap_or_default().fixed_offset()
}

pub async fn atom(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    use atom_syndication::{Feed as AtomFeed, Link, Person, Text};
    let feed = match gather(&req, &state).await {
        Ok(feed) => feed,
        Err(response) => return *response,
    };
    let link = |href: String, rel: &str| {
        let mut link = Link::default();
        link.set_href(href);
        link.set_rel(rel);
        link
    };
    let page = format!("{}/", feed.base);
    let entries: Vec<atom_syndication::Entry> = feed
        .entries
        .iter()
        .map(|e| {
            let mut entry = atom_syndication::Entry::default();
            entry.set_id(e.id.clone());
            entry.set_title(Text::plain(e.title.clone()));
            entry.set_updated(fixed(e.updated));
            entry.set_summary(Some(Text::plain(e.summary.clone())));
            entry.set_links(vec![link(page.clone(), "alternate")]);
            entry
        })
        .collect();
    let updated = feed.entries.iter().map(|e| e.updated).max().unwrap_or(feed.now);
    let mut out = AtomFeed::default();
    out.set_id(feed.id.clone());
    out.set_title(Text::plain(feed.title.clone()));
    out.set_updated(fixed(updated));
    let mut author = Person::default();
    author.set_name(feed.title.clone());
    out.set_authors(vec![author]);
    out.set_links(vec![link(format!("{}/feed.atom", feed.base), "self"), link(page, "alternate")]);
    out.set_generator(Some(atom_syndication::Generator {
        value: "llm-monitor".to_string(),
        uri: None,
        version: Some(env!("CARGO_PKG_VERSION").to_string()),
    }));
    out.set_entries(entries);
    HttpResponse::Ok()
        .content_type("application/atom+xml; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(out.to_string())
}

pub async fn rss(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let feed = match gather(&req, &state).await {
        Ok(feed) => feed,
        Err(response) => return *response,
    };
    let page = format!("{}/", feed.base);
    let items: Vec<rss::Item> = feed
        .entries
        .iter()
        .map(|e| {
            let mut item = rss::Item::default();
            item.set_title(e.title.clone());
            item.set_link(page.clone());
            item.set_description(e.summary.clone());
            item.set_guid(rss::Guid { value: e.id.clone(), permalink: false });
            item.set_pub_date(utc(e.updated, "%a, %d %b %Y %H:%M:%S +0000"));
            item
        })
        .collect();
    let mut channel = rss::Channel::default();
    channel.set_title(feed.title.clone());
    channel.set_link(page);
    channel.set_description(format!("Incidents and maintenance of {}", feed.title));
    channel.set_generator(format!("llm-monitor {}", env!("CARGO_PKG_VERSION")));
    let updated = feed.entries.iter().map(|e| e.updated).max().unwrap_or(feed.now);
    channel.set_last_build_date(utc(updated, "%a, %d %b %Y %H:%M:%S +0000"));
    channel.set_items(items);
    HttpResponse::Ok()
        .content_type("application/rss+xml; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(channel.to_string())
}
