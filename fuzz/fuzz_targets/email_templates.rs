//! Emails built from what people wrote (titles, bodies, group names): the
//! built-in templates always render, the subject is one line, and nothing
//! anyone wrote becomes markup in the HTML part.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use selfhelp_notifications::channels::email::{Item, Templates};
use selfhelp_notifications::domain::messages::ALL_KINDS;
use std::sync::OnceLock;

#[derive(Arbitrary, Debug)]
struct Input {
    kind: u8,
    title: String,
    body: String,
    group_name: String,
    more: Vec<(String, String)>,
}

fn templates() -> &'static Templates {
    static T: OnceLock<Templates> = OnceLock::new();
    T.get_or_init(|| Templates::load(None, "https://groups.example.org").expect("the built-in templates"))
}

fuzz_target!(|input: Input| {
    let kind = ALL_KINDS[usize::from(input.kind) % ALL_KINDS.len()];
    let item = Item {
        kind,
        title: input.title,
        body: input.body,
        when: "2026-12-02 18:30".into(),
    };
    let url = "https://notify.example.org/unsubscribe?token=t";
    let one = templates()
        .notification("notts", &item, &input.group_name, url)
        .expect("built-in templates render anything");
    check(&one.subject, &one.html);

    let mut items = vec![item];
    items.extend(input.more.into_iter().take(20).map(|(title, body)| Item {
        kind,
        title,
        body,
        when: "2026-12-03 10:00".into(),
    }));
    let names = vec![input.group_name];
    let digest = templates()
        .digest("notts", "daily", &items, &names, url)
        .expect("the digest renders anything");
    check(&digest.subject, &digest.html);
});

fn check(subject: &str, html: &str) {
    assert!(!subject.contains(['\r', '\n']), "one line: {subject:?}");
    assert!(!html.contains("<script"), "markup from input: {html}");
    assert!(!html.contains("<img"), "markup from input: {html}");
}
