//! Postcodes as people type them: normalised or refused, never a panic; a
//! normalised postcode is upper-case letters and digits with one space before
//! the three-character inward code, and normalises to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use selfhelp_core::postcode::normalise;

fuzz_target!(|input: &str| {
    let Some(postcode) = normalise(input) else {
        return;
    };
    assert_eq!(
        normalise(&postcode).as_deref(),
        Some(postcode.as_str()),
        "idempotent"
    );
    let (outward, inward) = postcode.split_once(' ').expect("one space");
    assert_eq!(inward.len(), 3, "{postcode}");
    assert!((2..=4).contains(&outward.len()), "{postcode}");
    assert!(
        postcode
            .chars()
            .all(|c| c == ' ' || c.is_ascii_uppercase() || c.is_ascii_digit()),
        "{postcode}"
    );
});
