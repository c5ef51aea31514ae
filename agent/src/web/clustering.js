// The clustering page: polls /api/v0/web/cluster (this node) and /api/v0/web/peers (the
// members it sees) and renders them. No external assets, no framework.
"use strict";

const POLL_MS = 2000;

function text(id, value) {
  document.getElementById(id).textContent = value;
}

function stateBadge(state) {
  const span = document.createElement("span");
  span.className = "state state-" + state;
  span.textContent = state;
  return span;
}

function renderNode(node) {
  text("node-name", node.name);
  text("node-addr", node.addr);
  const st = document.getElementById("node-state");
  st.replaceChildren(stateBadge(node.state));
  text("node-cluster", node.clustering
    ? (node.clusterName === "" ? "(default name)" : node.clusterName)
    : "clustering disabled");
  text("node-join", node.alone ? "alone (see the warning above)" : node.joinSummary);
  text("node-ready", node.ready ? "yes" : node.readyReason);
  const alone = document.getElementById("alone");
  if (node.alone) {
    alone.textContent = "Warning: " + node.joinSummary +
      ". Every node that believes it is alone does all the work itself.";
    alone.hidden = false;
  } else {
    alone.hidden = true;
  }
}

function renderPeers(peers) {
  const body = document.querySelector("#peers tbody");
  const rows = peers.map((p) => {
    const tr = document.createElement("tr");
    tr.className = "peer" + (p.isSelf ? " self" : "");
    tr.dataset.name = p.name;
    const name = document.createElement("td");
    name.className = "name";
    name.textContent = p.name;
    const addr = document.createElement("td");
    addr.className = "addr";
    addr.textContent = p.addr;
    const state = document.createElement("td");
    state.appendChild(stateBadge(p.state));
    const local = document.createElement("td");
    if (p.isSelf) {
      const b = document.createElement("span");
      b.className = "badge";
      b.textContent = "this node";
      local.appendChild(b);
    }
    tr.append(name, addr, state, local);
    return tr;
  });
  body.replaceChildren(...rows);
  text("peer-count", "(" + peers.length + ")");
}

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) {
    throw new Error(path + " answered " + r.status);
  }
  return r.json();
}

async function refresh() {
  const err = document.getElementById("error");
  try {
    const [node, peers] = await Promise.all([
      getJSON("/api/v0/web/cluster"),
      getJSON("/api/v0/web/peers"),
    ]);
    renderNode(node);
    renderPeers(peers);
    err.hidden = true;
    text("updated", "updated " + new Date().toLocaleTimeString());
  } catch (e) {
    err.textContent = "Cannot reach the agent: " + e.message;
    err.hidden = false;
  }
}

refresh();
setInterval(refresh, POLL_MS);
