//! Page tokens come back from clients, who may send anything: a token is read
//! as an offset or refused (never a panic), and every offset we hand out reads
//! back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use selfhelp_core::validation::{Violations, encode_page_offset, page_offset};

fuzz_target!(|input: (&str, u64)| {
    let (token, offset) = input;
    let mut v = Violations::new();
    let read = page_offset(&mut v, "page_token", token);
    if v.is_empty() {
        // What was accepted is a token we could have made.
        let mut again = Violations::new();
        assert_eq!(
            page_offset(&mut again, "page_token", &encode_page_offset(read)),
            read
        );
    } else {
        assert_eq!(v.fields().collect::<Vec<_>>(), vec!["page_token"]);
    }
    let mut v = Violations::new();
    let back = page_offset(&mut v, "page_token", &encode_page_offset(offset));
    if v.is_empty() {
        assert_eq!(back, offset, "our own token for {offset}");
    }
});
