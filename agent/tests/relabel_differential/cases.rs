//! The case table for the differential test, and its renderings as
//! Prometheus YAML and as Alloy `rule { ... }` blocks.

use std::collections::BTreeMap;

pub type Labels = BTreeMap<String, String>;

/// One relabel rule as plain data: only the fields a user wrote are set.
#[derive(Debug, Clone, Default)]
pub struct RuleData {
    pub source_labels: Option<Vec<String>>,
    pub separator: Option<String>,
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    pub target_label: Option<String>,
    pub replacement: Option<String>,
    pub action: Option<String>,
}

/// A rule with `action` set.
pub fn r(action: &str) -> RuleData {
    RuleData {
        action: Some(action.into()),
        ..RuleData::default()
    }
}

impl RuleData {
    pub fn src(mut self, names: &[&str]) -> Self {
        self.source_labels = Some(names.iter().map(|s| s.to_string()).collect());
        self
    }
    pub fn sep(mut self, s: &str) -> Self {
        self.separator = Some(s.into());
        self
    }
    pub fn regex(mut self, s: &str) -> Self {
        self.regex = Some(s.into());
        self
    }
    pub fn modulus(mut self, m: u64) -> Self {
        self.modulus = Some(m);
        self
    }
    pub fn target(mut self, s: &str) -> Self {
        self.target_label = Some(s.into());
        self
    }
    pub fn repl(mut self, s: &str) -> Self {
        self.replacement = Some(s.into());
        self
    }

    /// (name, rendered value) of every written field; `quote` renders strings.
    fn fields(&self, quote: fn(&str) -> String) -> Vec<(&'static str, String)> {
        let mut f = Vec::new();
        if let Some(s) = &self.source_labels {
            let items: Vec<String> = s.iter().map(|x| quote(x)).collect();
            f.push(("source_labels", format!("[{}]", items.join(", "))));
        }
        let strs = [("separator", &self.separator), ("regex", &self.regex)];
        for (name, v) in strs {
            if let Some(v) = v {
                f.push((name, quote(v)));
            }
        }
        if let Some(m) = self.modulus {
            f.push(("modulus", m.to_string()));
        }
        let strs = [
            ("target_label", &self.target_label),
            ("replacement", &self.replacement),
            ("action", &self.action),
        ];
        for (name, v) in strs {
            if let Some(v) = v {
                f.push((name, quote(v)));
            }
        }
        f
    }
}

/// YAML double-quoted scalar (JSON string syntax is valid YAML).
fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("string to JSON")
}

/// Alloy string literal: Go-style escapes.
fn alloy_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub struct Case {
    pub name: &'static str,
    pub rules: Vec<RuleData>,
    /// Input label sets, each with a unique `__address__` (assigned by
    /// [`cases`] unless written).
    pub targets: Vec<Labels>,
    /// When set, the case is rendered and run but not compared, because the
    /// agent's model deliberately differs from Prometheus 2.42 here.
    pub known_divergence: Option<&'static str>,
}

impl Case {
    pub fn inputs(&self) -> Vec<Labels> {
        self.targets.clone()
    }

    /// The rules as Alloy `rule { ... }` blocks (only written fields).
    pub fn to_alloy_rules(&self) -> String {
        let mut out = String::new();
        for rule in &self.rules {
            out.push_str("rule {\n");
            for (name, value) in rule.fields(alloy_str) {
                out.push_str(&format!("  {name} = {value}\n"));
            }
            out.push_str("}\n");
        }
        out
    }

    /// One `scrape_configs` entry (indented for a top-level list) for input `index` alone.
    /// One target per job: Prometheus 2.42 reports `discoveredLabels` after relabeling (its
    /// label builder is shared), so targets cannot be told apart by their input labels; the
    /// job (scrape pool) identifies them instead.
    pub fn to_prometheus_job(&self, job: &str, index: usize) -> String {
        let mut out = format!(
            "  - job_name: {}\n    scrape_interval: 1h\n    scrape_timeout: 10s\n    static_configs:\n",
            yaml_str(job)
        );
        for t in &self.targets[index..=index] {
            let labels: Vec<String> = t
                .iter()
                .filter(|(k, _)| *k != "__address__")
                .map(|(k, v)| format!("{}: {}", yaml_str(k), yaml_str(v)))
                .collect();
            out.push_str(&format!(
                "      - targets: [{}]\n        labels: {{{}}}\n",
                yaml_str(&t["__address__"]),
                labels.join(", ")
            ));
        }
        out.push_str("    relabel_configs:\n");
        for rule in &self.rules {
            for (i, (name, value)) in rule.fields(yaml_str).into_iter().enumerate() {
                let lead = if i == 0 { "      - " } else { "        " };
                out.push_str(&format!("{lead}{name}: {value}\n"));
            }
        }
        out
    }
}

fn case(name: &'static str, rules: Vec<RuleData>, targets: &[&[(&str, &str)]]) -> Case {
    Case {
        name,
        rules,
        targets: targets
            .iter()
            .map(|t| {
                t.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .collect(),
        known_divergence: None,
    }
}

/// The table. Addresses not written are `127.0.0.1:<unique port>`.
pub fn cases() -> Vec<Case> {
    let mut all = vec![
        case(
            "replace_default_action_copies_value",
            vec![RuleData::default().src(&["env"]).target("env_copy")],
            &[&[("env", "prod")], &[]],
        ),
        case(
            "replace_multi_source_custom_separator",
            vec![r("replace")
                .src(&["a", "b", "c"])
                .sep("/")
                .regex("(.*)/(.*)/(.*)")
                .repl("$3-$2-$1")
                .target("joined")],
            &[
                &[("a", "1"), ("b", "2"), ("c", "3")],
                &[("a", "1"), ("c", "3")],
            ],
        ),
        case(
            "replace_missing_source_is_empty_string",
            vec![r("replace")
                .src(&["nope"])
                .regex("")
                .repl("was_empty")
                .target("flag")],
            &[&[], &[("nope", "x")]],
        ),
        case(
            "replace_empty_match_deletes_target",
            vec![r("replace").src(&["missing"]).target("env")],
            &[&[("env", "prod")]],
        ),
        case(
            "replace_regex_is_anchored",
            vec![r("replace")
                .src(&["env"])
                .regex("prod")
                .repl("matched")
                .target("m")],
            &[&[("env", "production")], &[("env", "prod")]],
        ),
        case(
            "replace_braced_vs_longest_name",
            vec![
                r("replace")
                    .src(&["v"])
                    .regex("(.+)")
                    .repl("${1}x")
                    .target("t1"),
                r("replace")
                    .src(&["v"])
                    .regex("(.+)")
                    .repl("$1x")
                    .target("t2"),
            ],
            &[&[("v", "val"), ("t2", "pre")]],
        ),
        case(
            "replace_named_groups",
            vec![r("replace")
                .src(&["__address__"])
                .regex("(?P<host>[^:]+):(?P<port>[0-9]+)")
                .repl("${port}_$host")
                .target("hp")],
            &[&[]],
        ),
        case(
            "replace_target_label_from_capture",
            vec![r("replace")
                .src(&["__meta_kv"])
                .regex("([a-z]+)=(.*)")
                .target("tag_$1")
                .repl("$2")],
            &[&[("__meta_kv", "env=prod")], &[("__meta_kv", "Bad=1")]],
        ),
        case(
            "replace_invalid_expanded_target_ignored",
            vec![r("replace").src(&["__meta_name"]).target("$1").repl("v")],
            &[
                &[("__meta_name", "bad-name")],
                &[("__meta_name", "goodname")],
                &[("__meta_name", "9lives")],
            ],
        ),
        case(
            "replace_rewrites_address_port",
            vec![r("replace")
                .src(&["__address__"])
                .regex("([^:]+):\\d+")
                .repl("$1:9999")
                .target("__address__")],
            &[&[]],
        ),
        case(
            "replace_empties_address_target_gone",
            vec![r("replace").src(&["__meta_addr"]).target("__address__")],
            &[&[], &[("__meta_addr", "127.0.0.9:9100")]],
        ),
        case(
            "replace_unicode_values",
            vec![r("replace")
                .src(&["name"])
                .regex("(.)(.*)")
                .repl("$2<$1>")
                .target("rot")],
            &[&[("name", "ünïcödé✓")], &[("name", "日本語")]],
        ),
        case(
            "replace_perl_classes_are_ascii",
            vec![
                r("replace")
                    .src(&["v"])
                    .regex("(\\w*)(\\W.*)?")
                    .repl("[$1|$2]")
                    .target("w"),
                r("replace")
                    .src(&["v"])
                    .regex("(\\d*).*")
                    .repl("d=$1")
                    .target("d"),
            ],
            &[&[("v", "abé1")], &[("v", "٣4")]],
        ),
        case(
            "replace_dollar_literals_and_malformed_refs",
            vec![r("replace")
                .src(&["v"])
                .regex("(.*)")
                .repl("$$1 $- ${1 ${1} $01.")
                .target("t")],
            &[&[("v", "x")]],
        ),
        case(
            "replace_case_insensitive_flag",
            vec![r("replace")
                .src(&["v"])
                .regex("(?i)(prod)uction")
                .repl("$1")
                .target("t")],
            &[&[("v", "PRODuction")], &[("v", "prod")]],
        ),
        case(
            "replace_go_literal_brace_and_bracket",
            vec![
                r("replace")
                    .src(&["v"])
                    .regex("a{(.*)}")
                    .repl("$1")
                    .target("brace"),
                r("replace")
                    .src(&["w"])
                    .regex("[[]([^]]*)]")
                    .repl("$1")
                    .target("bracket"),
            ],
            &[&[("v", "a{zz}"), ("w", "[in]")]],
        ),
        case(
            "keep_by_regex",
            vec![r("keep").src(&["env"]).regex("prod|stage")],
            &[
                &[("env", "prod")],
                &[("env", "dev")],
                &[("env", "stage")],
                &[],
            ],
        ),
        case(
            "keep_dot_does_not_match_newline",
            vec![r("keep").src(&["v"]).regex(".*")],
            &[&[("v", "a\nb")], &[("v", "ab")]],
        ),
        case(
            "drop_by_regex",
            vec![r("drop").src(&["env"]).regex("dev.*")],
            &[&[("env", "dev1")], &[("env", "prod")], &[]],
        ),
        case(
            "drop_multi_source_custom_separator",
            vec![r("drop").src(&["a", "b"]).sep(",").regex("x,y")],
            &[&[("a", "x"), ("b", "y")], &[("a", "x")], &[("a", "x,y")]],
        ),
        case(
            "keepequal",
            vec![r("keepequal").src(&["a"]).target("b")],
            &[&[("a", "1"), ("b", "1")], &[("a", "1"), ("b", "2")], &[]],
        ),
        case(
            "dropequal_multi_source",
            vec![r("dropequal").src(&["a", "b"]).target("c")],
            &[
                &[("a", "1"), ("b", "2"), ("c", "1;2")],
                &[("a", "1"), ("c", "1")],
                &[("a", "1")],
            ],
        ),
        case(
            "hashmod_address",
            vec![r("hashmod")
                .src(&["__address__"])
                .modulus(4)
                .target("shard")],
            &[&[], &[], &[], &[]],
        ),
        case(
            "hashmod_then_keep_shard",
            vec![
                r("hashmod")
                    .src(&["__address__", "svc"])
                    .modulus(2)
                    .target("__tmp_shard"),
                r("keep").src(&["__tmp_shard"]).regex("0"),
            ],
            &[
                &[("svc", "a")],
                &[("svc", "b")],
                &[("svc", "c")],
                &[("svc", "d")],
            ],
        ),
        case(
            "labelmap_meta",
            vec![r("labelmap").regex("__meta_(.+)")],
            &[&[("__meta_zone", "eu"), ("__meta_rack", "r1"), ("plain", "x")]],
        ),
        case(
            "labelmap_custom_replacement",
            vec![r("labelmap")
                .regex("__meta_k8s_label_(.+)")
                .repl("k8s_${1}")],
            &[&[
                ("__meta_k8s_label_app", "web"),
                ("__meta_k8s_label_tier", "fe"),
                ("__meta_other", "o"),
            ]],
        ),
        case(
            "labelmap_collision_last_sorted_wins",
            vec![r("labelmap").regex("__meta_(?:a|b)_(x)")],
            &[
                &[("__meta_a_x", "from_a"), ("__meta_b_x", "from_b")],
                &[("__meta_a_x", "only_a"), ("x", "orig")],
            ],
        ),
        case(
            "labeldrop",
            vec![r("labeldrop").regex("tmp_.*|debug")],
            &[&[("tmp_a", "1"), ("debug", "1"), ("keep", "k")]],
        ),
        case(
            "labelkeep_keeps_internal_and_job",
            vec![r("labelkeep").regex("__.*|job|keep_.*")],
            &[&[("keep_a", "1"), ("other", "2"), ("__meta_x", "m")]],
        ),
        case(
            "lowercase_unicode",
            vec![r("lowercase").src(&["v"]).target("lc")],
            &[
                &[("v", "ÄÖÜ Straße")],
                &[("v", "İSTANBUL")],
                &[("v", "ΣΑΣ ǅ")],
            ],
        ),
        case(
            "uppercase_unicode",
            vec![r("uppercase").src(&["v"]).target("uc")],
            &[&[("v", "straße")], &[("v", "ǆemal ı")], &[("v", "ᾳ ﬁ ŉ")]],
        ),
        case(
            "lowercase_of_empty_deletes_target",
            vec![r("lowercase").src(&["missing"]).target("existing")],
            &[&[("existing", "X")]],
        ),
        case(
            "instance_set_explicitly",
            vec![r("replace")
                .src(&["__meta_host"])
                .regex("(.+)")
                .repl("$1:80")
                .target("instance")],
            &[&[("__meta_host", "web-1")], &[]],
        ),
        case(
            "chain_replace_then_drop",
            vec![
                r("replace").src(&["a"]).target("b"),
                r("drop").src(&["b"]).regex("x"),
            ],
            &[&[("a", "x")], &[("a", "y")]],
        ),
        case(
            "chain_mixed",
            vec![
                r("labelmap").regex("__meta_(.+)"),
                r("replace")
                    .src(&["zone", "rack"])
                    .sep("-")
                    .regex("(.+)-(.+)")
                    .repl("${1}_$2")
                    .target("loc"),
                r("labeldrop").regex("rack"),
                r("uppercase").src(&["zone"]).target("zone"),
                r("hashmod").src(&["loc"]).modulus(3).target("__tmp_h"),
                r("replace").src(&["__tmp_h"]).target("bucket"),
                r("dropequal").src(&["zone"]).target("blocked"),
            ],
            &[
                &[("__meta_zone", "eu"), ("__meta_rack", "r1")],
                &[
                    ("__meta_zone", "us"),
                    ("__meta_rack", "r2"),
                    ("blocked", "US"),
                ],
                &[("__meta_zone", "ap")],
            ],
        ),
        case(
            "replace_template_target_empty_value",
            vec![r("replace")
                .src(&["__meta_k", "v"])
                .regex("(\\w+);(.*)")
                .target("t_$1")
                .repl("$2")],
            &[&[("__meta_k", "a"), ("t_a", "old")]],
        ),
    ];
    if let Some(c) = all
        .iter_mut()
        .find(|c| c.name == "replace_template_target_empty_value")
    {
        c.known_divergence = Some(
            "Prometheus 2.42 deletes the unexpanded target_label \"t_$1\" when the value is empty; \
             2.50+ and Alloy delete the expanded \"t_a\", as the agent does",
        );
    }
    for (i, c) in all.iter_mut().enumerate() {
        for (j, t) in c.targets.iter_mut().enumerate() {
            t.entry("__address__".into())
                .or_insert_with(|| format!("127.0.0.1:{}", 20000 + i * 20 + j));
        }
    }
    all
}
