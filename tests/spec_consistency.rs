//! proto/ and SPEC.md must describe the same protocol: every message and enum value of the
//! proto files is named in SPEC.md, and every enum value SPEC.md names exists in proto/.

use std::collections::BTreeSet;

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn proto_sources() -> String {
    let dir = format!("{}/proto/peerchat/v1", env!("CARGO_MANIFEST_DIR"));
    let mut all = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        all += &std::fs::read_to_string(e.unwrap().path()).unwrap();
    }
    all
}

/// Identifiers following `keyword ` at the start of a (trimmed) line.
fn declared(src: &str, keyword: &str) -> BTreeSet<String> {
    src.lines()
        .filter_map(|l| l.trim().strip_prefix(keyword))
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
        })
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn enum_values(src: &str) -> BTreeSet<String> {
    src.lines()
        .map(str::trim)
        .filter(|l| l.contains(" = ") && l.ends_with(';'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| {
            w.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

fn mentioned(spec: &str, name: &str) -> bool {
    spec.match_indices(name).any(|(i, _)| {
        let before = spec[..i].chars().next_back();
        let after = spec[i + name.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

#[test]
fn every_proto_message_and_enum_value_is_in_the_spec() {
    let spec = read("SPEC.md");
    let proto = proto_sources();
    // Guard against the scanner silently finding nothing.
    assert!(declared(&proto, "message ").len() > 50 && enum_values(&proto).len() > 40);
    let mut missing = Vec::new();
    for name in declared(&proto, "message ")
        .into_iter()
        .chain(declared(&proto, "enum "))
        .chain(enum_values(&proto))
    {
        if !mentioned(&spec, &name) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "named in proto/ but not in SPEC.md: {missing:?}"
    );
}

#[test]
fn every_enum_value_in_the_spec_exists_in_proto() {
    let spec = read("SPEC.md");
    let values = enum_values(&proto_sources());
    let mut unknown = BTreeSet::new();
    for prefix in [
        "ERROR_CODE_",
        "CLOSE_REASON_",
        "FILE_CANCEL_REASON_",
        "CHANNEL_KIND_",
    ] {
        for (i, _) in spec.match_indices(prefix) {
            let word: String = spec[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !values.contains(&word) && !word.ends_with('_') {
                unknown.insert(word);
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "named in SPEC.md but not in proto/: {unknown:?}"
    );
}
