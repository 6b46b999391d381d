//! Search benchmark: 100,000 published groups, a typical query (text + topic +
//! 10 km radius, 20 results), run on the search index and, side by side, on a
//! baseline that applies the same filters by scanning every group (what a
//! database LIKE query does). Prints p50/p99 for both, the ratio and the RSS.
//!
//! `cargo bench -p selfhelp-listings --bench search` (add `-- 20000` for fewer groups).
//! With `--min-ratio R` it exits with a failure when the index is less than R times
//! faster than the scan at p50: CI's check that search has not regressed, a ratio
//! of two figures from one run rather than a time that depends on the machine.

use std::time::{Duration, Instant};

use chrono::Weekday;
use selfhelp_listings::domain::group::{Format, JoinPolicy};
use selfhelp_listings::search::{Query, SearchDoc, SearchIndex, Sort, haversine_km};

const TOPICS: &[&str] = &[
    "bereavement",
    "carers",
    "diabetes",
    "cancer",
    "anxiety",
    "depression",
    "alcohol",
    "parenting",
    "autism",
    "long-covid",
    "chronic-pain",
    "stroke",
];
const WORDS: &[&str] = &[
    "support",
    "group",
    "circle",
    "café",
    "peer",
    "friends",
    "together",
    "walk",
    "talk",
    "coffee",
    "morning",
    "evening",
    "bereavement",
    "carers",
    "parents",
    "recovery",
    "wellbeing",
    "community",
    "hope",
    "living",
];
const TOWNS: &[(&str, f64, f64)] = &[
    ("Nottingham", 52.9548, -1.1581),
    ("Derby", 52.9225, -1.4746),
    ("Leicester", 52.6369, -1.1398),
    ("Sheffield", 53.3811, -1.4701),
    ("Leeds", 53.8008, -1.5491),
    ("Manchester", 53.4808, -2.2426),
    ("Birmingham", 52.4862, -1.8904),
    ("Bristol", 51.4545, -2.5879),
    ("London", 51.5072, -0.1276),
    ("Newcastle", 54.9783, -1.6178),
];

/// A small deterministic generator (no extra dependency, same data every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
    fn unit(&mut self) -> f64 {
        (self.next() % 1_000_000) as f64 / 1_000_000.0
    }
}

fn generate(n: usize) -> Vec<SearchDoc> {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    (0..n)
        .map(|i| {
            let (town, lat, lon) = *rng.pick(TOWNS);
            let topic = rng.pick(TOPICS).to_string();
            let name = format!(
                "{} {} {} {town}",
                rng.pick(WORDS),
                topic.replace('-', " "),
                rng.pick(WORDS)
            );
            let description: Vec<&str> = (0..30).map(|_| *rng.pick(WORDS)).collect();
            SearchDoc {
                id: format!("{i:08}"),
                name,
                summary: format!("A {} group in {town}", rng.pick(WORDS)),
                description: description.join(" "),
                topics: vec![topic],
                topic_names: Vec::new(),
                format: if rng.next().is_multiple_of(5) {
                    Format::Online
                } else {
                    Format::InPerson
                },
                join_policy: JoinPolicy::Open,
                minimum_age: None,
                maximum_age: None,
                // Spread venues up to ~25 km around the town centre.
                points: vec![(
                    lat + (rng.unit() - 0.5) * 0.45,
                    lon + (rng.unit() - 0.5) * 0.7,
                )],
                meeting_days: vec![Weekday::Wed],
                start_minutes: Some(19 * 60),
                end_minutes: Some(21 * 60),
                service_at_location_ids: Vec::new(),
                next_meeting_ms: None,
            }
        })
        .collect()
}

/// The baseline: the same query answered by looking at every group.
fn scan(docs: &[SearchDoc], q: &Query, words: &[String]) -> usize {
    let mut hits: Vec<(f64, &str)> = docs
        .iter()
        .filter(|d| q.topics.is_empty() || d.topics.iter().any(|t| q.topics.contains(t)))
        .filter(|d| {
            let text = format!("{} {} {}", d.name, d.summary, d.description).to_lowercase();
            words.iter().all(|w| text.contains(w.as_str()))
        })
        .filter_map(|d| {
            let (centre, radius) = q.near?;
            let distance = d
                .points
                .iter()
                .map(|p| haversine_km(centre, *p))
                .fold(f64::MAX, f64::min);
            (distance <= radius).then_some((distance, d.name.as_str()))
        })
        .collect();
    hits.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    hits.len().min(q.limit)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// `[GROUPS] [--min-ratio R]`.
fn arguments() -> (usize, Option<f64>) {
    let (mut groups, mut min_ratio) = (100_000, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--min-ratio" => {
                let value = args.next().and_then(|v| v.parse().ok());
                min_ratio = Some(value.expect("--min-ratio needs a number"));
            }
            // cargo bench passes --bench to every bench program.
            "--bench" => {}
            other => match other.parse() {
                Ok(n) => groups = n,
                Err(_) => panic!("unknown argument {other:?}: expected [GROUPS] [--min-ratio R]"),
            },
        }
    }
    (groups, min_ratio)
}

fn main() {
    let (n, min_ratio) = arguments();
    let rss_before = rss_mib();
    let docs = generate(n);
    let started = Instant::now();
    let mut index = SearchIndex::default();
    for d in docs.iter().cloned() {
        index.upsert(d);
    }
    let build = started.elapsed();
    let rss_after = rss_mib();
    println!(
        "groups: {n}; index built in {:.2?}; RSS {rss_before:.0} MiB -> {rss_after:.0} MiB",
        build
    );

    let queries: Vec<(Query, Vec<String>)> = TOWNS
        .iter()
        .flat_map(|(_, lat, lon)| {
            [
                ("support", "bereavement"),
                ("carers group", "carers"),
                ("walk", "anxiety"),
                ("coffee", "diabetes"),
            ]
            .map(|(text, topic)| {
                let q = Query {
                    text: text.into(),
                    topics: vec![topic.into()],
                    near: Some(((*lat, *lon), 10.0)),
                    sort: Sort::Relevance,
                    limit: 20,
                    ..Default::default()
                };
                (q, text.split_whitespace().map(str::to_lowercase).collect())
            })
        })
        .collect();

    let rounds = 50;
    let mut ours = Vec::new();
    let mut base = Vec::new();
    let mut matched = 0usize;
    for round in 0..rounds {
        for (q, words) in &queries {
            let t = Instant::now();
            let r = index.search(q);
            ours.push(t.elapsed());
            matched += r.hits.len();
            // The baseline is slow: run it on a fifth of the rounds.
            if round % 5 == 0 {
                let t = Instant::now();
                std::hint::black_box(scan(&docs, q, words));
                base.push(t.elapsed());
            }
        }
    }
    ours.sort();
    base.sort();
    let (o50, o99) = (percentile(&ours, 0.5), percentile(&ours, 0.99));
    let (b50, b99) = (percentile(&base, 0.5), percentile(&base, 0.99));
    println!(
        "typical query (text + topic + 10 km, 20 results), {} runs; {} hits returned in all",
        ours.len(),
        matched
    );
    println!("  search index : p50 {o50:>10.2?}  p99 {o99:>10.2?}");
    println!(
        "  full scan    : p50 {b50:>10.2?}  p99 {b99:>10.2?}  ({} runs)",
        base.len()
    );
    let ratio_p50 = b50.as_secs_f64() / o50.as_secs_f64();
    println!(
        "  ratio (scan / index): p50 {ratio_p50:.1}x  p99 {:.1}x",
        b99.as_secs_f64() / o99.as_secs_f64()
    );
    let target = Duration::from_millis(5);
    println!(
        "  target p99 < {target:?}: {}",
        if o99 < target { "met" } else { "NOT met" }
    );

    // What a person types on the search page: a topic and a common word around
    // a postcode, no topic filter (the system benchmark's SearchGroups). The
    // common word matches many groups, so the page is cut from hundreds.
    let mut typed = Vec::new();
    let mut typed_total = 0usize;
    for i in 0..2_000 {
        let (_, lat, lon) = TOWNS[i % TOWNS.len()];
        let words = [
            "bereavement support",
            "anxiety walk",
            "carers coffee",
            "diabetes peer",
        ];
        let q = Query {
            text: words[(i / TOWNS.len()) % words.len()].into(),
            near: Some(((lat, lon), 10.0)),
            sort: Sort::Relevance,
            limit: 20,
            ..Default::default()
        };
        let t = Instant::now();
        typed_total += std::hint::black_box(index.search(&q)).total;
        typed.push(t.elapsed());
    }
    typed.sort();
    println!(
        "words + place, no topic filter (20 of {} matches on average), {} runs: p50 {:.2?}  p99 {:.2?}",
        typed_total / typed.len(),
        typed.len(),
        percentile(&typed, 0.5),
        percentile(&typed, 0.99)
    );

    // An Open Referral reader paging through the whole directory: no filter,
    // name order, pages of 50 anywhere in it.
    let pages = n.div_ceil(50).max(1);
    let mut crawl = Vec::new();
    for i in 0..400 {
        let q = Query {
            sort: Sort::Relevance,
            limit: 50,
            offset: ((i * 31) % pages) * 50,
            ..Default::default()
        };
        let t = Instant::now();
        std::hint::black_box(index.search(&q));
        crawl.push(t.elapsed());
    }
    crawl.sort();
    println!(
        "whole directory in name order, a page of 50 (an ORUK crawl), {} runs: p50 {:.2?}  p99 {:.2?}",
        crawl.len(),
        percentile(&crawl, 0.5),
        percentile(&crawl, 0.99)
    );

    if let Some(min) = min_ratio {
        if ratio_p50 < min {
            eprintln!(
                "REGRESSION: the index is {ratio_p50:.1}x faster than the scan at p50; at least {min}x expected"
            );
            std::process::exit(1);
        }
        println!("ratio check: {ratio_p50:.1}x ≥ {min}x");
    }
}
