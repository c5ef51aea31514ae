use super::*;
use crate::config::syntax::parse;
use std::collections::BTreeMap;

struct FakeEnv(BTreeMap<&'static str, &'static str>);

impl Environment for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.to_string())
    }
    fn hostname(&self) -> String {
        "host-7".into()
    }
}

fn env() -> FakeEnv {
    FakeEnv(BTreeMap::from([
        ("REGION", "eu-west"),
        ("JSON", r#"{"b": [1, "x"], "a": true}"#),
    ]))
}

/// Folds `a = EXPR` and returns the value of `a`.
fn eval(expr: &str) -> Result<ExprKind, String> {
    let mut body = parse(&format!("a = {expr}\n"), "t.alloy").map_err(|e| e.to_string())?;
    fold_body(&mut body, "t.alloy", &env()).map_err(|e| e.to_string())?;
    let Stmt::Attr(a) = &body.stmts[0] else {
        panic!()
    };
    Ok(a.value.kind.clone())
}

fn s(v: &str) -> ExprKind {
    ExprKind::Str(v.into())
}

fn strs(items: &[&str]) -> ExprKind {
    ExprKind::List(
        items
            .iter()
            .map(|i| Expr {
                pos: Pos { line: 1, col: 1 },
                kind: s(i),
            })
            .collect(),
    )
}

/// Lists compare by their values only (positions differ).
fn values(k: &ExprKind) -> String {
    match k {
        ExprKind::List(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| values(&i.kind))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ExprKind::Object(f) => format!(
            "{{{}}}",
            f.iter()
                .map(|(k, _, v)| format!("{k}={}", values(&v.kind)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ExprKind::Str(x) => format!("{x:?}"),
        other => format!("{other:?}"),
    }
}

#[test]
fn sys_env_reads_the_environment_and_is_empty_when_unset() {
    assert_eq!(eval(r#"sys.env("REGION")"#).unwrap(), s("eu-west"));
    assert_eq!(eval(r#"env("REGION")"#).unwrap(), s("eu-west"));
    assert_eq!(eval(r#"sys.env("NOPE")"#).unwrap(), s(""));
}

#[test]
fn constants_name_the_host_os_and_arch_as_go_does() {
    assert_eq!(eval("constants.hostname").unwrap(), s("host-7"));
    assert_eq!(eval("constants.os").unwrap(), s(go_os()));
    assert_eq!(eval("constants.arch").unwrap(), s(go_arch()));
    let e = eval("constants.cpus").unwrap_err();
    assert!(
        e.starts_with("t.alloy:1:5: unknown constant `constants.cpus`"),
        "{e}"
    );
}

#[test]
fn string_functions_behave_as_go() {
    assert_eq!(
        eval(r#"format("%s-%d-%05.1f-%q-%t-%3s|%-3s|", "a", 7, 3.14159, "q\"", true, "x", "y")"#)
            .unwrap(),
        s("a-7-003.1-\"q\\\"\"-true-  x|y  |")
    );
    assert_eq!(
        eval(r#"format("%s %s", "only")"#).unwrap(),
        s("only %!s(MISSING)")
    );
    assert_eq!(eval(r#"format("100%%")"#).unwrap(), s("100%"));
    assert_eq!(eval(r#"join(["a", "b", "c"], ",")"#).unwrap(), s("a,b,c"));
    assert_eq!(
        values(&eval(r#"split("a,b,,c", ",")"#).unwrap()),
        values(&strs(&["a", "b", "", "c"]))
    );
    assert_eq!(eval(r#"replace("a.b.c", ".", "_")"#).unwrap(), s("a_b_c"));
    assert_eq!(eval(r#"to_lower("ÄBC")"#).unwrap(), s("äbc"));
    assert_eq!(eval(r#"string.to_upper("äbc")"#).unwrap(), s("ÄBC"));
    assert_eq!(eval(r#"trim("--a-b--", "-")"#).unwrap(), s("a-b"));
    assert_eq!(eval(r#"trim_prefix("prod-eu", "prod-")"#).unwrap(), s("eu"));
    assert_eq!(eval(r#"trim_suffix("prod-eu", "-eu")"#).unwrap(), s("prod"));
    assert_eq!(eval(r#"trim_space("  x \n")"#).unwrap(), s("x"));
    assert_eq!(
        eval(r#"nonsensitive(sys.env("REGION"))"#).unwrap(),
        s("eu-west")
    );
}

#[test]
fn coalesce_takes_the_first_non_zero_value() {
    assert_eq!(
        eval(r#"coalesce(sys.env("NOPE"), "", "fallback", "later")"#).unwrap(),
        s("fallback")
    );
    assert_eq!(
        eval(r#"coalesce("", 0, false)"#).unwrap(),
        ExprKind::Bool(false)
    );
}

#[test]
fn concat_of_values_is_one_list_and_of_exports_stays_a_call() {
    assert_eq!(
        values(&eval(r#"concat(["a"], [], ["b", "c"])"#).unwrap()),
        values(&strs(&["a", "b", "c"]))
    );
    let kept = eval("concat(discovery.file.a.targets, [{__address__ = \"h:1\"}])").unwrap();
    assert!(matches!(kept, ExprKind::Call(ref n, ref args) if n == &["concat"] && args.len() == 2));
}

#[test]
fn json_decode_gives_objects_lists_and_scalars() {
    assert_eq!(
        values(&eval(r#"json_decode(sys.env("JSON"))"#).unwrap()),
        "{a=Bool(true), b=[Num(1.0), \"x\"]}"
    );
    let e = eval(r#"encoding.from_json("{")"#).unwrap_err();
    assert!(
        e.starts_with("t.alloy:1:5: `json_decode`: invalid JSON"),
        "{e}"
    );
}

#[test]
fn bad_calls_name_the_function_and_position() {
    let e = eval(r#"sys.envv("X")"#).unwrap_err();
    assert!(
        e.starts_with("t.alloy:1:5: unknown function `sys.envv`; expected one of: sys.env, concat"),
        "{e}"
    );
    assert_eq!(
        eval(r#"to_lower("a", "b")"#).unwrap_err(),
        "t.alloy:1:5: `to_lower` takes 1 argument, got 2"
    );
    assert_eq!(
        eval(r#"join("a", ",")"#).unwrap_err(),
        "t.alloy:1:10: `join`: argument 1 must be a list, got string"
    );
    assert_eq!(
        eval("to_upper(discovery.file.a.targets)").unwrap_err(),
        "t.alloy:1:14: `string.to_upper` cannot take a component export; expected a value"
            .replace("string.", "")
    );
    assert!(eval(r#"format("%2000d", 1)"#)
        .unwrap_err()
        .contains("width or precision over 1024"));
}

#[test]
fn calls_fold_inside_blocks_lists_and_objects() {
    let mut body = parse(
        "x \"y\" {\n  labels = {region = sys.env(\"REGION\"), host = constants.hostname}\n  inner { v = [to_upper(\"a\")] }\n}\n",
        "t.alloy",
    )
    .unwrap();
    fold_body(&mut body, "t.alloy", &env()).unwrap();
    let Stmt::Block(b) = &body.stmts[0] else {
        panic!()
    };
    let Stmt::Attr(labels) = &b.body.stmts[0] else {
        panic!()
    };
    assert_eq!(
        values(&labels.value.kind),
        "{region=\"eu-west\", host=\"host-7\"}"
    );
    let Stmt::Block(inner) = &b.body.stmts[1] else {
        panic!()
    };
    let Stmt::Attr(v) = &inner.body.stmts[0] else {
        panic!()
    };
    assert_eq!(values(&v.value.kind), "[\"A\"]");
}
