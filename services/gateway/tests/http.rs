//! The gateway over real HTTP/TCP in front of a real listings service (real
//! gRPC, real nats-server, a real SQLite database — the gateway has no database
//! of its own, so one backend is enough here; listings' own suite covers both).
//! ORUK answers are checked against the official schemas vendored in
//! `standards/oruk`; calendar feeds are read back with an independent parser.

use std::collections::HashSet;
use std::time::Duration;

mod common;

use common::{Gateway, REGION, directory, system};
use selfhelp_proto::listings::v1 as pb;
use selfhelp_testkit::oruk::{assert_valid, page_validator, validator};
use selfhelp_testkit::{eventually, token, with_token};
use serde_json::Value;

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

async fn get(http: &reqwest::Client, url: &str) -> Answer {
    let response = http.get(url).send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: unescape_slashes(response.text().await.unwrap()),
    }
}

/// Pages escape `/` in values (`&#x2f;`), as HTML allows; browsers read them
/// back as slashes, and so do these tests.
fn unescape_slashes(body: String) -> String {
    body.replace("&#x2f;", "/")
}

fn ids(page: &Value) -> HashSet<String> {
    page["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn open_referral_api_pages_filters_and_validates() {
    let mut sys = system().await;
    let dir = directory(&mut sys.client).await;
    let gateway = Gateway::start(&sys.listings.url(), |_| {}).await;
    let http = reqwest::Client::new();
    // Published groups reach the search index (from the write and its event).
    eventually("three groups in /services", Duration::from_secs(20), || {
        let (http, url) = (http.clone(), gateway.url("/oruk/services"));
        async move { (get(&http, &url).await.json()["total_items"] == 3).then_some(()) }
    })
    .await;

    let service_schema = validator("schema/compiled/service.json");
    let list_schema = validator("schema/compiled/service_list.json");
    let location_list_schema = validator("schema/compiled/service_at_location_list.json");
    let term_schema = validator("schema/taxonomy_term.json");
    let taxonomy_schema = validator("schema/taxonomy.json");
    let page_schema = page_validator();

    // `/`: what this API is.
    let info = get(&http, &gateway.url("/oruk/")).await;
    assert_eq!(info.status, 200);
    assert_eq!(info.header("access-control-allow-origin"), "*");
    let info = info.json();
    assert_eq!(info["version"], "3.0");
    assert!(
        info["openapi_url"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );

    // Level 1: page through /services one at a time and fetch every service.
    let mut seen = HashSet::new();
    for page in 1..=3 {
        let answer = get(
            &http,
            &gateway.url(&format!("/oruk/services?page={page}&per_page=1")),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.header("access-control-allow-origin"), "*");
        let doc = answer.json();
        assert_valid(&page_schema, &doc, "the page envelope");
        assert_eq!(doc["page_number"], page);
        assert_eq!(doc["total_pages"], 3);
        assert_eq!(doc["first_page"], page == 1);
        assert_eq!(doc["last_page"], page == 3);
        for item in doc["contents"].as_array().unwrap() {
            assert_valid(&list_schema, item, "a /services item");
            let id = item["id"].as_str().unwrap().to_string();
            let full = get(&http, &gateway.url(&format!("/oruk/services/{id}"))).await;
            assert_eq!(full.status, 200);
            let full = full.json();
            assert_valid(&service_schema, &full, "a /services/{id} document");
            assert_eq!(full["id"], id);
            seen.insert(id);
        }
    }
    let published: HashSet<String> = [&dir.young.id, &dir.mansfield.id, &dir.online.id]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(seen, published, "every published group, once; no draft");
    let everything = get(&http, &gateway.url("/oruk/services")).await.body;
    assert!(
        !everything.contains("secret-room") && !everything.contains("olive-organiser"),
        "member-only details and person ids never appear"
    );

    // Level 2: each filter finds the group it should and leaves out the others.
    let filtered = |query: &'static str| {
        let (http, url) = (
            http.clone(),
            gateway.url(&format!("/oruk/services?{query}")),
        );
        async move {
            let answer = get(&http, &url).await;
            assert_eq!(answer.status, 200, "{query}: {}", answer.body);
            ids(&answer.json())
        }
    };
    let only = |g: &pb::Group| HashSet::from([g.id.clone()]);
    assert_eq!(filtered("minimum_age=18").await, only(&dir.young));
    assert_eq!(filtered("maximum_age=25").await, only(&dir.young));
    assert_eq!(
        filtered("minimum_age=18&maximum_age=30").await,
        only(&dir.young)
    );
    assert!(filtered("minimum_age=19").await.is_empty());
    assert_eq!(filtered("day=WE").await, only(&dir.young));
    assert_eq!(filtered("day=monday").await, only(&dir.mansfield));
    assert_eq!(filtered("start_time=18:00").await, only(&dir.young));
    assert_eq!(filtered("end_time=12:00").await, only(&dir.mansfield));
    assert_eq!(
        filtered("start_time=09:00&end_time=11:30").await,
        only(&dir.mansfield)
    );
    assert_eq!(filtered("search=bereaved").await, only(&dir.young));
    assert_eq!(
        filtered("postcode=NG1%205FS&proximity=5000").await,
        only(&dir.young)
    );
    assert_eq!(
        filtered("postcode=NG1%205FS&proximity=40000").await,
        [&dir.young.id, &dir.mansfield.id]
            .into_iter()
            .cloned()
            .collect()
    );
    // Taxonomy terms by id (and a parent finds its children's groups).
    let terms = get(&http, &gateway.url("/oruk/taxonomy_terms?per_page=100"))
        .await
        .json();
    assert_valid(&page_schema, &terms, "the taxonomy_terms page");
    let term_id = |code: &str| {
        terms["contents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["code"] == code)
            .unwrap_or_else(|| panic!("term {code}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for (code, expected) in [
        ("anxiety", only(&dir.mansfield)),
        ("mental-health", only(&dir.mansfield)),
        ("bereavement", only(&dir.young)),
    ] {
        let url = gateway.url(&format!(
            "/oruk/services?taxonomy_term_id={}",
            term_id(code)
        ));
        assert_eq!(ids(&get(&http, &url).await.json()), expected, "{code}");
    }

    // Taxonomies and terms, listed and one by one.
    let taxonomies = get(&http, &gateway.url("/oruk/taxonomies")).await.json();
    assert_valid(&page_schema, &taxonomies, "the taxonomies page");
    let taxonomy = &taxonomies["contents"][0];
    assert_valid(&taxonomy_schema, taxonomy, "a taxonomy");
    let taxonomy_id = taxonomy["id"].as_str().unwrap();
    let one = get(
        &http,
        &gateway.url(&format!("/oruk/taxonomies/{taxonomy_id}")),
    )
    .await;
    assert_eq!(one.json(), *taxonomy);
    for term in terms["contents"].as_array().unwrap() {
        assert_valid(&term_schema, term, "a taxonomy term");
    }
    let anxiety = get(
        &http,
        &gateway.url(&format!("/oruk/taxonomy_terms/{}", term_id("anxiety"))),
    )
    .await;
    assert_eq!(anxiety.json()["code"], "anxiety");
    let by_taxonomy = format!("/oruk/services?taxonomy_id={taxonomy_id}");
    assert_eq!(
        ids(&get(&http, &gateway.url(&by_taxonomy)).await.json()),
        published
    );
    assert!(
        ids(&get(
            &http,
            &gateway.url("/oruk/services?taxonomy_id=00000000-0000-0000-0000-000000000000")
        )
        .await
        .json())
        .is_empty()
    );

    // Service at locations: one per venue (the online group has none).
    let locations = get(&http, &gateway.url("/oruk/service_at_locations")).await;
    assert_eq!(locations.status, 200, "{}", locations.body);
    let locations = locations.json();
    assert_valid(&page_schema, &locations, "the service_at_locations page");
    assert_eq!(locations["total_items"], 2);
    for item in locations["contents"].as_array().unwrap() {
        assert_valid(&location_list_schema, item, "a service_at_location");
        let id = item["id"].as_str().unwrap();
        let service = get(
            &http,
            &gateway.url(&format!("/oruk/service_at_locations/{id}")),
        )
        .await;
        assert_eq!(service.status, 200);
        let service = service.json();
        assert_valid(&service_schema, &service, "/service_at_locations/{id}");
        assert_eq!(service["id"], item["service"]["id"]);
    }
    let near = get(
        &http,
        &gateway.url("/oruk/service_at_locations?postcode=NG18%201AA&proximity=3000"),
    )
    .await
    .json();
    assert_eq!(near["total_items"], 1);
    assert_eq!(near["contents"][0]["service"]["id"], dir.mansfield.id);

    // Mistakes are JSON errors naming the parameter, with CORS too.
    for (query, field) in [
        ("minimum_age=eighteen", "minimum_age"),
        ("day=someday", "day"),
        ("start_time=7pm", "start_time"),
        ("postcode=ZZ99%209ZZ", "postcode"),
        ("proximity=500", "postcode"),
        ("per_page=1000", "per_page"),
        ("taxonomy_term_id=no-such-term", "taxonomy_term_id"),
    ] {
        let answer = get(&http, &gateway.url(&format!("/oruk/services?{query}"))).await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.body);
        assert_eq!(answer.header("access-control-allow-origin"), "*");
        assert_eq!(answer.json()["field"], field, "{query}");
    }
    let long = format!("/oruk/services?search={}", "a".repeat(3000));
    let answer = get(&http, &gateway.url(&long)).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["field"], "url");
    for path in [
        format!("/oruk/services/{}", dir.draft.id),
        "/oruk/services/not-a-uuid".to_string(),
        "/oruk/service_at_locations/00000000-0000-0000-0000-000000000000".to_string(),
        "/oruk/taxonomy_terms/nope".to_string(),
        "/oruk/nothing-here".to_string(),
    ] {
        let answer = get(&http, &gateway.url(&path)).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        assert_eq!(answer.json()["status"], 404, "{path}");
    }
    drop(gateway.task);
}

#[tokio::test]
async fn web_pages_search_groups_and_calendars() {
    let mut sys = system().await;
    let dir = directory(&mut sys.client).await;
    // A cancelled meeting shows on the group's page.
    let organiser = token("olive-organiser", REGION, &[]);
    let cancelled_date = dir.young.next_occurrences[1].local_date.clone();
    sys.client
        .cancel_occurrence(with_token(
            pb::CancelOccurrenceRequest {
                group_id: dir.young.id.clone(),
                date: cancelled_date.clone(),
                note: "The hall is closed".into(),
            },
            &organiser,
        ))
        .await
        .unwrap();
    let gateway = Gateway::start(&sys.listings.url(), |c| {
        c.http.public_url = "https://groups.example.org".into();
    })
    .await;
    let http = reqwest::Client::new();
    eventually("groups searchable", Duration::from_secs(20), || {
        let (http, url) = (http.clone(), gateway.url("/?postcode=NG1+5FS"));
        async move {
            get(&http, &url)
                .await
                .body
                .contains("Young bereaved")
                .then_some(())
        }
    })
    .await;

    // Home: the form, every field labelled; no results until a search.
    let home = get(&http, &gateway.url("/")).await;
    assert_eq!(home.status, 200);
    assert!(home.header("content-type").starts_with("text/html"));
    for field in [
        "q", "postcode", "distance", "topic", "day", "time", "format", "age", "open",
    ] {
        assert!(
            home.body.contains(&format!("<label for=\"{field}\"")),
            "a label for {field}"
        );
    }
    assert!(!home.body.contains("found</h2>"));
    // Security headers on every page.
    assert!(
        home.header("content-security-policy")
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(home.header("x-frame-options"), "DENY");
    assert_eq!(home.header("x-content-type-options"), "nosniff");
    assert_eq!(
        home.header("referrer-policy"),
        "strict-origin-when-cross-origin"
    );
    assert!(home.header("permissions-policy").contains("geolocation=()"));
    assert_eq!(home.header("strict-transport-security"), "max-age=31536000");
    // Answers that are not pages carry them too, errors included.
    let missing = get(&http, &gateway.url("/oruk/services/not-a-service")).await;
    assert_eq!(missing.header("x-content-type-options"), "nosniff");
    // A cached page asked for with its weak tag is not sent again.
    let weak = http
        .get(gateway.url("/"))
        .header("if-none-match", format!("W/{}", home.header("etag")))
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status().as_u16(), 304);

    // Search near a postcode: distance shown, the far group left out.
    let near = get(&http, &gateway.url("/?postcode=NG1+5FS&distance=5")).await;
    assert_eq!(near.status, 200);
    assert!(near.body.contains("1 group found"), "{}", near.body);
    assert!(near.body.contains("km away"));
    assert!(!near.body.contains("Mansfield anxiety circle"));
    let evening = get(&http, &gateway.url("/?day=wednesday&time=evening&age=20")).await;
    assert!(evening.body.contains("Young bereaved"));
    assert!(!evening.body.contains("Mansfield anxiety circle"));
    let online = get(&http, &gateway.url("/?format=online")).await;
    assert!(online.body.contains("Carers online"));
    assert!(!online.body.contains("Young bereaved"));
    // Words with HTML in them come back escaped, not as markup.
    let hostile = get(&http, &gateway.url("/?q=%3Cscript%3Ealert(1)%3C/script%3E")).await;
    assert!(!hostile.body.contains("<script>alert(1)"));
    assert!(hostile.body.contains("&lt;script&gt;"));
    // A postcode we do not know: the form again, with the problem named.
    let unknown = get(&http, &gateway.url("/?postcode=ZZ99+9ZZ")).await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.body.contains("There is a problem"));
    assert!(unknown.body.contains("href=\"#postcode\""));
    assert!(unknown.body.contains("aria-invalid=\"true\""));
    let bad_age = get(&http, &gateway.url("/?age=two+hundred")).await;
    assert_eq!(bad_age.status, 400);
    assert!(bad_age.body.contains("Enter an age from 1 to 120"));

    // Paging: 2 results per page would need more groups; the first page with a
    // token from listings links back to the first page.
    let young_page = get(&http, &gateway.url(&format!("/groups/{}", dir.young.id))).await;
    assert_eq!(young_page.status, 200);
    let body = &young_page.body;
    for expected in [
        "Young bereaved",
        "Ages 18 to 25.",
        "Carers are welcome.",
        "Every Wednesday",
        "7:00pm to 9:00pm",
        "Cancelled",
        "The hall is closed",
        "Step-free access, hearing loop",
        "Buses 35 and 36 stop outside",
        "Donations welcome. £2 towards tea",
        "English, Polish",
        "hello@example.org",
        "Open to new members",
        "webcal://groups.example.org/groups/",
        "<link rel=\"canonical\" href=\"https://groups.example.org/groups/",
        "property=\"og:title\"",
    ] {
        assert!(body.contains(expected), "the group page shows {expected:?}");
    }
    assert!(!body.contains("olive-organiser"), "no person ids on pages");
    // An online group without a schedule: no empty calendar offered, and no
    // "come along" (its joining details go to members only).
    let online = get(&http, &gateway.url(&format!("/groups/{}", dir.online.id))).await;
    assert!(!online.body.contains("calendar.ics"));
    assert!(
        online
            .body
            .contains("they will send you the joining details")
    );
    assert!(!online.body.contains("secret-room"));
    // Groups being started: listed once reviewed, as proposals, never as
    // groups that meet; unreviewed ones stay private.
    let proposed = get(&http, &gateway.url("/proposed")).await;
    assert_eq!(proposed.status, 200);
    assert!(
        proposed.body.contains("Dads walking group"),
        "{}",
        proposed.body
    );
    assert!(!proposed.body.contains("Hidden proposal circle"));
    assert!(!proposed.body.contains("Young bereaved"));
    assert!(
        home.body.contains("href=\"/proposed\""),
        "the site links to it"
    );
    let bad_token = get(&http, &gateway.url("/proposed?after=nonsense")).await;
    assert_eq!(bad_token.status, 400);
    let proposal = get(&http, &gateway.url(&format!("/groups/{}", dir.proposal.id))).await;
    assert_eq!(proposal.status, 200);
    assert!(proposal.body.contains("Being started."));
    assert!(proposal.body.contains("does not meet yet"));
    assert!(!proposal.body.contains("come along"));
    assert!(
        !proposal.body.contains("application/ld+json"),
        "no events for a proposal"
    );
    assert!(!proposal.body.contains("calendar.ics"));
    assert!(!proposal.body.contains("olive-organiser"));
    for hidden in [
        format!("/groups/{}", dir.unreviewed_proposal.id),
        format!("/groups/{}/calendar.ics", dir.proposal.id),
        format!("/oruk/services/{}", dir.proposal.id),
    ] {
        assert_eq!(
            get(&http, &gateway.url(&hidden)).await.status,
            404,
            "{hidden}"
        );
    }
    let everything = get(&http, &gateway.url("/?q=walking")).await;
    assert!(
        !everything.body.contains("Dads"),
        "searches find groups that meet"
    );

    // JSON-LD: schema.org events for the next meetings.
    let ld_start = body.find("application/ld+json\">").unwrap() + "application/ld+json\">".len();
    let ld_end = ld_start + body[ld_start..].find("</script>").unwrap();
    let events: Value = serde_json::from_str(&body[ld_start..ld_end]).unwrap();
    let events = events.as_array().unwrap();
    assert!(!events.is_empty());
    assert_eq!(events[0]["@type"], "Event");
    assert_eq!(events[0]["location"]["address"]["postalCode"], "NG1 5FS");
    assert!(events[0]["startDate"].as_str().unwrap().ends_with('Z'));

    // Caching: an ETag, and 304 when the browser already has the page.
    let etag = young_page.header("etag").to_string();
    assert!(etag.starts_with('"'));
    assert!(young_page.header("cache-control").contains("max-age=60"));
    let again = http
        .get(gateway.url(&format!("/groups/{}", dir.young.id)))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);

    // Drafts and made-up ids are friendly 404 pages.
    for path in [
        format!("/groups/{}", dir.draft.id),
        "/groups/not-a-group".to_string(),
        "/no/such/page".to_string(),
        "/topics/no-such-topic".to_string(),
    ] {
        let answer = get(&http, &gateway.url(&path)).await;
        assert_eq!(answer.status, 404, "{path}");
        assert!(answer.body.contains("Page not found"), "{path}");
        assert_eq!(answer.header("cache-control"), "no-store");
    }

    // Calendar: read back by an independent iCalendar parser.
    let ics = get(
        &http,
        &gateway.url(&format!("/groups/{}/calendar.ics", dir.young.id)),
    )
    .await;
    assert_eq!(ics.status, 200);
    assert!(ics.header("content-type").starts_with("text/calendar"));
    let unfolded = icalendar::parser::unfold(&ics.body);
    let calendar = icalendar::parser::read_calendar(&unfolded).expect("the feed parses");
    let events: Vec<_> = calendar
        .components
        .iter()
        .filter(|c| c.name == "VEVENT")
        .collect();
    assert!(!events.is_empty());
    let series = events
        .iter()
        .find(|e| e.properties.iter().any(|p| p.name == "RRULE"))
        .expect("the weekly series");
    let exdate = series
        .properties
        .iter()
        .find(|p| p.name == "EXDATE")
        .expect("the cancelled meeting as EXDATE");
    assert!(
        exdate
            .val
            .as_str()
            .contains(&cancelled_date.replace('-', ""))
    );
    let draft_ics = get(
        &http,
        &gateway.url(&format!("/groups/{}/calendar.ics", dir.draft.id)),
    )
    .await;
    assert_eq!(draft_ics.status, 404);

    // The region's feed and a topic's: every series, one event per group.
    let summaries = |ics: &str| -> Vec<String> {
        let unfolded = icalendar::parser::unfold(ics);
        let calendar = icalendar::parser::read_calendar(&unfolded).expect("the feed parses");
        let mut names: Vec<String> = calendar
            .components
            .iter()
            .filter(|c| c.name == "VEVENT" && c.properties.iter().any(|p| p.name == "RRULE"))
            .filter_map(|c| c.properties.iter().find(|p| p.name == "SUMMARY"))
            .map(|p| p.val.as_str().to_string())
            .collect();
        names.sort();
        names
    };
    let region = get(&http, &gateway.url("/calendar.ics")).await;
    assert_eq!(region.status, 200);
    assert!(region.header("content-type").starts_with("text/calendar"));
    assert_eq!(
        summaries(&region.body),
        ["Mansfield anxiety circle", "Young bereaved"]
    );
    assert!(!region.body.contains("Unfinished draft group"));
    let topic = get(&http, &gateway.url("/topics/mental-health/calendar.ics")).await;
    assert_eq!(summaries(&topic.body), ["Mansfield anxiety circle"]);
    assert_eq!(
        get(&http, &gateway.url("/topics/no-such-topic/calendar.ics"))
            .await
            .status,
        404
    );
    let home_feed = get(&http, &gateway.url("/")).await.body;
    assert!(home_feed.contains("webcal://groups.example.org/calendar.ics"));

    // Topics: the tree, and a topic's own page of groups.
    let topics = get(&http, &gateway.url("/topics")).await;
    assert!(topics.body.contains("href=\"/topics/anxiety\""));
    let anxiety = get(&http, &gateway.url("/topics/mental-health")).await;
    assert_eq!(anxiety.status, 200);
    assert!(anxiety.body.contains("Mansfield anxiety circle"));
    assert!(!anxiety.body.contains("Young bereaved"));
    assert!(
        anxiety
            .body
            .contains("href=\"/topics/mental-health/calendar.ics\"")
    );

    // Sitemap and robots for search engines.
    let sitemap = get(&http, &gateway.url("/sitemap.xml")).await;
    assert!(
        sitemap
            .header("content-type")
            .starts_with("application/xml")
    );
    for g in [&dir.young, &dir.mansfield, &dir.online] {
        assert!(
            sitemap
                .body
                .contains(&format!("https://groups.example.org/groups/{}", g.id))
        );
    }
    assert!(!sitemap.body.contains(&dir.draft.id));
    assert!(
        sitemap
            .body
            .contains(&format!("/groups/{}<", dir.proposal.id))
    );
    assert!(
        sitemap
            .body
            .contains("https://groups.example.org/proposed<")
    );
    assert!(!sitemap.body.contains(&dir.unreviewed_proposal.id));
    let robots = get(&http, &gateway.url("/robots.txt")).await;
    assert!(
        robots
            .body
            .contains("Sitemap: https://groups.example.org/sitemap.xml")
    );
    drop(gateway.task);
}

#[tokio::test]
async fn strangers_get_a_fair_share_and_proxies_are_believed_only_when_trusted() {
    let sys = system().await;
    let limited = Gateway::start(&sys.listings.url(), |c| {
        c.http.rate_limit_per_second = 2;
        c.http.trusted_proxies = 1;
    })
    .await;
    let http = reqwest::Client::new();
    let mut refused = None;
    for _ in 0..20 {
        let answer = http
            .get(limited.url("/oruk/"))
            .header("x-forwarded-for", "203.0.113.7")
            .send()
            .await
            .unwrap();
        if answer.status().as_u16() == 429 {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("a burst from one address is refused");
    assert!(refused.headers().get("retry-after").is_some());
    // Another client behind the same proxy still gets in; health checks always do.
    let other = http
        .get(limited.url("/oruk/"))
        .header("x-forwarded-for", "198.51.100.9")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 200);
    for _ in 0..10 {
        assert_eq!(
            get(&http, &limited.url("/healthz")).await.status,
            200,
            "health checks are never limited"
        );
    }
    // Behind a trusted proxy, links use the address the visitor used.
    let page = http
        .get(limited.url("/topics"))
        .header("x-forwarded-for", "192.0.2.1")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "groups.example.net")
        .send()
        .await
        .unwrap();
    assert!(page.headers().get("strict-transport-security").is_some());
    let body = unescape_slashes(page.text().await.unwrap());
    assert!(body.contains("href=\"https://groups.example.net/topics\""));

    // A client cannot pass for another behind the trusted proxy by adding
    // addresses of its own in front: only the proxy's entry counts.
    let spoofed = http
        .get(limited.url("/oruk/"))
        .header("x-forwarded-for", "10.9.9.1, 203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(
        spoofed.status().as_u16(),
        429,
        "entries in front of the proxy's are the client's own words"
    );

    // Without a trusted proxy, X-Forwarded-For is the client's own word: a
    // new address on every request changes nothing, the peer is limited.
    let untrusting = Gateway::start(&sys.listings.url(), |c| {
        c.http.rate_limit_per_second = 2;
        c.http.trusted_proxies = 0;
    })
    .await;
    let mut refused_after = None;
    for i in 0..20 {
        let answer = http
            .get(untrusting.url("/oruk/"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .send()
            .await
            .unwrap();
        if answer.status().as_u16() == 429 {
            refused_after = Some(i);
            break;
        }
    }
    let refused_after = refused_after.expect("made-up addresses do not escape the limit");
    // The burst is twice the rate: four, then the fifth is refused (a sixth
    // if a token came back while the loop ran).
    assert!(
        (4..=5).contains(&refused_after),
        "refused after {refused_after} requests"
    );
    drop(untrusting.task);

    // Without trust the same headers change nothing.
    let plain = Gateway::start(&sys.listings.url(), |_| {}).await;
    let page = http
        .get(plain.url("/topics"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .unwrap();
    assert!(page.headers().get("strict-transport-security").is_none());
    let body = page.text().await.unwrap();
    assert!(!body.contains("evil.example"));
    drop(limited.task);
    drop(plain.task);
}

#[tokio::test]
async fn readiness_follows_listings_and_a_stop_is_graceful() {
    let sys = system().await;
    let gateway = Gateway::start(&sys.listings.url(), |_| {}).await;
    let http = reqwest::Client::new();
    assert_eq!(get(&http, &gateway.url("/readyz")).await.status, 200);
    assert_eq!(get(&http, &gateway.url("/healthz")).await.status, 200);
    sys.listings.stop().await.unwrap();
    assert_eq!(get(&http, &gateway.url("/readyz")).await.status, 503);
    let page = get(&http, &gateway.url("/topics")).await;
    assert_eq!(page.status, 503);
    assert!(page.body.contains("not available just now"));
    let api = get(&http, &gateway.url("/oruk/services")).await;
    assert_eq!(api.status, 503);
    assert_eq!(api.json()["status"], 503);
    // Alive while the directory is away, and it stops when told.
    assert_eq!(get(&http, &gateway.url("/healthz")).await.status, 200);
    let Gateway { _stop, task, .. } = gateway;
    _stop.trigger();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the gateway stops promptly")
        .unwrap()
        .unwrap();
}

/// A stop while a page is being made: the page is finished and sent, new
/// connections are refused, and the gateway ends within its grace period.
/// Listings' answers reach the gateway through a relay that holds them back,
/// so the page is surely in flight when the stop comes.
#[tokio::test]
async fn a_stop_finishes_the_pages_in_flight() {
    let mut sys = system().await;
    let dir = directory(&mut sys.client).await;
    let relay = common::SlowRelay::start(sys.listings.addr, Duration::from_millis(700)).await;
    let gateway = Gateway::start(&relay.url(), |c| c.http.shutdown_grace_ms = 10_000).await;
    let http = reqwest::Client::new();
    let path = format!("/groups/{}", dir.young.id);
    assert_eq!(get(&http, &gateway.url(&path)).await.status, 200, "warm");

    let asked = relay.forwarded();
    let page = tokio::spawn({
        let (http, url) = (http.clone(), gateway.url(&path));
        async move { get(&http, &url).await }
    });
    // The gateway has asked listings; the answer is held back by the relay.
    relay.wait_forwarded_beyond(asked).await;
    let Gateway {
        _stop, task, addr, ..
    } = gateway;
    _stop.trigger();
    eventually(
        "new connections refused",
        Duration::from_secs(5),
        || async {
            tokio::net::TcpStream::connect(addr)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    let page = page.await.unwrap();
    assert_eq!(page.status, 200, "the page in flight is finished");
    assert!(page.body.contains("Young bereaved"));
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the gateway ends within its grace period")
        .unwrap()
        .unwrap();
}

/// The gateway's own metrics, scraped over TCP: every request counted by
/// route, method and status. Alone in its process, so the counts are its own.
#[tokio::test]
async fn the_gateway_counts_its_requests_by_route() {
    if !selfhelp_testkit::alone_in_process("the_gateway_counts_its_requests_by_route") {
        return;
    }
    let sys = system().await;
    let mut scrape = None;
    let gateway = Gateway::start(&sys.listings.url(), |c| {
        scrape = Some(selfhelp_testkit::metrics::Scrape::configure(&mut c.metrics));
    })
    .await;
    let scrape = scrape.unwrap();
    let http = reqwest::Client::new();
    for path in ["/topics", "/topics", "/no/such/page"] {
        get(&http, &gateway.url(path)).await;
    }
    let sample = |route: &str, code: u16| {
        format!(r#"selfhelp_http_requests_total{{route="{route}",method="GET",code="{code}"}}"#)
    };
    scrape.until(&sample("/topics", 200), |v| v == 2.0).await;
    scrape.until(&sample("unmatched", 404), |v| v == 1.0).await;
    let timed = r#"selfhelp_http_request_seconds_count{route="/topics"}"#;
    scrape.until(timed, |v| v == 2.0).await;
    drop(gateway.task);
}
