use super::*;
use proptest::prelude::*;

fn fmt(src: &str) -> String {
    let out = format(src, "t.alloy").unwrap_or_else(|e| panic!("{e}\n--- input:\n{src}"));
    let again = format(&out, "t.alloy").unwrap();
    assert_eq!(out, again, "formatting is idempotent");
    out
}

#[test]
fn attributes_get_spaces_and_aligned_equals_until_a_blank_line() {
    let src = "a=1\nlong_name=\"x\"\n\n\n\nother=true\n";
    assert_eq!(
        fmt(src),
        "a         = 1\nlong_name = \"x\"\n\nother = true\n"
    );
}

#[test]
fn blocks_are_indented_with_tabs_and_separated_by_a_blank_line() {
    let src = "prometheus.scrape \"a\" {\ntargets=[]\nclustering { enabled = true }\n}\nprometheus.remote_write \"b\" {}";
    assert_eq!(
        fmt(src),
        "prometheus.scrape \"a\" {\n\ttargets = []\n\n\tclustering {\n\t\tenabled = true\n\t}\n}\n\nprometheus.remote_write \"b\" { }\n"
    );
}

#[test]
fn comments_are_kept_and_end_of_line_comments_align_within_a_run() {
    let src =
        "// head\n\n// about a\na = 1 // one\nbbb = \"long\" // two\n/* own */\nc = 2\n// tail\n";
    assert_eq!(
        fmt(src),
        "// head\n\n// about a\na   = 1      // one\nbbb = \"long\" // two\n/* own */\nc = 2\n// tail\n"
    );
}

#[test]
fn the_blank_line_before_a_block_goes_above_its_comments() {
    let src = "x {\n  a = 1\n  // about inner\n  inner { b = 2 }\n}\n";
    assert_eq!(
        fmt(src),
        "x {\n\ta = 1\n\n\t// about inner\n\tinner {\n\t\tb = 2\n\t}\n}\n"
    );
}

#[test]
fn block_header_comments_and_comment_only_bodies_stay() {
    let src = "a { // why\n}\nb {\n// only this\n}\nc \"l\" {   }\n";
    assert_eq!(
        fmt(src),
        "a { // why\n}\n\nb {\n\t// only this\n}\n\nc \"l\" { }\n"
    );
}

#[test]
fn lists_keep_the_users_line_breaks_and_get_trailing_commas_only_when_open() {
    let src = "a = [1,2,3,]\nb = [\n1, 2,\n3]\nc = [\n  \"x\",\n  \"y\"\n]\nd = [ // why\n 1, // one\n // own\n 2,\n]\n";
    assert_eq!(
        fmt(src),
        "a = [1, 2, 3]\nb = [\n\t1, 2,\n\t3]\nc = [\n\t\"x\",\n\t\"y\",\n]\nd = [ // why\n\t1, // one\n\t// own\n\t2,\n]\n"
    );
}

#[test]
fn object_fields_align_and_a_multi_line_value_ends_the_run() {
    let src = "t = {\na = 1,\nlonger = {\nx = 1,\nyy = 2,\n},\nz = [1],\n}\ninline = [{__address__ = \"h:1\", job=\"j\"}]\n";
    assert_eq!(
        fmt(src),
        "t = {\n\ta      = 1,\n\tlonger = {\n\t\tx  = 1,\n\t\tyy = 2,\n\t},\n\tz = [1],\n}\ninline = [{__address__ = \"h:1\", job = \"j\"}]\n"
    );
}

#[test]
fn literals_are_kept_as_written() {
    let src = "a = \"tab\\there \\u00e9\"\nb = `raw\\n\nline`\nc = -1.5e3\nd = 1_000\ne = null\n";
    let out = fmt(src);
    assert_eq!(
        out,
        "a = \"tab\\there \\u00e9\"\nb = `raw\\n\nline`\nc = -1.5e3\nd = 1_000\ne = null\n"
    );
}

#[test]
fn calls_and_references_format_like_lists() {
    let src = "a = concat(discovery.file.x.targets,[{__address__=\"h:1\"}])\nb = sys.env(\n\"HOST\",\n)\n";
    assert_eq!(
        fmt(src),
        "a = concat(discovery.file.x.targets, [{__address__ = \"h:1\"}])\nb = sys.env(\n\t\"HOST\",\n)\n"
    );
}

#[test]
fn comments_inside_a_statement_move_above_it() {
    let src = "a /* odd */ = 1\nb = 2\n";
    assert_eq!(fmt(src), "/* odd */\na = 1\nb = 2\n");
}

#[test]
fn syntax_errors_are_reported_with_their_position() {
    let e = format("a {\n  b = [1 2]\n}\n", "f.alloy").unwrap_err();
    assert_eq!(
        e.to_string(),
        "f.alloy:2:10: expected `,` or `]` in list, found number 2"
    );
}

#[test]
fn the_shipped_configuration_formats_with_its_comments() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/base/config.alloy");
    let src = std::fs::read_to_string(path).unwrap();
    let out = fmt(&src);
    assert!(out.contains("\trule {\n\t\tsource_labels = [\"__meta_kubernetes_pod_phase\"]\n\t\tregex         = \"Succeeded|Failed\"\n"), "{out}");
    assert!(
        out.contains(
            "\n\n\t// Completed pods keep their IP for a while; nothing serves there.\n\trule {"
        ),
        "{out}"
    );
}

/// A piece of configuration text with random layout: values nest, elements are separated by
/// random whitespace (newlines included) and comments are sprinkled where a comment may go.
fn gap() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(" ".to_string()),
        2 => Just("\n".to_string()),
        1 => Just("\n\n  ".to_string()),
        1 => Just(" // c\n".to_string()),
        1 => Just(" /* b */ ".to_string()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("1".to_string()),
        Just("\"s\"".to_string()),
        Just("true".to_string()),
        Just("`raw`".to_string()),
        Just("discovery.file.a.targets".to_string()),
        Just("-2.5".to_string()),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec((gap(), inner.clone(), gap()), 0..4).prop_map(|v| {
                let items: Vec<String> = v
                    .into_iter()
                    .map(|(a, x, b)| format!("{a}{x}{b}"))
                    .collect();
                format!("[{}]", items.join(","))
            }),
            prop::collection::vec((gap(), inner.clone(), gap()), 0..4).prop_map(|v| {
                let items: Vec<String> = v
                    .into_iter()
                    .enumerate()
                    .map(|(i, (a, x, b))| format!("{a}k{i} = {x}{b}"))
                    .collect();
                format!("{{{}}}", items.join(","))
            }),
            prop::collection::vec((gap(), inner, gap()), 0..3).prop_map(|v| {
                let items: Vec<String> = v
                    .into_iter()
                    .map(|(a, x, b)| format!("{a}{x}{b}"))
                    .collect();
                format!("concat({})", items.join(","))
            }),
        ]
    })
}

fn stmt() -> impl Strategy<Value = String> {
    let attr = (0usize..3, value(), gap()).prop_map(|(n, v, g)| {
        let name = ["a", "long_name", "mid"][n];
        format!(
            "{name} = {v}{}",
            if g.contains("//") { " // t\n" } else { "\n" }
        )
    });
    attr.prop_recursive(2, 12, 4, |inner| {
        (prop::collection::vec((gap(), inner), 0..4), any::<bool>()).prop_map(|(v, label)| {
            let body: String = v.into_iter().map(|(g, s)| format!("{g}{s}\n")).collect();
            let label = if label { " \"x\"" } else { "" };
            format!("blk.kind{label} {{{body}}}\n")
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever the layout, formatting succeeds (which includes the check that the meaning
    /// and every comment are kept) and a second pass changes nothing.
    #[test]
    fn formatting_keeps_meaning_and_comments_and_is_idempotent(
        stmts in prop::collection::vec((gap(), stmt()), 1..5)
    ) {
        let src: String = stmts.into_iter().map(|(g, s)| format!("{g}{s}")).collect();
        prop_assume!(syntax::parse(&src, "p.alloy").is_ok());
        let once = format(&src, "p.alloy");
        prop_assert!(once.is_ok(), "{:?}\n--- input:\n{}", once, src);
        let once = once.unwrap();
        let twice = format(&once, "p.alloy").unwrap();
        prop_assert_eq!(&once, &twice, "input:\n{}", src);
    }
}
