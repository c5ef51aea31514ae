//! Behaviour tests for rule validation and application.

use std::collections::BTreeMap;

use super::process::{lower_for_test, upper_for_test};
use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn spec(action: &str) -> RuleSpec {
    RuleSpec {
        action: Some(action.to_string()),
        ..RuleSpec::default()
    }
}

fn src(mut s: RuleSpec, names: &[&str]) -> RuleSpec {
    s.source_labels = Some(names.iter().map(|n| n.to_string()).collect());
    s
}

fn with(mut s: RuleSpec, f: impl FnOnce(&mut RuleSpec)) -> RuleSpec {
    f(&mut s);
    s
}

fn rule(s: RuleSpec) -> Rule {
    Rule::new(s).expect("valid rule")
}

fn run(input: &[(&str, &str)], rules: Vec<RuleSpec>) -> Option<BTreeMap<String, String>> {
    let rules: Vec<Rule> = rules.into_iter().map(rule).collect();
    let mut l = labels(input);
    process(&mut l, &rules).then_some(l)
}

fn err(s: RuleSpec) -> RuleError {
    Rule::new(s).expect_err("rule should be rejected")
}

#[test]
fn action_names_round_trip() {
    for a in Action::ALL {
        assert_eq!(Action::parse(a.as_str()), Some(a));
    }
    assert_eq!(Action::parse("Replace"), None);
    assert_eq!(Action::parse(""), None);
}

#[test]
fn defaults_are_applied() {
    let r = rule(with(RuleSpec::default(), |s| {
        s.target_label = Some("x".into())
    }));
    assert_eq!(r.action, Action::Replace);
    assert_eq!(r.separator, ";");
    assert_eq!(r.regex.as_str(), "(.*)");
    assert_eq!(r.replacement, "$1");
    assert_eq!(r.modulus, 0);
    assert!(r.source_labels.is_empty());
}

#[test]
fn replace_copies_joined_sources_with_separator() {
    let s = with(src(spec("replace"), &["a", "b"]), |s| {
        s.separator = Some("-".into());
        s.target_label = Some("t".into());
    });
    let out = run(&[("a", "x"), ("b", "y")], vec![s]).unwrap();
    assert_eq!(out["t"], "x-y");
}

#[test]
fn missing_source_label_is_empty_string() {
    let s = with(src(spec("replace"), &["a", "missing", "b"]), |s| {
        s.target_label = Some("t".into());
    });
    let out = run(&[("a", "x"), ("b", "y")], vec![s]).unwrap();
    assert_eq!(out["t"], "x;;y");
}

#[test]
fn replace_without_match_changes_nothing() {
    let s = with(src(spec("replace"), &["a"]), |s| {
        s.regex = Some("foo".into());
        s.target_label = Some("a".into());
        s.replacement = Some("bar".into());
    });
    let out = run(&[("a", "foobar")], vec![s]).unwrap();
    assert_eq!(out, labels(&[("a", "foobar")]), "regex is anchored");
}

#[test]
fn empty_regex_matches_only_empty_value() {
    let s = with(src(spec("replace"), &["missing"]), |s| {
        s.regex = Some(String::new());
        s.target_label = Some("t".into());
        s.replacement = Some("set".into());
    });
    assert_eq!(run(&[], vec![s.clone()]).unwrap()["t"], "set");
    let s2 = with(s, |s| s.source_labels = Some(vec!["a".into()]));
    assert!(!run(&[("a", "x")], vec![s2]).unwrap().contains_key("t"));
}

#[test]
fn empty_replacement_deletes_target() {
    let s = with(src(spec("replace"), &["a"]), |s| {
        s.target_label = Some("b".into());
        s.replacement = Some(String::new());
    });
    let out = run(&[("a", "x"), ("b", "old")], vec![s]).unwrap();
    assert_eq!(out, labels(&[("a", "x")]));
}

#[test]
fn braced_reference_vs_longest_name() {
    // `$1x` names a group "1x" (absent -> empty); `${1}x` is group 1 then "x".
    let mk = |repl: &str| {
        with(src(spec("replace"), &["a"]), |s| {
            s.regex = Some("(.+)".into());
            s.target_label = Some("t".into());
            s.replacement = Some(repl.into());
        })
    };
    assert_eq!(run(&[("a", "v")], vec![mk("${1}x")]).unwrap()["t"], "vx");
    assert!(!run(&[("a", "v")], vec![mk("$1x")])
        .unwrap()
        .contains_key("t"));
    assert_eq!(run(&[("a", "v")], vec![mk("$1-x")]).unwrap()["t"], "v-x");
    assert_eq!(run(&[("a", "v")], vec![mk("$$1")]).unwrap()["t"], "$1");
    assert_eq!(run(&[("a", "v")], vec![mk("a$-b")]).unwrap()["t"], "a$-b");
    assert_eq!(run(&[("a", "v")], vec![mk("${1")]).unwrap()["t"], "${1");
    // Leading zero: Go treats "01" as a name, not group 1.
    assert!(!run(&[("a", "v")], vec![mk("$01")])
        .unwrap()
        .contains_key("t"));
}

#[test]
fn named_groups_expand() {
    let s = with(src(spec("replace"), &["__address__"]), |s| {
        s.regex = Some("(?P<host>[^:]+):(?P<port>\\d+)".into());
        s.target_label = Some("hp".into());
        s.replacement = Some("$port@${host}".into());
    });
    assert_eq!(
        run(&[("__address__", "h1:9100")], vec![s]).unwrap()["hp"],
        "9100@h1"
    );
}

#[test]
fn target_label_built_from_capture() {
    let s = with(src(spec("replace"), &["k"]), |s| {
        s.regex = Some("(\\w+)=(.*)".into());
        s.target_label = Some("tag_${1}".into());
        s.replacement = Some("$2".into());
    });
    assert_eq!(
        run(&[("k", "env=prod")], vec![s]).unwrap()["tag_env"],
        "prod"
    );
}

#[test]
fn invalid_target_after_expansion_is_ignored() {
    let s = with(src(spec("replace"), &["k"]), |s| {
        s.regex = Some("(.*)".into());
        s.target_label = Some("$1".into());
        s.replacement = Some("v".into());
    });
    let out = run(&[("k", "not-a-name")], vec![s]).unwrap();
    assert_eq!(out, labels(&[("k", "not-a-name")]));
}

#[test]
fn unicode_values_and_ascii_perl_classes() {
    let s = with(src(spec("replace"), &["a"]), |s| {
        s.regex = Some("(\\w*)(.*)".into());
        s.target_label = Some("t".into());
        s.replacement = Some("[$1|$2]".into());
    });
    // Go's \w is ASCII-only, so "é" is not a word character.
    assert_eq!(run(&[("a", "abé✓")], vec![s]).unwrap()["t"], "[ab|é✓]");
}

#[test]
fn dot_does_not_match_newline() {
    let s = with(src(spec("keep"), &["a"]), |s| s.regex = Some(".*".into()));
    assert!(run(&[("a", "x\ny")], vec![s.clone()]).is_none());
    assert!(run(&[("a", "xy")], vec![s]).is_some());
}

#[test]
fn go_literal_syntax_is_translated() {
    for (re, yes, no) in [
        ("[[]x", "[x", "x"),
        ("a{", "a{", "a"),
        ("x{2}", "xx", "x"),
        ("[a&&b]", "&", "c"),
        ("\\Qa.b\\E", "a.b", "axb"),
        ("x\\bé", "xé", "é"),
        ("[\\d\\s]+", "1 2", "é"),
        ("\\p{Greek}+", "αβ", "ab"),
    ] {
        let r = Regex::new(re).unwrap_or_else(|e| panic!("{re}: {e}"));
        assert!(r.is_match(yes), "{re} should match {yes:?}");
        assert!(!r.is_match(no), "{re} should not match {no:?}");
    }
}

#[test]
fn keep_and_drop() {
    let keep = with(src(spec("keep"), &["env"]), |s| {
        s.regex = Some("prod|stage".into())
    });
    assert!(run(&[("env", "prod")], vec![keep.clone()]).is_some());
    assert!(run(&[("env", "dev")], vec![keep]).is_none());
    let drop = with(src(spec("drop"), &["env"]), |s| {
        s.regex = Some("dev".into())
    });
    assert!(run(&[("env", "dev")], vec![drop.clone()]).is_none());
    assert!(run(&[("env", "prod")], vec![drop]).is_some());
}

#[test]
fn keepequal_and_dropequal() {
    let mk = |a: &str| with(src(spec(a), &["a"]), |s| s.target_label = Some("b".into()));
    assert!(run(&[("a", "1"), ("b", "1")], vec![mk("keepequal")]).is_some());
    assert!(run(&[("a", "1"), ("b", "2")], vec![mk("keepequal")]).is_none());
    assert!(run(&[("a", "1"), ("b", "1")], vec![mk("dropequal")]).is_none());
    assert!(run(&[("a", "1")], vec![mk("dropequal")]).is_some());
    // Both missing: "" == "".
    assert!(run(&[], vec![mk("keepequal")]).is_some());
}

#[test]
fn hashmod_matches_independent_md5() {
    // Expected values from:
    // python3 -c 'import hashlib;h=hashlib.md5(b"h1:9100").digest();print(int.from_bytes(h[8:],"big")%1000003)'
    // -> 265721; same for b"a;b" % 16 -> 10 and b"" % 10 -> 8.
    let mk = |m: u64, names: &[&str]| {
        with(src(spec("hashmod"), names), |s| {
            s.modulus = Some(m);
            s.target_label = Some("shard".into());
        })
    };
    let out = run(
        &[("__address__", "h1:9100")],
        vec![mk(1_000_003, &["__address__"])],
    );
    assert_eq!(out.unwrap()["shard"], "265721");
    assert_eq!(
        run(&[("a", "a"), ("b", "b")], vec![mk(16, &["a", "b"])]).unwrap()["shard"],
        "10"
    );
    assert_eq!(run(&[], vec![mk(10, &["x"])]).unwrap()["shard"], "8");
}

#[test]
fn labelmap_copies_matching_names() {
    let s = with(spec("labelmap"), |s| {
        s.regex = Some("__meta_(.+)".into());
    });
    let out = run(
        &[("__meta_zone", "eu"), ("__meta_rack", "r1"), ("a", "x")],
        vec![s],
    )
    .unwrap();
    assert_eq!(out["zone"], "eu");
    assert_eq!(out["rack"], "r1");
    assert_eq!(
        out["__meta_zone"], "eu",
        "labelmap copies, it does not move"
    );
}

#[test]
fn labeldrop_and_labelkeep_match_names() {
    let drop = with(spec("labeldrop"), |s| s.regex = Some("tmp_.*".into()));
    let out = run(&[("tmp_a", "1"), ("keep", "2")], vec![drop]).unwrap();
    assert_eq!(out, labels(&[("keep", "2")]));
    let keep = with(spec("labelkeep"), |s| s.regex = Some("__.*|keep".into()));
    let out = run(
        &[("__address__", "h:1"), ("other", "1"), ("keep", "2")],
        vec![keep],
    )
    .unwrap();
    assert_eq!(out, labels(&[("__address__", "h:1"), ("keep", "2")]));
}

#[test]
fn lowercase_and_uppercase_follow_go_simple_mapping() {
    let mk = |a: &str| with(src(spec(a), &["a"]), |s| s.target_label = Some("t".into()));
    assert_eq!(
        run(&[("a", "ÄbC")], vec![mk("lowercase")]).unwrap()["t"],
        "äbc"
    );
    assert_eq!(
        run(&[("a", "straße")], vec![mk("uppercase")]).unwrap()["t"],
        "STRAßE"
    );
    assert_eq!(lower_for_test("İΣ"), "iσ");
    assert_eq!(upper_for_test("ﬁǆᾳ"), "ﬁǄᾼ");
}

#[test]
fn empty_values_are_removed_at_the_end() {
    let s = with(src(spec("lowercase"), &["missing"]), |s| {
        s.target_label = Some("a".into())
    });
    let out = run(&[("a", "x"), ("e", "")], vec![s]).unwrap();
    assert!(out.is_empty());
}

#[test]
fn chain_applies_in_order_and_stops_on_drop() {
    let r1 = with(src(spec("replace"), &["a"]), |s| {
        s.target_label = Some("b".into())
    });
    let r2 = with(src(spec("drop"), &["b"]), |s| s.regex = Some("x".into()));
    assert!(run(&[("a", "x")], vec![r1.clone(), r2.clone()]).is_none());
    assert!(run(&[("a", "y")], vec![r1, r2]).is_some());
}

#[test]
fn validation_errors_name_the_field() {
    let e = err(with(src(spec("hashmod"), &["a"]), |s| {
        s.target_label = Some("t".into())
    }));
    assert_eq!(e.field, "modulus");
    assert_eq!(
        e.to_string(),
        "`modulus` is required for action \"hashmod\" and must be greater than 0"
    );
    assert_eq!(err(spec("bogus")).field, "action");
    assert_eq!(err(spec("replace")).field, "target_label");
    assert_eq!(
        err(with(spec("replace"), |s| s.target_label = Some("a-b".into()))).field,
        "target_label"
    );
    assert_eq!(
        err(with(spec("replace"), |s| s.target_label = Some("x$".into()))).field,
        "target_label"
    );
    assert!(Rule::new(with(spec("replace"), |s| s.target_label = Some("x_${1}y".into()))).is_ok());
    assert_eq!(
        err(with(spec("replace"), |s| {
            s.target_label = Some("t".into());
            s.regex = Some("(".into());
        }))
        .field,
        "regex"
    );
    assert_eq!(
        err(with(spec("lowercase"), |s| s.target_label = Some("$1".into()))).field,
        "target_label"
    );
    assert_eq!(
        err(with(spec("uppercase"), |s| {
            s.target_label = Some("t".into());
            s.replacement = Some("x".into());
        }))
        .field,
        "replacement"
    );
    assert_eq!(
        err(with(spec("keepequal"), |s| {
            s.target_label = Some("t".into());
            s.regex = Some("a".into());
        }))
        .field,
        "regex"
    );
    assert_eq!(
        err(with(spec("dropequal"), |s| {
            s.target_label = Some("t".into());
            s.separator = Some(",".into());
        }))
        .field,
        "separator"
    );
    assert_eq!(
        err(with(spec("hashmod"), |s| {
            s.target_label = Some("$1".into());
            s.modulus = Some(2);
        }))
        .field,
        "target_label"
    );
    assert_eq!(
        err(with(spec("labelmap"), |s| s.replacement = Some("a-$1".into()))).field,
        "replacement"
    );
    assert_eq!(err(src(spec("labeldrop"), &["a"])).field, "source_labels");
    assert_eq!(
        err(with(spec("labelkeep"), |s| s.target_label = Some("t".into()))).field,
        "target_label"
    );
    assert_eq!(
        err(with(spec("labelkeep"), |s| s.replacement = Some("x".into()))).field,
        "replacement"
    );
    // Values equal to the defaults count as unset.
    assert!(Rule::new(with(spec("labeldrop"), |s| s.separator = Some(";".into()))).is_ok());
}

#[test]
fn rule_equality_and_serialization_use_regex_text() {
    let a = rule(with(spec("labeldrop"), |s| s.regex = Some("a.*".into())));
    let b = rule(with(spec("labeldrop"), |s| s.regex = Some("a.*".into())));
    assert_eq!(a, b);
    let c = rule(with(spec("labeldrop"), |s| {
        s.regex = Some("(?:a.*)".into())
    }));
    assert_ne!(a, c);
}
