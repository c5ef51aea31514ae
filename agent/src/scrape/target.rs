//! Turns a discovered [`Target`] into what a scrape loop needs, as Prometheus'
//! `PopulateLabels` does: fill `job`, `__scheme__`, `__metrics_path__` from the scrape config
//! when the target lacks them, set `instance` to `__address__`, build the URL (with
//! `__param_NAME` query parameters), and drop every `__`-prefixed label. No I/O.

use crate::config::ScrapeConfig;
use crate::discovery::Target;

use super::sample::Labels;

/// A target ready to scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    /// Stable identity: hash of the final labels and the URL. Equal on every node for the
    /// same target and config, so the scrape phase (jitter) is the same on every node.
    pub id: u64,
    /// Labels attached to every scraped series: `job`, `instance` and the target's other
    /// non-`__` labels.
    pub labels: Labels,
    pub url: String,
    /// The target as discovered (with `__meta_*`), for status pages.
    pub discovered: Target,
}

impl ScrapeTarget {
    /// Populates labels from `config`. Errors say why a target cannot be scraped.
    pub fn new(target: &Target, config: &ScrapeConfig) -> Result<ScrapeTarget, String> {
        let address = target.address();
        if address.is_empty() {
            return Err("target has no __address__".into());
        }
        if address.contains('/') {
            return Err(format!(
                "invalid __address__ {address:?}; expected host:port"
            ));
        }
        let scheme = target.get("__scheme__").unwrap_or(&config.scheme);
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "unsupported __scheme__ {scheme:?}; expected \"http\" or \"https\""
            ));
        }
        let path = target
            .get("__metrics_path__")
            .unwrap_or(&config.metrics_path);
        let mut url = format!("{scheme}://{address}{path}");
        // Query parameters as Prometheus builds them: the config's `params`, where a
        // target's `__param_NAME` replaces the first value of NAME.
        let mut params: std::collections::BTreeMap<&str, Vec<&str>> = config
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
            .collect();
        for (k, v) in target.labels() {
            if let Some(param) = k.strip_prefix("__param_") {
                let values = params.entry(param).or_default();
                match values.first_mut() {
                    Some(first) => *first = v,
                    None => values.push(v),
                }
            }
        }
        let mut first_param = !path.contains('?');
        for (name, values) in &params {
            for v in values {
                url.push(if first_param { '?' } else { '&' });
                first_param = false;
                url.push_str(&percent_encode(name));
                url.push('=');
                url.push_str(&percent_encode(v));
            }
        }
        url.parse::<hyper::Uri>()
            .map_err(|e| format!("invalid scrape URL {url:?}: {e}"))?;

        let mut pairs: Vec<(String, String)> = target
            .labels()
            .iter()
            .filter(|(k, _)| !k.starts_with("__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if target.get("job").is_none() {
            pairs.push(("job".into(), config.job_name.clone()));
        }
        if target.get("instance").is_none() {
            pairs.push(("instance".into(), address.to_string()));
        }
        let labels = Labels::from_pairs(pairs);

        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        h.update(&labels.hash().to_le_bytes());
        h.update(url.as_bytes());
        Ok(ScrapeTarget {
            id: h.digest(),
            labels,
            url,
            discovered: target.clone(),
        })
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_job_instance_and_url() {
        let cfg = ScrapeConfig::with_defaults("x");
        let t = Target::from_labels([
            ("__address__", "h:9100"),
            ("__meta_filepath", "/f.json"),
            ("env", "prod"),
        ]);
        let s = ScrapeTarget::new(&t, &cfg).unwrap();
        assert_eq!(s.url, "http://h:9100/metrics");
        assert_eq!(
            format!("{:?}", s.labels),
            r#"{env="prod", instance="h:9100", job="prometheus.scrape.x"}"#
        );
    }

    #[test]
    fn target_labels_override_config() {
        let cfg = ScrapeConfig::with_defaults("x");
        let t = Target::from_labels([
            ("__address__", "h:1"),
            ("__metrics_path__", "/probe"),
            ("__param_module", "http 2xx"),
            ("job", "custom"),
            ("instance", "nice-name"),
        ]);
        let s = ScrapeTarget::new(&t, &cfg).unwrap();
        assert_eq!(s.url, "http://h:1/probe?module=http%202xx");
        assert_eq!(s.labels.get("job"), Some("custom"));
        assert_eq!(s.labels.get("instance"), Some("nice-name"));
    }

    #[test]
    fn identity_ignores_meta_labels_but_not_real_ones() {
        let cfg = ScrapeConfig::with_defaults("x");
        let a = Target::from_labels([("__address__", "h:1"), ("__meta_x", "1")]);
        let b = Target::from_labels([("__address__", "h:1"), ("__meta_x", "2")]);
        let c = Target::from_labels([("__address__", "h:1"), ("env", "2")]);
        let id = |t| ScrapeTarget::new(t, &cfg).unwrap().id;
        assert_eq!(id(&a), id(&b));
        assert_ne!(id(&a), id(&c));
    }

    #[test]
    fn params_and_https_build_the_url_and_param_labels_replace_the_first_value() {
        let mut cfg = ScrapeConfig::with_defaults("x");
        cfg.scheme = "https".into();
        cfg.params
            .insert("module".into(), vec!["a".into(), "b".into()]);
        cfg.params.insert("debug".into(), vec!["1".into()]);
        let t = Target::from_labels([("__address__", "h:1"), ("__param_module", "z")]);
        let s = ScrapeTarget::new(&t, &cfg).unwrap();
        assert_eq!(s.url, "https://h:1/metrics?debug=1&module=z&module=b");
    }

    #[test]
    fn missing_address_is_an_error() {
        let cfg = ScrapeConfig::with_defaults("x");
        assert!(ScrapeTarget::new(&Target::default(), &cfg).is_err());
    }
}
