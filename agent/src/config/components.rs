//! The evaluators of the Prometheus components with HTTP clients: `prometheus.scrape` and
//! `prometheus.remote_write` (with its `endpoint` and `queue_config` blocks). Component
//! references and target lists are [`super::eval`]'s; client settings are
//! [`super::client`]'s.

use std::collections::BTreeMap;

use super::client::{client_settings, Headers, CLIENT_ATTRS, CLIENT_BLOCKS};
use super::duration::{format_duration, parse_bytes};
use super::error::ConfigError;
use super::eval::{RefCx, KIND_REMOTE_WRITE, KIND_SCRAPE};
use super::fields::{Cx, Fields};
use super::model::*;
use super::syntax::{Block, ExprKind};

impl RefCx<'_> {
    pub(super) fn scrape(&self, block: &Block, name: &str) -> Result<ScrapeConfig, ConfigError> {
        let cx = &self.cx;
        let what = format!("{KIND_SCRAPE} \"{name}\"");
        let attrs: Vec<&str> = [
            "targets",
            "forward_to",
            "job_name",
            "scrape_interval",
            "scrape_timeout",
            "metrics_path",
            "scheme",
            "honor_labels",
            "honor_timestamps",
            "body_size_limit",
            "params",
            "http_headers",
        ]
        .into_iter()
        .chain(CLIENT_ATTRS.iter().copied())
        .collect();
        let blocks: Vec<&str> = ["clustering"]
            .into_iter()
            .chain(CLIENT_BLOCKS.iter().copied())
            .collect();
        let f = Fields::new(cx, &block.body, &what, &attrs, &blocks)?;
        let mut c = ScrapeConfig::with_defaults(name);

        let targets_expr = f.required(cx, block, &what, "targets")?;
        c.targets = self.targets(targets_expr)?;
        if let ExprKind::List(items) = &targets_expr.kind {
            for (t, item) in c.targets.iter().zip(items) {
                if matches!(t, TargetsSource::Static(t) if t.address().is_empty()) {
                    return Err(cx.err(
                        item.pos,
                        "target has no \"__address__\"; expected {\"__address__\" = \"host:port\", ...}",
                    ));
                }
            }
        }
        c.forward_to = self.receivers(f.required(cx, block, &what, "forward_to")?)?;

        if let Some(e) = f.get("job_name") {
            c.job_name = cx.string(e)?;
            if c.job_name.is_empty() {
                return Err(cx.err(e.pos, "expected a non-empty job_name"));
            }
        }
        if let Some(e) = f.get("scrape_interval") {
            c.scrape_interval = cx.positive_duration(e)?;
        }
        if let Some(e) = f.get("scrape_timeout") {
            c.scrape_timeout = cx.positive_duration(e)?;
        }
        if c.scrape_timeout > c.scrape_interval {
            let pos = f
                .get("scrape_timeout")
                .or(f.get("scrape_interval"))
                .map(|e| e.pos)
                .unwrap_or(block.pos);
            return Err(cx.err(
                pos,
                format!(
                    "scrape_timeout ({}) is greater than scrape_interval ({}); expected scrape_timeout <= scrape_interval",
                    format_duration(c.scrape_timeout),
                    format_duration(c.scrape_interval)
                ),
            ));
        }
        if let Some(e) = f.get("metrics_path") {
            c.metrics_path = cx.string(e)?;
            if !c.metrics_path.starts_with('/') {
                return Err(cx.err(
                    e.pos,
                    format!(
                        "invalid metrics_path {:?}; expected a path starting with \"/\"",
                        c.metrics_path
                    ),
                ));
            }
        }
        if let Some(e) = f.get("scheme") {
            c.scheme = cx.string(e)?;
            if c.scheme != "http" && c.scheme != "https" {
                return Err(cx.err(
                    e.pos,
                    format!(
                        "unsupported scheme {:?}; expected \"http\" or \"https\"",
                        c.scheme
                    ),
                ));
            }
        }
        if let Some(e) = f.get("honor_labels") {
            c.honor_labels = cx.bool(e)?;
        }
        if let Some(e) = f.get("honor_timestamps") {
            c.honor_timestamps = cx.bool(e)?;
        }
        if let Some(e) = f.get("body_size_limit") {
            let s = cx.string(e)?;
            c.body_size_limit_bytes = parse_bytes(&s).filter(|b| *b > 0).ok_or_else(|| {
                cx.err(
                    e.pos,
                    format!("invalid size {s:?}; expected a size like \"64MiB\""),
                )
            })?;
        }
        if let Some(e) = f.get("params") {
            let ExprKind::Object(fields) = &e.kind else {
                return Err(cx.type_err(e, "object of parameter names to lists of strings"));
            };
            for (k, _, v) in fields {
                c.params.insert(k.clone(), cx.string_list(v)?);
            }
        }
        c.client = client_settings(cx, block, &f, &what, Headers::ListValued("http_headers"))?;
        c.clustering_enabled = clustering_block(cx, &f, &what)?;
        Ok(c)
    }

    pub(super) fn remote_write(
        &self,
        block: &Block,
        name: &str,
    ) -> Result<RemoteWriteConfig, ConfigError> {
        let cx = &self.cx;
        let what = format!("{KIND_REMOTE_WRITE} \"{name}\"");
        let f = Fields::new(
            cx,
            &block.body,
            &what,
            &["external_labels"],
            &["endpoint", "wal"],
        )?;
        let external_labels = match f.get("external_labels") {
            Some(e) => cx.labels(e)?,
            None => BTreeMap::new(),
        };
        let mut endpoints = Vec::new();
        for b in f.blocks.iter().filter(|b| b.name == "endpoint") {
            endpoints.push(self.endpoint(b, &what)?);
        }
        if endpoints.is_empty() {
            return Err(cx.err(
                block.pos,
                format!("{what} has no endpoint; expected `endpoint {{ url = \"http://host:9090/api/v1/write\" }}`"),
            ));
        }
        let mut wal = WalConfig::default();
        if let Some(b) = f.single_block(cx, "wal", &what)? {
            let wwhat = format!("wal block of {what}");
            let names = [
                "truncate_frequency",
                "min_keepalive_time",
                "max_keepalive_time",
                "max_size",
            ];
            let wf = Fields::new(cx, &b.body, &wwhat, &names, &[])?;
            if let Some(x) = wf.get("truncate_frequency") {
                wal.truncate_frequency = cx.positive_duration(x)?;
            }
            if let Some(x) = wf.get("min_keepalive_time") {
                wal.min_keepalive_time = cx.duration(x)?;
            }
            if let Some(x) = wf.get("max_keepalive_time") {
                wal.max_keepalive_time = cx.positive_duration(x)?;
            }
            if let Some(x) = wf.get("max_size") {
                let s = cx.string(x)?;
                wal.max_size_bytes = parse_bytes(&s).filter(|b| *b > 0).ok_or_else(|| {
                    cx.err(
                        x.pos,
                        format!("invalid size {s:?}; expected a size like \"4GiB\""),
                    )
                })?;
            }
            if wal.min_keepalive_time > wal.max_keepalive_time {
                return Err(cx.err(
                    b.pos,
                    "min_keepalive_time is greater than max_keepalive_time; expected min_keepalive_time <= max_keepalive_time",
                ));
            }
        }
        Ok(RemoteWriteConfig {
            name: name.to_string(),
            endpoints,
            external_labels,
            wal,
        })
    }

    fn endpoint(&self, block: &Block, parent: &str) -> Result<EndpointConfig, ConfigError> {
        let cx = &self.cx;
        let what = format!("endpoint block of {parent}");
        let attrs: Vec<&str> = ["url", "name", "remote_timeout", "headers"]
            .into_iter()
            .chain(CLIENT_ATTRS.iter().copied())
            .collect();
        let blocks: Vec<&str> = ["queue_config", "metadata_config"]
            .into_iter()
            .chain(CLIENT_BLOCKS.iter().copied())
            .collect();
        let f = Fields::new(cx, &block.body, &what, &attrs, &blocks)?;
        let url_expr = f.required(cx, block, &what, "url")?;
        let url = cx.string(url_expr)?;
        let valid = url.parse::<hyper::Uri>().ok().filter(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some()
        });
        if valid.is_none() {
            return Err(cx.err(
                url_expr.pos,
                format!("invalid url {url:?}; expected an http:// or https:// URL such as \"https://mimir.example.com/api/v1/push\""),
            ));
        }
        let mut e = EndpointConfig::with_defaults(&url);
        if let Some(x) = f.get("name") {
            e.name = cx.string(x)?;
        }
        if let Some(x) = f.get("remote_timeout") {
            e.remote_timeout = cx.positive_duration(x)?;
        }
        e.client = client_settings(cx, block, &f, &what, Headers::Plain("headers"))?;
        if let Some(q) = f.single_block(cx, "queue_config", &what)? {
            let qwhat = format!("queue_config block of {parent}");
            let qf = Fields::new(
                cx,
                &q.body,
                &qwhat,
                &[
                    "capacity",
                    "min_shards",
                    "max_shards",
                    "max_samples_per_send",
                    "batch_send_deadline",
                    "min_backoff",
                    "max_backoff",
                    "retry_on_http_429",
                ],
                &[],
            )?;
            let queue = &mut e.queue;
            if let Some(x) = qf.get("capacity") {
                queue.capacity = cx.count(x, 1)?;
            }
            if let Some(x) = qf.get("min_shards") {
                queue.min_shards = cx.count(x, 1)?;
            }
            if let Some(x) = qf.get("max_shards") {
                queue.max_shards = cx.count(x, 1)?;
            }
            if queue.min_shards > queue.max_shards {
                return Err(cx.err(
                    q.pos,
                    "min_shards is greater than max_shards; expected min_shards <= max_shards",
                ));
            }
            if let Some(x) = qf.get("max_samples_per_send") {
                queue.max_samples_per_send = cx.count(x, 1)?;
            }
            if let Some(x) = qf.get("batch_send_deadline") {
                queue.batch_send_deadline = cx.positive_duration(x)?;
            }
            if let Some(x) = qf.get("min_backoff") {
                queue.min_backoff = cx.positive_duration(x)?;
            }
            if let Some(x) = qf.get("max_backoff") {
                queue.max_backoff = cx.positive_duration(x)?;
            }
            if let Some(x) = qf.get("retry_on_http_429") {
                queue.retry_on_http_429 = cx.bool(x)?;
            }
            if queue.min_backoff > queue.max_backoff {
                return Err(cx.err(
                    q.pos,
                    "min_backoff is greater than max_backoff; expected min_backoff <= max_backoff",
                ));
            }
        }
        if let Some(m) = f.single_block(cx, "metadata_config", &what)? {
            let mwhat = format!("metadata_config block of {parent}");
            let mf = Fields::new(
                cx,
                &m.body,
                &mwhat,
                &["send", "send_interval", "max_samples_per_send"],
                &[],
            )?;
            if let Some(x) = mf.get("send") {
                e.metadata.send = cx.bool(x)?;
            }
            if let Some(x) = mf.get("send_interval") {
                e.metadata.send_interval = cx.positive_duration(x)?;
            }
            if let Some(x) = mf.get("max_samples_per_send") {
                e.metadata.max_samples_per_send = cx.count(x, 1)?;
            }
        }
        Ok(e)
    }
}

/// `clustering { enabled = BOOL }` of a scraping component (at most one; `enabled` required);
/// false without the block.
pub(super) fn clustering_block(cx: &Cx, f: &Fields, what: &str) -> Result<bool, ConfigError> {
    let Some(b) = f.single_block(cx, "clustering", what)? else {
        return Ok(false);
    };
    let inner_what = format!("clustering block of {what}");
    let cf = Fields::new(cx, &b.body, &inner_what, &["enabled"], &[])?;
    cx.bool(cf.required(cx, b, &inner_what, "enabled")?)
}
