//! The `[[event]]` list: one action per event, events in time order inside the run, and the
//! story checked as it is read (only a running node can crash, power off, stall or leave; a
//! join brings a new name; partition groups are disjoint).

use std::time::Duration;

use super::*;

impl<'a> Parser<'a> {
    pub(super) fn events(
        &self,
        items: &[toml::Value],
        cluster: &ClusterSpec,
        duration: Duration,
    ) -> Result<Vec<Event>, ScenarioError> {
        if items.len() > EVENTS_MAX {
            return Err(self.err(
                "event",
                format!("{} events: expected at most {EVENTS_MAX}", items.len()),
            ));
        }
        self.initial_nodes.set(cluster.nodes);
        for (index, item) in items.iter().enumerate() {
            if let Some(toml::Value::String(name)) = item.get("join") {
                self.joins.borrow_mut().entry(name.clone()).or_insert(index);
            }
        }
        let mut lives: BTreeMap<String, Life> = (1..=cluster.nodes)
            .map(|i| (node_name(i), Life::Running))
            .collect();
        let mut events: Vec<Event> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let path = format!("event[{index}]");
            let toml::Value::Table(table) = item else {
                return Err(self.err(
                    path,
                    format!(
                        "found {}: expected an [[event]] table",
                        describe_value(item)
                    ),
                ));
            };
            let mut allowed = vec!["at"];
            allowed.extend_from_slice(ACTION_KEYS);
            let f = self.fields(path.clone(), table, &allowed)?;
            let at = match f.get("at") {
                None => {
                    return Err(self.err(
                        f.key("at"),
                        "missing: expected when the event happens, e.g. at = \"30s\"",
                    ))
                }
                Some(v) => self.duration(&f.key("at"), v)?,
            };
            if let Some(prev) = events.last() {
                if at < prev.at {
                    return Err(self.err(
                        f.key("at"),
                        format!(
                            "{} is before event[{}].at {}: expected events in time order",
                            format_duration(at),
                            prev.index,
                            format_duration(prev.at)
                        ),
                    ));
                }
            }
            if at >= duration {
                return Err(self.err(
                    f.key("at"),
                    format!(
                        "{} is not before the end of the run (duration = {}): expected a time inside the run",
                        format_duration(at),
                        format_duration(duration)
                    ),
                ));
            }
            let present: Vec<&str> = ACTION_KEYS
                .iter()
                .copied()
                .filter(|k| table.contains_key(*k))
                .collect();
            let key = match present.as_slice() {
                [one] => *one,
                [] => {
                    return Err(self.err(
                        path,
                        format!("no action: expected exactly one of {}", ACTION_KEYS.join(", ")),
                    ))
                }
                many => {
                    return Err(self.err(
                        path,
                        format!(
                            "{} actions ({}): expected exactly one action per [[event]]; split them into events at the same time",
                            many.len(),
                            many.join(", ")
                        ),
                    ))
                }
            };
            let value = &table[key];
            let kp = f.key(key);
            let action = match key {
                "partition" => Action::Partition(self.partition(&kp, value, &lives)?),
                "heal" => match value {
                    toml::Value::Boolean(true) => Action::Heal,
                    other => {
                        return Err(self.err(
                            kp,
                            format!("found {}: expected heal = true", describe_value(other)),
                        ))
                    }
                },
                "crash" | "power_off" | "leave" => {
                    let node = self.known_node(&kp, value, &lives)?;
                    match lives[&node] {
                        Life::Running => {}
                        Life::Crashed(i) | Life::Left(i) => {
                            let how = if matches!(lives[&node], Life::Crashed(_)) {
                                "crashed"
                            } else {
                                "left"
                            };
                            return Err(self.err(
                                kp,
                                format!("{node} is not running at {} ({how} by event[{i}]): expected a running node (restart it first)", format_duration(at)),
                            ));
                        }
                    }
                    let life = if key == "leave" {
                        Life::Left(index)
                    } else {
                        Life::Crashed(index)
                    };
                    lives.insert(node.clone(), life);
                    match key {
                        "crash" => Action::Crash(node),
                        "power_off" => Action::PowerOff(node),
                        _ => Action::Leave(node),
                    }
                }
                "stall" => self.stall(&kp, value, &lives, at)?,
                "restart" => {
                    let node = self.known_node(&kp, value, &lives)?;
                    lives.insert(node.clone(), Life::Running);
                    Action::Restart(node)
                }
                "join" => {
                    let node = self.string(&kp, value)?.to_string();
                    if !is_valid_node_name(&node) {
                        return Err(self.err(kp, format!("{node:?}: expected a node name of letters, digits, '_', '-' or '.'")));
                    }
                    if lives.contains_key(&node) {
                        return Err(self.err(
                            kp,
                            format!("{node} already exists: expected a new node name (use restart = {node:?} to bring an existing node back)"),
                        ));
                    }
                    lives.insert(node.clone(), Life::Running);
                    Action::Join(node)
                }
                "targets" => self.drift(&kp, value, &lives)?,
                "loss" => Action::Loss(self.probability(&kp, value)?),
                "latency" => Action::Latency(self.latency(&kp, value)?),
                _ => unreachable!("ACTION_KEYS and this match list the same keys"),
            };
            events.push(Event { index, at, action });
        }
        Ok(events)
    }

    pub(super) fn partition(
        &self,
        key: &str,
        value: &toml::Value,
        lives: &BTreeMap<String, Life>,
    ) -> Result<Vec<Vec<String>>, ScenarioError> {
        let expected =
            "expected a list of node groups, e.g. [[\"node-1\", \"node-2\"], [\"node-3\"]]";
        let toml::Value::Array(groups) = value else {
            return Err(self.err(key, format!("found {}: {expected}", describe_value(value))));
        };
        if groups.is_empty() {
            return Err(self.err(
                key,
                format!("empty: {expected} (use heal = true to end a partition)"),
            ));
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut out = Vec::with_capacity(groups.len());
        for (gi, group) in groups.iter().enumerate() {
            let gkey = format!("{key}[{gi}]");
            let toml::Value::Array(members) = group else {
                return Err(self.err(gkey, format!("found {}: {expected}", describe_value(group))));
            };
            if members.is_empty() {
                return Err(self.err(gkey, "empty group: expected at least one node name"));
            }
            let mut names = Vec::with_capacity(members.len());
            for (mi, m) in members.iter().enumerate() {
                let mkey = format!("{gkey}[{mi}]");
                let name = self.known_node(&mkey, m, lives)?;
                if let Some(other) = seen.insert(name.clone(), gi) {
                    return Err(self.err(
                        mkey,
                        format!("{name} is already in group {other}: expected each node in at most one group"),
                    ));
                }
                names.push(name);
            }
            out.push(names);
        }
        Ok(out)
    }

    pub(super) fn stall(
        &self,
        key: &str,
        value: &toml::Value,
        lives: &BTreeMap<String, Life>,
        at: Duration,
    ) -> Result<Action, ScenarioError> {
        let example = "expected stall = { node = \"node-3\", for = \"1.5s\" }";
        let toml::Value::Table(t) = value else {
            return Err(self.err(key, format!("found {}: {example}", describe_value(value))));
        };
        let f = self.fields(key.to_string(), t, &["node", "for"])?;
        let Some(node) = f.get("node") else {
            return Err(self.err(f.key("node"), format!("missing: {example}")));
        };
        let node = self.known_node(&f.key("node"), node, lives)?;
        if lives[&node] != Life::Running {
            return Err(self.err(
                f.key("node"),
                format!(
                    "{node} is not running at {}: expected a running node",
                    format_duration(at)
                ),
            ));
        }
        let duration = match f.get("for") {
            None => return Err(self.err(f.key("for"), format!("missing: {example}"))),
            Some(v) => self.duration(&f.key("for"), v)?,
        };
        if duration.is_zero() {
            return Err(self.err(f.key("for"), "\"0s\": expected a positive duration"));
        }
        Ok(Action::Stall { node, duration })
    }

    pub(super) fn drift(
        &self,
        key: &str,
        value: &toml::Value,
        lives: &BTreeMap<String, Life>,
    ) -> Result<Action, ScenarioError> {
        let toml::Value::Table(t) = value else {
            return Err(self.err(
                key,
                format!(
                    "found {}: expected targets = {{ nodes = [\"node-1\"], count = 1200 }}",
                    describe_value(value)
                ),
            ));
        };
        let f = self.fields(key.to_string(), t, &["nodes", "count"])?;
        let nodes = match f.get("nodes") {
            Some(toml::Value::Array(items)) if !items.is_empty() => {
                let mut names = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let name = self.known_node(&format!("{}[{i}]", f.key("nodes")), item, lives)?;
                    if names.contains(&name) {
                        return Err(self.err(
                            format!("{}[{i}]", f.key("nodes")),
                            format!("{name} is listed twice: expected each node once"),
                        ));
                    }
                    names.push(name);
                }
                names
            }
            Some(other) => {
                return Err(self.err(
                    f.key("nodes"),
                    format!(
                        "found {}: expected a non-empty list of node names",
                        describe_value(other)
                    ),
                ))
            }
            None => {
                return Err(self.err(
                    f.key("nodes"),
                    "missing: expected the nodes whose config changes, e.g. nodes = [\"node-1\"]",
                ))
            }
        };
        let count = match f.get("count") {
            None => {
                return Err(self.err(
                    f.key("count"),
                    "missing: expected how many targets those nodes now list",
                ))
            }
            Some(v) => self.integer(&f.key("count"), v, 0, TARGETS_MAX as u64)? as u32,
        };
        Ok(Action::Targets { nodes, count })
    }

    pub(super) fn known_node(
        &self,
        key: &str,
        value: &toml::Value,
        lives: &BTreeMap<String, Life>,
    ) -> Result<String, ScenarioError> {
        let name = self.string(key, value)?;
        if lives.contains_key(name) {
            return Ok(name.to_string());
        }
        let initial = self.initial_nodes.get();
        let joined: Vec<&str> = lives
            .keys()
            .filter(|n| !is_initial_node(n, initial))
            .map(String::as_str)
            .collect();
        let mut known = node_range(initial);
        if !joined.is_empty() {
            known = format!("{known} or a node joined earlier ({})", joined.join(", "));
        } else {
            known = format!("{known} or a node joined by an earlier event");
        }
        if let Some(index) = self.joins.borrow().get(name) {
            return Err(self.err(
                key,
                format!(
                    "{name} does not exist yet: it joins only in event[{index}]; expected {known}"
                ),
            ));
        }
        Err(self.err(key, format!("unknown node {name:?}: expected {known}")))
    }
}
